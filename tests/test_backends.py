"""The same weights give the same logits on TensorFlow and JAX."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras_regnet

pytest.importorskip("jax")
HERE = os.path.dirname(os.path.abspath(__file__))


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


@pytest.mark.parametrize("name", ["RegNetY-200MF", "RegNetX-400MF"])
def test_tensorflow_and_jax_agree(name, tmp_path):
    model = keras_regnet.get_model(name, classifier_activation=None, input_shape=(96, 96, 3))
    # Non-trivial BN statistics, so inference really uses them.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.name.endswith("_bn"):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    weights = tmp_path / "model.weights.h5"
    model.save_weights(weights)
    x = rng.uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    expected = np.asarray(model.predict_on_batch(x))

    jax_out = _run_worker("jax", name, weights, x, tmp_path)
    assert str(jax_out["backend"]) == "jax"
    rel = np.linalg.norm(jax_out["logits"] - expected) / np.linalg.norm(expected)
    assert rel < 1e-4, rel
    assert np.isfinite(jax_out["loss"]) and jax_out["changed"] > 0

    tf_out = _run_worker("tensorflow", name, weights, x, tmp_path)
    assert str(tf_out["backend"]) == "tensorflow"
    np.testing.assert_allclose(tf_out["logits"], expected, rtol=1e-5, atol=1e-5)
    assert np.isfinite(tf_out["loss"]) and tf_out["changed"] > 0
