"""The ``keras-regnet`` command (entry point :func:`main`).

``parser`` (the arguments, without Keras, so ``--help`` answers at once),
``commands`` (what each subcommand does), ``quiet`` (starting Keras without
TensorFlow's native start-up log lines) and ``main`` (:func:`main`: parse,
run, one error line and an exit status).
"""

from keras_regnet.cli.main import main  # noqa: F401
