"""keras_regnet: the RegNet model family (Radosavovic et al., CVPR 2020) for Keras 3.

Quick start::

    import keras_regnet
    model = keras_regnet.RegNetY800MF()               # the pycls RegNetY-800MF
    model = keras_regnet.get_model("RegNetY-1.6GF", include_top=False, pooling="avg")
    keras_regnet.complexity("RegNetX-200MF")          # flops, params, acts
    cfg = keras_regnet.RegNetConfig(depth=13, w0=24, wa=36.44, wm=2.49, group_width=8)
    custom = keras_regnet.RegNet(cfg, classes=10)
"""

from keras_regnet.architecture.complexity import complexity
from keras_regnet.architecture.config import RegNetConfig, StageSpec, generate_block_widths
from keras_regnet.architecture.models import (
    RegNet,
    RegNetX1_6GF,
    RegNetX3_2GF,
    RegNetX4_0GF,
    RegNetX6_4GF,
    RegNetX8_0GF,
    RegNetX12GF,
    RegNetX16GF,
    RegNetX32GF,
    RegNetX200MF,
    RegNetX400MF,
    RegNetX600MF,
    RegNetX800MF,
    RegNetY1_6GF,
    RegNetY3_2GF,
    RegNetY4_0GF,
    RegNetY6_4GF,
    RegNetY8_0GF,
    RegNetY12GF,
    RegNetY16GF,
    RegNetY32GF,
    RegNetY200MF,
    RegNetY400MF,
    RegNetY600MF,
    RegNetY800MF,
    feature_extractor,
    get_model,
)
from keras_regnet.errors import InvalidFileError, UnsafeFileError
from keras_regnet.architecture.preprocessing import decode_predictions, preprocess_input
from keras_regnet.architecture.zoo import list_models, published_models

__version__ = "0.1.0"

__all__ = [
    "RegNet",
    "RegNetConfig",
    "RegNetX12GF",
    "RegNetX16GF",
    "RegNetX1_6GF",
    "RegNetX200MF",
    "RegNetX32GF",
    "RegNetX3_2GF",
    "RegNetX400MF",
    "RegNetX4_0GF",
    "RegNetX600MF",
    "RegNetX6_4GF",
    "RegNetX800MF",
    "RegNetX8_0GF",
    "RegNetY12GF",
    "RegNetY16GF",
    "RegNetY1_6GF",
    "RegNetY200MF",
    "RegNetY32GF",
    "RegNetY3_2GF",
    "RegNetY400MF",
    "RegNetY4_0GF",
    "RegNetY600MF",
    "RegNetY6_4GF",
    "RegNetY800MF",
    "RegNetY8_0GF",
    "InvalidFileError",
    "StageSpec",
    "UnsafeFileError",
    "complexity",
    "decode_predictions",
    "feature_extractor",
    "generate_block_widths",
    "get_model",
    "list_models",
    "preprocess_input",
    "published_models",
]
