"""Design spaces: AnyNetX_A...E and RegNetX/Y, their samplers, and population statistics.

The method of Radosavovic et al. 2020 ("Designing Network Design Spaces"):
sample networks from a space within a complexity band, train them briefly,
and compare spaces by their error distributions.  This package holds the
parts that need no Keras:

* :mod:`keras_regnet.design_space.spaces`: :class:`AnyNetConfig`, the
  spaces (``SPACES``), :func:`sample`, :func:`space_size`,
  :func:`anynet_complexity` (exact to pycls 0.1.1) and
  :func:`anynet_from_regnet`;
* :mod:`keras_regnet.design_space.analysis`: :func:`edf`,
  :func:`normalized_edf`, :func:`ks_statistic`, :func:`good_range`,
  :func:`expected_best_of_k`.

Example:
    >>> from keras_regnet import design_space as ds
    >>> nets = ds.sample("AnyNetX_E", n=3, seed=0, flops_range=(360e6, 400e6))
    >>> all(360e6 <= ds.anynet_complexity(c)["flops"] <= 400e6 for c in nets)
    True
"""

from keras_regnet.design_space.analysis import (
    edf,
    expected_best_of_k,
    good_range,
    ks_statistic,
    normalized_edf,
)
from keras_regnet.design_space.spaces import (
    ANYNET_SPACES,
    REGNET_SPACES,
    SPACES,
    AnyNetConfig,
    RegNetRanges,
    anynet_complexity,
    anynet_from_regnet,
    sample,
    space_size,
)

__all__ = [
    "ANYNET_SPACES",
    "REGNET_SPACES",
    "SPACES",
    "AnyNetConfig",
    "RegNetRanges",
    "anynet_complexity",
    "anynet_from_regnet",
    "edf",
    "expected_best_of_k",
    "good_range",
    "ks_statistic",
    "normalized_edf",
    "sample",
    "space_size",
]
