"""Keras's PyTorch backend: the recipe trains TensorFlow-free, checkpoints reload, exports say they need TensorFlow.

Logits against TensorFlow and a plain training step on torch are in
tests/test_backends.py; this runs ``keras_regnet.training.train`` (pycls's
recipe, the numpy input pipeline, checkpoints) in a torch process where
TensorFlow cannot be imported (tests/torch_train_worker.py).
"""

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_torch_backend_trains_without_tensorflow(tmp_path):
    require("torch")
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "torch_train_worker.py"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["keras_backend"] == "torch" and results["backend"] == "torch"
    assert results["tensorflow_imported"] is False
    assert results["epochs_run_this_call"] == 2 and math.isfinite(results["final"]["loss"])
    assert results["final"]["val_accuracy"] > 0.15  # 2 epochs of a small RegNet: above chance (0.10)
    assert (tmp_path / "last.keras").is_file() and (tmp_path / "curves.png").is_file()
    # The checkpoint reloads through the safe loader and predicts probabilities.
    assert results["reloaded_probability_sums"] == pytest.approx([1.0, 1.0], abs=1e-5)
    # Exports are TensorFlow's (tracing and converters): a clear refusal, nothing written.
    assert "ONNX export needs the TensorFlow backend" in results["export_error"]
    assert "'torch'" in results["export_error"] and not (tmp_path / "m.onnx").exists()
