"""Resolving and loading the ``weights`` argument of the model builders.

Today: ``None`` or the path of a Keras ``.weights.h5`` file.  Before loading,
the file is checked layer by layer against the model, so a file saved from
another variant fails with the first mismatching layer and both shapes
instead of a deep Keras error.
"""

from __future__ import annotations

import os
import re

import h5py

IMAGENET_NOT_AVAILABLE = (
    "weights='imagenet' is not available in this version of keras_regnet: the "
    "pycls checkpoint download and conversion is not implemented yet. Pass "
    "weights=None, or the path to a Keras .weights.h5 file."
)


def check_weights_argument(weights):
    """Validate ``weights``; return a file path or ``None``."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"weights must be None or the path to a weights file; got weights={weights!r}."
        )
    weights = os.fspath(weights)
    if weights == "imagenet" or weights.startswith("imagenet:"):
        raise ValueError(IMAGENET_NOT_AVAILABLE)
    if not os.path.isfile(weights):
        raise ValueError(
            f"weights must be None or the path to an existing weights file; "
            f"no file at weights={weights!r}."
        )
    if not weights.endswith(".weights.h5"):
        raise ValueError(
            f"weights file must be a Keras '.weights.h5' file; got weights={weights!r}."
        )
    return weights


def _snake_case(class_name):
    # The same two substitutions as Keras's naming.to_snake_case:
    # "Conv2D" -> "conv2d", "BatchNormalization" -> "batch_normalization".
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _saved_layer_keys(model):
    """The group names Keras 3 gives each layer in a ``.weights.h5`` file.

    Keras names layers by snake-cased class name in model order, suffixing
    repeats with ``_1``, ``_2``, ... (``keras.saving`` container walking).
    """
    used = {}
    keys = []
    for layer in model.layers:
        key = _snake_case(type(layer).__name__)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys.append(key)
    return keys


def check_weights_file(model, path):
    """Raise ``ValueError`` naming the first layer whose saved shapes differ."""
    with h5py.File(path, "r") as f:
        if "layers" not in f:
            raise ValueError(f"weights={path!r} is not a Keras 3 '.weights.h5' file (no 'layers' group).")
        saved = f["layers"]
        expected_keys = set()
        for layer, key in zip(model.layers, _saved_layer_keys(model)):
            expected_keys.add(key)
            if not layer.weights:
                continue
            model_shapes = [tuple(w.shape) for w in layer.weights]
            if key not in saved or "vars" not in saved[key]:
                raise ValueError(
                    f"weights={path!r} does not fit model {model.name!r}: it has no "
                    f"weights for layer {layer.name!r} (shapes {model_shapes}). "
                    "Was it saved from another RegNet variant?"
                )
            vars_ = saved[key]["vars"]
            file_shapes = [tuple(vars_[str(i)].shape) for i in range(len(vars_))]
            if file_shapes != model_shapes:
                raise ValueError(
                    f"weights={path!r} does not fit model {model.name!r}: layer "
                    f"{layer.name!r} has shapes {model_shapes} in the model but "
                    f"{file_shapes} in the file. Was it saved from another RegNet variant?"
                )
        extra = [k for k in saved if k not in expected_keys and len(saved[k].get("vars", {}))]
        if extra:
            raise ValueError(
                f"weights={path!r} does not fit model {model.name!r}: the file has "
                f"weights for {len(extra)} more layers than the model (e.g. {extra[0]!r}). "
                "Was it saved from a deeper RegNet variant?"
            )


def load_weights(model, path):
    """Check ``path`` against ``model``, then load it."""
    check_weights_file(model, path)
    model.load_weights(path)
