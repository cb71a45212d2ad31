"""The main job survives the kernels TensorFlow cannot differentiate.

TensorFlow's native grouped convolution has a CPU gradient only with oneDNN
on and only in some dtypes; without oneDNN (``TF_ENABLE_ONEDNN_OPTS=0``) or
in float64 the gradient raises "Gradients for grouped convolutions are not
supported on CPU".  The ``auto`` kernel choice probes forward *and* backward
per dtype and falls back to Keras's path, so ``keras-regnet train`` (the
README's main job, here one short epoch on 200 real images) runs in both.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_regnet.safe_io import load_npz


def tiny_image_folder(root, count=200):
    """The first ``count`` embedded JPEGs as ``root/{train,val}/<class>/`` (every 5th is validation)."""
    from importlib import resources

    with resources.as_file(resources.files("keras_regnet.data").joinpath("cifar10_subset.npz")) as src:
        d = load_npz(src, ["jpeg", "offsets", "labels", "classes"])
    for i in range(count):
        folder = root / ("val" if i % 5 == 0 else "train") / str(d["classes"][d["labels"][i]])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.jpg").write_bytes(d["jpeg"][d["offsets"][i]: d["offsets"][i + 1]].tobytes())
    return root


@pytest.mark.parametrize(
    "env, options",
    [({"TF_ENABLE_ONEDNN_OPTS": "0"}, []), ({}, ["--mixed-precision", "float64"])],
    ids=["onednn-off", "float64"],
)
def test_main_job_trains(tmp_path, env, options):
    data = tiny_image_folder(tmp_path / "images")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "keras_regnet.cli", "train", "--data", str(data), "--image-size", "32",
               "--epochs", "1", "--batch-size", "20", "--output-dir", str(out), *options]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and np.isfinite(results["final"]["loss"])
    assert results["mixed_precision"] == (options[1] if options else None)
