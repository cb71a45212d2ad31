"""Input preprocessing and prediction decoding, keras.applications style.

By default the models normalise inside (``include_preprocessing=True``): they
take RGB pixels in [0, 255] and apply the ImageNet mean/std that pycls
trained with.  ``preprocess_input`` is then the identity, kept so code written
for other ``keras.applications`` models works unchanged.
"""

from __future__ import annotations

import functools
import json
import os
from typing import List, Tuple

import numpy as np
from keras import layers

from keras_regnet.architecture.config import check_int
from keras_regnet.architecture.layers import float32_under_mixed_policy

# pycls / torchvision ImageNet statistics on [0, 1] RGB pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


PREPROCESSING_STYLES = ("imagenet_mean_std", "rescale_0_1")


def preprocessing_layer(style="imagenet_mean_std", name="preprocessing"):
    """The in-model preprocessing a weights source was trained with.

    ``"imagenet_mean_std"`` (pycls): ``(x / 255 - mean) / std`` per RGB
    channel.  ``"rescale_0_1"`` (tf-keras's RegNet weights): ``x / 255``.
    Under a mixed-precision global policy the layer computes in float32
    (pixels minus a bfloat16 mean lose up to 1 level); the first
    convolution casts its output.
    """
    dtype = float32_under_mixed_policy()
    if style == "rescale_0_1":
        return layers.Rescaling(1.0 / 255.0, name=name, dtype=dtype)
    if style != "imagenet_mean_std":
        raise ValueError(f"preprocessing style must be one of {PREPROCESSING_STYLES}; got {style!r}.")
    mean = np.array(IMAGENET_MEAN) * 255.0
    std = np.array(IMAGENET_STD) * 255.0
    # float64 arrays, not lists: a list would become a float32 tensor first (rounded for float64 models).
    return layers.Normalization(axis=-1, mean=mean, variance=std**2, name=name, dtype=dtype)


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


@functools.lru_cache(maxsize=None)
def imagenet_classes() -> List[Tuple[str, str]]:
    """The 1,000 ImageNet classes as ``(wordnet_id, name)``, in label order.

    Label ``i`` is the ``i``-th synset in sorted order, as in pycls,
    torchvision and TensorFlow Datasets.  Shipped with the package
    (``architecture/imagenet_classes.json``), so decoding works offline.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.json")
    with open(path) as f:
        return [tuple(row) for row in json.load(f)]


def decode_predictions(preds, top=5, model=None):
    """Decode predictions into ``(class_name_id, class_description, score)`` tuples.

    Like ``keras.applications.imagenet_utils.decode_predictions``, but reads
    the class list shipped with the package instead of downloading it, and,
    given ``model``, decodes with that model's own classes (its
    :class:`~keras_regnet.architecture.model_info.ModelInfo`: a model
    trained by ``keras-regnet train`` on CIFAR-10 gives
    ``("ship", "ship", 0.93)``).

    Args:
        preds: array of shape ``(batch, classes)`` (probabilities or logits);
            1000 ImageNet classes unless ``model`` says otherwise.
        top: how many top-guesses to return per sample.
        model: the model that made ``preds`` (optional).

    Returns:
        One list of ``(class_name_id, class_description, score)`` per sample,
        best first.
    """
    preds = np.asarray(preds)
    if model is None:
        if preds.ndim != 2 or preds.shape[1] != 1000:
            raise ValueError(
                "decode_predictions expects a batch of ImageNet predictions, shape (samples, 1000), or model= "
                f"for other classes; got shape {preds.shape}."
            )
        classes = imagenet_classes()
    else:
        from keras_regnet.architecture.model_info import model_info

        num_classes = model.output.shape[-1]
        if preds.ndim != 2 or preds.shape[1] != num_classes:
            raise ValueError(f"decode_predictions expects shape (samples, {num_classes}) for this model; got shape {preds.shape}.")
        classes = model_info(model).labels(num_classes)
    check_int("top", top, maximum=len(classes))
    results = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(*classes[i], float(row[i])) for i in best])
    return results
