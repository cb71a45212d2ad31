"""torchvision IMAGENET1K weights: identical architectures load and reproduce torchvision.

torchvision is not a test dependency (it needs another torch build), so this
runs only where KERAS_REGNET_TORCHVISION_PYTHON names an interpreter with
torchvision; that interpreter builds the reference models in a subprocess.
"""

import os
import subprocess

import numpy as np
import pytest

import keras_regnet
from keras_regnet.weights import resolve as weights_lib

PYTHON = os.environ.get("KERAS_REGNET_TORCHVISION_PYTHON")
HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = pytest.mark.skipif(not PYTHON, reason="set KERAS_REGNET_TORCHVISION_PYTHON to a python with torchvision")


def _reference(builder, tmp_path, seed=0):
    proc = subprocess.run(
        [PYTHON, os.path.join(HERE, "torchvision_worker.py"), builder, str(tmp_path), str(seed)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = np.load(tmp_path / f"{builder}.npz")
    return tmp_path / f"{builder}.pth", data["x"], data["logits"]


@pytest.mark.parametrize(
    "builder, name",
    [("regnet_y_400mf", "RegNetY-400MF"), ("regnet_x_800mf", "RegNetX-800MF"), ("regnet_y_1_6gf", "RegNetY-1.6GF"),
     ("regnet_x_8gf", "RegNetX-8.0GF")],
)
def test_logits_equal_torchvision(builder, name, tmp_path):
    path, x, expected = _reference(builder, tmp_path)
    model = keras_regnet.get_model(name, weights=str(path), classifier_activation=None)
    got = np.asarray(model.predict_on_batch(x))
    rel = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert rel <= 1e-4, rel


@pytest.mark.parametrize("builder, name", [("regnet_y_800mf", "RegNetY-800MF"), ("regnet_x_400mf", "RegNetX-400MF")])
def test_models_with_other_widths_are_refused(builder, name, tmp_path):
    path, _, _ = _reference(builder, tmp_path)
    with pytest.raises(ValueError, match=r"torchvision parameter '.*' has shape .* but layer '.*' expects"):
        keras_regnet.get_model(name, weights=str(path))
    reason = weights_lib.manifest()[name]["torchvision-v2"]["incompatible"]
    with pytest.raises(ValueError, match=r"cannot be used for .*: torchvision's stage widths"):
        keras_regnet.get_model(name, weights="imagenet:torchvision-v2")
    assert "half up" in reason
