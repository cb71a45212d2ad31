"""The ``keras-regnet`` command (entry point :func:`main`)."""

from keras_regnet.cli.main import main  # noqa: F401
