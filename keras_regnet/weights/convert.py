"""Mapping PyTorch and tf-keras RegNet parameters onto the Keras RegNet.

pycls's ``AnyNet`` ``state_dict`` keys (``stem.conv.weight``,
``s2.b1.f.b_bn.running_var``, ``s3.b1.f.se.f_ex.0.bias``, ``head.fc.weight``,
...) and torchvision's (``stem.0.weight``,
``trunk_output.block2.block2-0.f.b.1.running_var``, ``...f.se.fc1.bias``,
``fc.weight``) correspond one-to-one to the Keras layers of
:mod:`keras_regnet.architecture.layers`.  This module takes a state as plain numpy arrays
(reading checkpoint files is a separate concern), transposes PyTorch layouts
to Keras layouts and, for pycls, flips the stem's input channels: pycls
networks see BGR, ours (and torchvision's) see RGB.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Mapping

import numpy as np

# Keras layer-name suffix -> module path inside a block, per naming scheme.
_BLOCK_MODULES = {
    "pycls": {
        "proj_conv": "proj", "proj_bn": "bn",
        "a_conv": "f.a", "a_bn": "f.a_bn",
        "b_conv": "f.b", "b_bn": "f.b_bn",
        "se_reduce": "f.se.f_ex.0", "se_expand": "f.se.f_ex.2",
        "c_conv": "f.c", "c_bn": "f.c_bn",
    },
    "torchvision": {
        "proj_conv": "proj.0", "proj_bn": "proj.1",
        "a_conv": "f.a.0", "a_bn": "f.a.1",
        "b_conv": "f.b.0", "b_bn": "f.b.1",
        "se_reduce": "f.se.fc1", "se_expand": "f.se.fc2",
        "c_conv": "f.c.0", "c_bn": "f.c.1",
    },
}
_OUTER_MODULES = {
    "pycls": {"stem_conv": "stem.conv", "stem_bn": "stem.bn", "predictions": "head.fc"},
    "torchvision": {"stem_conv": "stem.0", "stem_bn": "stem.1", "predictions": "fc"},
}
NAMINGS = tuple(_BLOCK_MODULES)
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")  # Keras order
_BLOCK_LAYER = re.compile(r"^s(\d+)_b(\d+)_(\w+)$")


def torch_module_name(layer_name: str, naming: str = "pycls"):
    """Module path, in ``naming``'s state dict, of a Keras layer with weights; or ``None``."""
    if layer_name in _OUTER_MODULES[naming]:
        return _OUTER_MODULES[naming][layer_name]
    m = _BLOCK_LAYER.match(layer_name)
    if not m or m.group(3) not in _BLOCK_MODULES[naming]:
        return None
    stage, block, suffix = int(m.group(1)), int(m.group(2)), _BLOCK_MODULES[naming][m.group(3)]
    if naming == "pycls":
        return f"s{stage}.b{block}.{suffix}"
    return f"trunk_output.block{stage}.block{stage}-{block - 1}.{suffix}"


def naming_of(state: Mapping[str, np.ndarray]):
    """``"pycls"`` or ``"torchvision"`` from a state dict's keys, else ``None``."""
    if "stem.conv.weight" in state:
        return "pycls"
    if "stem.0.weight" in state and any(k.startswith("trunk_output.") for k in state):
        return "torchvision"
    return None


def set_torch_state(
    model, state: Mapping[str, np.ndarray], naming: str = "pycls", strict_head: bool = True
) -> None:
    """Assign a pycls or torchvision ``state_dict`` (numpy arrays) to a Keras RegNet.

    Args:
        model: a model built by :func:`keras_regnet.RegNet` (any head).
        state: parameter name -> numpy array (``num_batches_tracked``
            entries are ignored).
        naming: ``"pycls"`` or ``"torchvision"``.
        strict_head: if False, a model without a classifier may receive a
            state that has one (its classifier is then skipped).

    Raises:
        ValueError: a parameter is missing, left over, or has another shape
            (the message names the layer and both shapes).
    """
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {NAMINGS}; got naming={naming!r}.")
    head = _OUTER_MODULES[naming]["predictions"] + "."
    state = {k: np.asarray(v) for k, v in state.items() if not k.endswith("num_batches_tracked")}

    def arrays_for(layer):
        module = torch_module_name(layer.name, naming)
        if module is None:
            raise ValueError(f"Layer {layer.name!r} has no {naming} counterpart.")
        values, keys = _keras_values(layer, module, state, flip_stem=naming == "pycls")
        return list(zip(keys, values))

    assignments, used = _checked_assignments(model, arrays_for, f"{naming} parameter")
    leftover = sorted(k for k in state if k not in used and (strict_head or not k.startswith(head)))
    if leftover:
        raise ValueError(
            f"{len(leftover)} {naming} parameters have no layer in model {model.name!r}, "
            f"e.g. {leftover[0]!r} (shape {state[leftover[0]].shape})."
        )
    _assign(assignments)


def _checked_assignments(model, arrays_for, what):
    """Pair every model variable with its source array, checking all shapes first.

    ``arrays_for(layer)`` returns ``[(source_key, array), ...]`` in the order of
    ``layer.weights``.  Nothing is assigned here, so a mismatch anywhere leaves
    the model untouched.  Returns ``(assignments, used source keys)``.
    """
    assignments, used = [], set()
    for layer in model.layers:
        if not layer.weights:
            continue
        pairs = arrays_for(layer)
        if len(pairs) != len(layer.weights):
            raise ValueError(
                f"{what}s {[k for k, _ in pairs]} give {len(pairs)} arrays; layer {layer.name!r} "
                f"has {len(layer.weights)} variables."
            )
        for variable, (key, value) in zip(layer.weights, pairs):
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"{what} {key!r} has shape {value.shape} but layer {layer.name!r} expects "
                    f"{tuple(variable.shape)} (in Keras layout)."
                )
            assignments.append((variable, value))
            used.add(key)
    return assignments, used


def _assign(assignments):
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))


def _keras_values(layer, module: str, state: Dict[str, np.ndarray], flip_stem: bool):
    """(values, state keys) for ``layer``'s weights, in Keras's order."""
    if layer.__class__.__name__ == "BatchNormalization":
        keys = [f"{module}.{p}" for p in _BN_PARAMS]
    else:
        keys = [f"{module}.weight"] + ([f"{module}.bias"] if len(layer.weights) > 1 else [])
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(
            f"The state dict has no {missing[0]!r}, needed by layer {layer.name!r}; "
            "is it a checkpoint of another RegNet variant?"
        )
    values = []
    for key in keys:
        value = state[key]
        if key.endswith(".weight") and value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
            if flip_stem and layer.name == "stem_conv":
                value = value[:, :, ::-1, :]  # BGR -> RGB input channels
        elif key.endswith(".weight") and value.ndim == 2:
            value = value.T  # dense: (out, in) -> (in, out)
        values.append(np.ascontiguousarray(value))
    return values, keys


# tf-keras RegNet layer-name suffix -> ours, inside "{model}_Stage_{s}_{X|Y}Block_{b}_".
_TF_KERAS_BLOCK_LAYERS = {
    "conv_1x1_1": "a_conv",
    "conv_1x1_1_bn": "a_bn",
    "conv_3x3": "b_conv",
    "conv_3x3_bn": "b_bn",
    "squeeze_and_excite_squeeze": "se_reduce",
    "squeeze_and_excite_excite": "se_expand",
    "conv_1x1_2": "c_conv",
    "conv_1x1_2_bn": "c_bn",
    "skip_1x1": "proj_conv",
    "skip_bn": "proj_bn",
}
_TF_KERAS_BLOCK = re.compile(r"_Stage_(\d+)_[XY]Block_(\d+)_(\w+)$")


def tf_keras_layer_name(name: str):
    """Our layer name for a tf-keras RegNet layer name, or ``None``."""
    if name.endswith("_stem_conv") or name.endswith("_stem_bn"):
        return "stem_" + name.rsplit("_", 1)[1]
    if name.endswith("head_dense"):
        return "predictions"
    m = _TF_KERAS_BLOCK.search(name)
    if m and m.group(3) in _TF_KERAS_BLOCK_LAYERS:
        return f"s{int(m.group(1)) + 1}_b{int(m.group(2)) + 1}_{_TF_KERAS_BLOCK_LAYERS[m.group(3)]}"
    return None


def read_tf_keras_h5(path) -> Dict[str, list]:
    """Layer name -> list of arrays (in saved order) from a Keras 2 / tf-keras ``.h5``."""
    import h5py

    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)

    out = {}
    file_size = os.path.getsize(path)
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in root.attrs["layer_names"]:
            group = root[text(layer)]
            names = [text(n) for n in group.attrs.get("weight_names", [])]
            for n in names:
                # Checked before reading: an HDF5 dataset can declare any shape in a few bytes.
                dataset = group[n]
                if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind != "f":
                    raise ValueError(f"{path!r}: weight {n!r} is not a floating-point array.")
                if dataset.nbytes > file_size:
                    raise ValueError(f"{path!r}: weight {n!r} declares shape {dataset.shape}, more than the file holds.")
            if names:
                out[text(layer)] = [np.asarray(group[n]) for n in names]
    return out


def set_tf_keras_weights(model, path, strict_head: bool = True) -> None:
    """Assign tf-keras ``applications.RegNet*`` weights (``.h5``) to our RegNet.

    tf-keras layouts are already Keras layouts and its inputs are RGB, so
    values are assigned as they are; only names are mapped.
    """
    saved = {}
    for name, values in read_tf_keras_h5(path).items():
        ours = tf_keras_layer_name(name)
        if ours is None:
            raise ValueError(f"tf-keras layer {name!r} in {path!r} has no counterpart in a RegNet.")
        saved[ours] = (name, values)
    def arrays_for(layer):
        if layer.name not in saved:
            raise ValueError(
                f"{path!r} has no weights for layer {layer.name!r}; is it a tf-keras file of "
                "another RegNet variant?"
            )
        tf_name, values = saved[layer.name]
        return [(tf_name, v) for v in values]

    assignments, used = _checked_assignments(model, arrays_for, "tf-keras layer")
    leftover = [k for k, (tf_name, _) in saved.items() if tf_name not in used and (strict_head or k != "predictions")]
    if leftover:
        raise ValueError(
            f"{len(leftover)} tf-keras layers of {path!r} have no layer in model {model.name!r}, "
            f"e.g. {saved[leftover[0]][0]!r}."
        )
    _assign(assignments)
