"""Data parallelism without GPUs: 2 devices against 1, on each backend.

TensorFlow: ``strategy="mirrored"`` over 2 logical CPU devices.  JAX:
``strategy="data_parallel"`` (``keras.distribution.DataParallel``) over 2
host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``).  Each
run is a fresh worker process (``distribution_worker.py``) doing 4 steps of
the recipe (``compile_model``: TorchSGD) from the same weights on the same
global batches of 16.

* BatchNorm in inference mode: the only thing 2 devices change is how the
  gradient is summed, so the weights must equal the 1-device run's.
* BatchNorm training: TensorFlow normalises each replica's half-batch with
  its own statistics (as PyTorch DDP without SyncBatchNorm), so the
  reference is one device computing each half separately and averaging the
  gradients; the moving statistics keep the *first* replica's update (not
  the mean of the replicas', which the test shows differs; PyTorch DDP
  keeps each rank's own and saves rank 0's). JAX runs one program over
  the global batch, so its statistics are the global batch's and the
  reference is the 1-device run itself.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Initial weights (a built 1-device model's), 4 batches of 16 images and one-hot labels."""
    import keras

    from keras_regnet import RegNet, RegNetConfig

    keras.utils.set_random_seed(0)
    config = RegNetConfig(depth=4, w0=16, wa=8.0, wm=2.0, group_width=8, stem_width=16, stem_stride=1)
    model = RegNet(config, input_shape=(32, 32, 3), classes=10)
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("dist") / "inputs.npz"
    np.savez(path, images=rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32"),
             labels=np.eye(10, dtype="float32")[rng.integers(0, 10, 64)],
             **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    return path


def run(backend, devices, bn, inputs, tmp_path):
    out = tmp_path / f"{backend}-{devices}-{bn}.npz"
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS", "TF_CONFIG")}
    done = subprocess.run([sys.executable, os.path.join(HERE, "distribution_worker.py"), backend, str(devices), bn,
                           str(inputs), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = np.load(out)
    return int(result["replicas"]), {str(n): result[f"w{i}"] for i, n in enumerate(result["names"])}


def worst_error(ours, reference, keys=None):
    keys = keys or list(reference)
    errors = {k: np.linalg.norm(ours[k] - reference[k]) / max(np.linalg.norm(reference[k]), 1e-12) for k in keys}
    worst = max(errors, key=errors.get)
    return worst, errors[worst]


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_devices_all_reduce_exactly_with_frozen_batchnorm(backend, inputs, tmp_path):
    replicas, one = run(backend, 1, "frozen", inputs, tmp_path)
    replicas2, two = run(backend, 2, "frozen", inputs, tmp_path)
    assert (replicas, replicas2) == (1, 2)
    start = dict(np.load(inputs))
    moved = [k for i, k in enumerate(one) if np.abs(one[k] - start[f"w{i}"]).max() > 1e-4]
    assert len(moved) >= 15  # every convolution and the classifier trained (frozen BatchNorm: not its own)
    worst, error = worst_error(two, one)
    assert error <= TOLERANCE, f"{worst}: {error:.2e}"


def test_tensorflow_mirrored_batchnorm_statistics_are_per_replica(inputs, tmp_path):
    _, two = run("tensorflow", 2, "train", inputs, tmp_path)
    _, halves = run("tensorflow", 1, "halves", inputs, tmp_path)
    _, halves_mean = run("tensorflow", 1, "halves_mean", inputs, tmp_path)
    _, one = run("tensorflow", 1, "train", inputs, tmp_path)
    worst, error = worst_error(two, halves)
    assert error <= TOLERANCE, f"{worst}: {error:.2e}"
    moving = [k for k in two if "moving" in k]
    assert worst_error(two, halves_mean, moving)[1] > 100 * TOLERANCE  # not the replicas' mean
    assert worst_error(two, one)[1] > 100 * TOLERANCE  # global statistics would be a different computation


def test_jax_data_parallel_batchnorm_statistics_are_global(inputs, tmp_path):
    _, two = run("jax", 2, "train", inputs, tmp_path)
    _, one = run("jax", 1, "train", inputs, tmp_path)
    worst, error = worst_error(two, one)
    assert error <= TOLERANCE, f"{worst}: {error:.2e}"
