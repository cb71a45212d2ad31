"""PyTorch ``state_dict``s (pycls's ``AnyNet`` and torchvision's ``RegNet``) onto the Keras RegNet.

pycls's keys (``stem.conv.weight``, ``s2.b1.f.b_bn.running_var``,
``s3.b1.f.se.f_ex.0.bias``, ``head.fc.weight``, ...) and torchvision's
(``stem.0.weight``, ``trunk_output.block2.block2-0.f.b.1.running_var``,
``...f.se.fc1.bias``, ``fc.weight``) correspond one-to-one to the Keras
layers of :mod:`keras_regnet.architecture.layers`.  The state comes as plain
numpy arrays (reading checkpoint files is
:mod:`keras_regnet.weights.torch_checkpoint`'s concern); PyTorch layouts are
transposed to Keras layouts and, for pycls, the stem's input channels are
flipped: pycls networks see BGR, ours (and torchvision's) see RGB.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping

import numpy as np

from keras_regnet.weights.convert.assign import assign, checked_assignments

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

    assignments, used = checked_assignments(model, arrays_for, f"{naming} parameter")
    leftover = sorted(k for k in state if k not in used and (strict_head or not k.startswith(head)))
    if leftover:
        raise ValueError(
            f"{len(leftover)} {naming} parameters have no layer in model {model.name!r}, "
            f"e.g. {leftover[0]!r} (shape {state[leftover[0]].shape})."
        )
    assign(assignments)


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


