"""Moved to :mod:`keras_regnet.weights.download`; this name stays so documented imports keep working."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("keras_regnet.weights.download")
