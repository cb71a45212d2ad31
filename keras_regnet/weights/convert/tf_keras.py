"""tf-keras ``applications.RegNet*`` weights (``.h5``) onto the Keras RegNet.

tf-keras layouts are already Keras layouts and its inputs are RGB, so
values are assigned as they are; only layer names are mapped.
"""

from __future__ import annotations

import os
import re
from typing import Dict

import numpy as np

from keras_regnet.weights.convert.assign import assign, checked_assignments


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

    assignments, used = checked_assignments(model, arrays_for, "tf-keras layer")
    leftover = [k for k, (tf_name, _) in saved.items() if tf_name not in used and (strict_head or k != "predictions")]
    if leftover:
        raise ValueError(
            f"{len(leftover)} tf-keras layers of {path!r} have no layer in model {model.name!r}, "
            f"e.g. {saved[leftover[0]][0]!r}."
        )
    assign(assignments)
