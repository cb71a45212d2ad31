"""The architecture: configuration -> generator -> blocks -> model.

``config`` (``RegNetConfig`` and the generator equations, plain numpy),
``zoo`` (the 24 published models as data), ``complexity`` (analytic
flops/params/acts), ``layers`` (stem, X/Y blocks, ``GroupedConv2D``),
``models`` (``RegNet`` and the builders), ``preprocessing`` (normalisation,
ImageNet classes) and ``plotting`` (the generator's widths).  No weight
files are read here except through :mod:`keras_regnet.weights`.
"""
