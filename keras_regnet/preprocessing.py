"""Input preprocessing and prediction decoding, keras.applications style.

By default the models normalise inside (``include_preprocessing=True``): they
take RGB pixels in [0, 255] and apply the ImageNet mean/std that pycls
trained with.  ``preprocess_input`` is then the identity, kept so code written
for other ``keras.applications`` models works unchanged.
"""

from __future__ import annotations

import numpy as np
from keras import layers
from keras.applications import imagenet_utils

# pycls / torchvision ImageNet statistics on [0, 1] RGB pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


PREPROCESSING_STYLES = ("imagenet_mean_std", "rescale_0_1")


def preprocessing_layer(style="imagenet_mean_std", name="preprocessing"):
    """The in-model preprocessing a weights source was trained with.

    ``"imagenet_mean_std"`` (pycls): ``(x / 255 - mean) / std`` per RGB
    channel.  ``"rescale_0_1"`` (tf-keras's RegNet weights): ``x / 255``.
    """
    if style == "rescale_0_1":
        return layers.Rescaling(1.0 / 255.0, name=name)
    if style != "imagenet_mean_std":
        raise ValueError(f"preprocessing style must be one of {PREPROCESSING_STYLES}; got {style!r}.")
    mean = np.array(IMAGENET_MEAN) * 255.0
    std = np.array(IMAGENET_STD) * 255.0
    return layers.Normalization(axis=-1, mean=mean.tolist(), variance=(std**2).tolist(), name=name)


def preprocess_input(x, data_format=None):
    """A placeholder for API compatibility: returns ``x`` unchanged.

    RegNet models built with ``include_preprocessing=True`` (the default)
    normalise internally and expect float RGB in [0, 255].  For a model built
    with ``include_preprocessing=False``, normalise yourself:
    ``(x / 255 - IMAGENET_MEAN) / IMAGENET_STD``.

    Args:
        x: a floating point numpy array or tensor.
        data_format: ignored; accepted for signature compatibility.

    Returns:
        ``x``, unchanged.
    """
    return x


def decode_predictions(preds, top=5):
    """Decode ImageNet predictions into ``(class_id, name, score)`` tuples.

    Args:
        preds: array of shape ``(batch, 1000)``.
        top: how many top-guesses to return per sample.

    Returns:
        One list of ``(class_name_id, class_description, score)`` per sample.
    """
    return imagenet_utils.decode_predictions(preds, top=top)
