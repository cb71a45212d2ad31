"""Every released ``.keras`` format still loads, with the same outputs and optimizer.

One fixture per release that changed what a saved model contains, in
``tests/fixtures/``:

* ``keras_regnet-0.1.0.keras``: a small RegNetY (grouped convolutions, SE)
  saved by release 0.1.0 after one training step, compiled with the recipe's
  ``CoupledWeightDecaySGD`` and ``EpochCosineSchedule``.  Its config names
  the modules ``keras_regnet.layers`` and ``keras_regnet.training``, which no
  longer exist as such: what must keep working are the registered names
  (``keras_regnet>GroupedConv2D``, ``keras_regnet>CoupledWeightDecaySGD``,
  ``keras_regnet>EpochCosineSchedule``), so moving or renaming modules is
  fine, renaming or unregistering those classes is not.
* ``keras_regnet-0.1.0.expected.npz``: ``inputs`` and the model's
  ``outputs`` on them (inference mode), computed by that release.

Adding a fixture for release X.Y.Z (when a saved model's content changes:
a new layer class, optimizer or config field), from a checkout of that
release, in a clean process with the TensorFlow backend::

    import keras, numpy as np
    from keras_regnet import RegNet, RegNetConfig
    from keras_regnet.training import Recipe, compile_model

    keras.utils.set_random_seed(0)
    config = RegNetConfig(depth=2, w0=16, wa=16.0, wm=2.0, group_width=8, se_ratio=0.25)
    model = RegNet(config, classes=10, input_shape=(32, 32, 3), weights=None, name="format_fixture")
    compile_model(model, Recipe(epochs=2, batch_size=4, warmup_epochs=1), steps_per_epoch=2)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(x, keras.utils.to_categorical(np.arange(4), 10), batch_size=4, epochs=1, verbose=0)
    model.save("tests/fixtures/keras_regnet-X.Y.Z.keras")
    np.savez("tests/fixtures/keras_regnet-X.Y.Z.expected.npz",
             inputs=x, outputs=model.predict_on_batch(x))

then add ``"X.Y.Z"`` to ``RELEASES`` below (and an expectation for anything
new its optimizer or layers carry).  Never regenerate an existing fixture:
its whole point is that it was written by the old code.
"""

import io
import os
import zipfile

import h5py
import keras
import numpy as np
import pytest

from keras_regnet.architecture.layers import GroupedConv2D
from keras_regnet.safe_io import load_keras_model
from keras_regnet.training import CoupledWeightDecaySGD, EpochCosineSchedule

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
RELEASES = ["0.1.0"]


def fixture(release, suffix):
    return os.path.join(FIXTURES, f"keras_regnet-{release}{suffix}")


def saved_optimizer_variables(path):
    """The optimizer variables as stored in the archive, by index (``optimizer/vars/N``)."""
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
        group = f["optimizer/vars"]
        return [np.asarray(group[str(i)]) for i in range(len(group))]


@pytest.mark.parametrize("release", RELEASES)
def test_saved_model_gives_the_same_outputs(release):
    expected = np.load(fixture(release, ".expected.npz"))
    model = load_keras_model(fixture(release, ".keras"))
    grouped = [layer for layer in model.layers if isinstance(layer, GroupedConv2D) and layer.groups > 1]
    assert grouped, "the fixture must exercise GroupedConv2D"
    outputs = np.asarray(model.predict_on_batch(expected["inputs"]))
    assert outputs.shape == expected["outputs"].shape
    np.testing.assert_allclose(outputs, expected["outputs"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("release", RELEASES)
def test_saved_optimizer_is_restored(release):
    path = fixture(release, ".keras")
    model = load_keras_model(path, compile=True)
    optimizer = model.optimizer
    assert type(optimizer) is CoupledWeightDecaySGD
    assert (optimizer.l2, float(optimizer.momentum), optimizer.nesterov) == (5e-05, 0.9, True)
    schedule = optimizer.get_config()["learning_rate"]  # a schedule serialises as itself, not as a number
    assert schedule["registered_name"] == "keras_regnet>EpochCosineSchedule"
    assert schedule["config"] == {
        "base_lr": 0.003125, "epochs": 2, "steps_per_epoch": 2, "warmup_epochs": 1, "warmup_factor": 0.1, "min_lr": 0.0,
    }
    # The learning rate now is the schedule's at the restored step.
    np.testing.assert_allclose(
        float(optimizer.learning_rate), float(EpochCosineSchedule(**schedule["config"])(1)), rtol=1e-6
    )
    # The optimizer state (step count, momentum buffers) is the one saved.
    saved = saved_optimizer_variables(path)
    restored = [np.asarray(v) for v in optimizer.variables]
    assert len(restored) == len(saved) and int(saved[0]) == 1 == int(optimizer.iterations.numpy())
    for got, want in zip(restored, saved):
        np.testing.assert_array_equal(got, want)
    assert any(np.abs(v).max() > 0 for v in saved[1:])  # the momentum buffers are not all zero

    # And training resumes from there.
    x = np.load(fixture(release, ".expected.npz"))["inputs"]
    model.fit(x, keras.utils.to_categorical(np.arange(len(x)) % 10, 10), batch_size=len(x), epochs=1, verbose=0)
    assert int(optimizer.iterations.numpy()) == 2
