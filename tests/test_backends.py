"""The same weights give the same logits on TensorFlow, JAX and PyTorch, and a training step runs on each.

Each backend runs in its own process (tests/backend_worker.py with
``KERAS_BACKEND`` set), from weights saved by this (TensorFlow) process.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import require

import keras_regnet

HERE = os.path.dirname(os.path.abspath(__file__))
# What GroupedConv2D runs by default: TensorFlow's native grouped kernel (no
# per-op XLA); on JAX the registered kernel (one convolution per group on
# CPU, where XLA's grouped convolution is slow); torch's through Keras's own.
DEFAULT_GROUPED_CONV_KERNEL = {"tensorflow": "native", "jax": "native", "torch": "keras"}
# 1x1 convolutions as a matrix product: where XLA compiles for a CPU (JAX here).
POINTWISE_AS_MATMUL = {"tensorflow": False, "jax": True, "torch": False}


def _run_worker(backend, name, weights, x, tmp_path):
    inp = tmp_path / f"x_{backend}.npy"
    out = tmp_path / f"out_{backend}.npz"
    np.save(inp, x)
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "backend_worker.py"), name, str(weights), str(inp), str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)


@pytest.fixture(scope="module", params=["RegNetY-200MF", "RegNetX-400MF"])
def reference(request, tmp_path_factory):
    """A model's weights (with non-trivial BN statistics), inputs and its logits on TensorFlow in this process."""
    name = request.param
    model = keras_regnet.get_model(name, classifier_activation=None, input_shape=(96, 96, 3))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.name.endswith("_bn"):  # so inference really uses them
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    weights = tmp_path_factory.mktemp(name) / "model.weights.h5"
    model.save_weights(weights)
    x = rng.uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    return name, weights, x, np.asarray(model.predict_on_batch(x))


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_same_logits_and_a_training_step(reference, backend, tmp_path):
    require(backend)
    name, weights, x, expected = reference
    out = _run_worker(backend, name, weights, x, tmp_path)
    assert str(out["backend"]) == backend
    assert str(out["grouped_conv_kernel"]) == DEFAULT_GROUPED_CONV_KERNEL[backend]
    assert bool(out["pointwise_as_matmul"]) == POINTWISE_AS_MATMUL[backend]
    if backend == "tensorflow":
        np.testing.assert_allclose(out["logits"], expected, rtol=1e-5, atol=1e-5)
    else:
        rel = np.linalg.norm(out["logits"] - expected) / np.linalg.norm(expected)
        assert rel < 1e-4, rel
    # One SGD step on the worker's backend: finite loss, and the grouped
    # conv's kernel moved (gradients flow through it, SE and BN).
    assert np.isfinite(out["loss"]) and out["changed"] > 0
