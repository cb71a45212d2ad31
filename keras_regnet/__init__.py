"""keras_regnet: the RegNet model family (Radosavovic et al., CVPR 2020) for Keras 3.

Quick start::

    import keras_regnet
    model = keras_regnet.RegNetY800MF()               # the pycls RegNetY-800MF
    model = keras_regnet.get_model("RegNetY-1.6GF", include_top=False, pooling="avg")
    keras_regnet.complexity("RegNetX-200MF")          # flops, params, acts
    cfg = keras_regnet.RegNetConfig(depth=13, w0=24, wa=36.44, wm=2.49, group_width=8)
    custom = keras_regnet.RegNet(cfg, classes=10)
    anynet = keras_regnet.AnyNet(keras_regnet.AnyNetConfig(depths=(1, 1, 2, 1), widths=(24, 56, 152, 368),
                                                           bottleneck_ratios=(1, 1, 1, 1), group_widths=(8, 8, 8, 8)))

The names below are imported on first use, so ``import keras_regnet`` (and
``keras-regnet --help``) does not start Keras and its backend.  Keras learns
this package's layer and optimizer classes (for ``keras.saving.load_model``)
when Keras is already imported at ``import keras_regnet``, or at the first use
of any name here; :func:`keras_regnet.safe_io.load_keras_model` (checks, then
loads) always knows them.
"""

import importlib
import sys
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_MODELS = "keras_regnet.architecture.models"
_BUILDERS = [
    f"RegNet{family}{size}"
    for family in "XY"
    for size in ("200MF", "400MF", "600MF", "800MF", "1_6GF", "3_2GF", "4_0GF", "6_4GF", "8_0GF", "12GF", "16GF", "32GF")
]
# Public name -> the module that defines it.
_EXPORTS = {
    "complexity": "keras_regnet.architecture.complexity",
    "RegNetConfig": "keras_regnet.architecture.config",
    "AnyNetConfig": "keras_regnet.architecture.config",
    "anynet_from_regnet": "keras_regnet.architecture.config",
    "StageSpec": "keras_regnet.architecture.config",
    "generate_block_widths": "keras_regnet.architecture.config",
    "RegNet": _MODELS,
    "AnyNet": _MODELS,
    "feature_extractor": _MODELS,
    "get_model": _MODELS,
    "set_dtype_policy": _MODELS,
    **{name: _MODELS for name in _BUILDERS},
    "InvalidFileError": "keras_regnet.errors",
    "UnsafeFileError": "keras_regnet.errors",
    "decode_predictions": "keras_regnet.architecture.preprocessing",
    "preprocess_input": "keras_regnet.architecture.preprocessing",
    "list_models": "keras_regnet.architecture.zoo",
    "published_models": "keras_regnet.architecture.zoo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_regnet' has no attribute {name!r}")
    from keras_regnet.errors import keras_backend_required

    with keras_backend_required():
        value = getattr(importlib.import_module(module), name)
        _register_with_keras()
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

# Modules whose import registers classes with Keras's serialisation.
_REGISTERING_MODULES = ("keras_regnet.architecture.layers", "keras_regnet.architecture.model_info", "keras_regnet.training.optimizer")


def _register_with_keras():
    for module in _REGISTERING_MODULES:
        importlib.import_module(module)


if "keras" in sys.modules:  # Keras is running already: importing ours costs little
    _register_with_keras()

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from keras_regnet.architecture.complexity import complexity  # noqa: F401
    from keras_regnet.architecture.config import AnyNetConfig, RegNetConfig, StageSpec, anynet_from_regnet, generate_block_widths  # noqa: F401
    from keras_regnet.architecture.models import AnyNet, RegNet, feature_extractor, get_model, set_dtype_policy  # noqa: F401
    from keras_regnet.architecture.preprocessing import decode_predictions, preprocess_input  # noqa: F401
    from keras_regnet.architecture.zoo import list_models, published_models  # noqa: F401
    from keras_regnet.errors import InvalidFileError, UnsafeFileError  # noqa: F401
