"""The training recipe, its input pipeline, and train(): learning, resuming, failing clearly."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_regnet.data import prepare
from keras_regnet.training.callbacks import TrainingDiverged
from keras_regnet.training import CoupledWeightDecaySGD, EpochCosineSchedule, Recipe, epoch_lr, linear_scaled_lr, train
from conftest import require  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_recipe_defaults_are_pycls():
    r = Recipe.for_model("RegNetY-800MF")
    assert (r.batch_size, r.lr, r.epochs, r.momentum, r.nesterov, r.weight_decay) == (1024, 0.8, 100, 0.9, True, 5e-5)
    assert (r.warmup_epochs, r.warmup_factor, r.label_smoothing, r.mixup, r.cutmix, r.ema_decay) == (5, 0.1, 0, 0, 0, None)
    assert Recipe.for_model("RegNetX-32GF").batch_size == 256 and Recipe.for_model("RegNetX-32GF").lr == 0.2
    assert Recipe(batch_size=1024).lr == pytest.approx(0.8)  # 0.1 x batch / 128
    assert Recipe(batch_size=64).lr == pytest.approx(0.05) and linear_scaled_lr(256) == pytest.approx(0.2)
    # A smaller batch for a published model scales its learning rate with it (linear rule).
    assert Recipe.for_model("RegNetX-200MF", batch_size=128).lr == pytest.approx(0.1)
    assert Recipe.for_model("RegNetX-32GF", batch_size=512).lr == pytest.approx(0.4)
    assert Recipe.for_model("RegNetX-200MF", batch_size=128, base_lr=0.3).lr == pytest.approx(0.3)


def test_schedule_is_pycls_per_epoch_cosine_with_warmup():
    r = Recipe.for_model("RegNetY-800MF")
    assert epoch_lr(r, 0) == pytest.approx(0.08)  # warm-up starts at 0.1 x
    assert epoch_lr(r, 5) == pytest.approx(0.8 * 0.5 * (1 + math.cos(math.pi * 5 / 100)))
    assert epoch_lr(r, 50) == pytest.approx(0.4)
    assert epoch_lr(r, 2) == pytest.approx(0.8 * 0.5 * (1 + math.cos(math.pi * 2 / 100)) * (0.1 * 0.6 + 0.4))
    schedule = EpochCosineSchedule(r.lr, r.epochs, 10, r.warmup_epochs, r.warmup_factor)
    for epoch in (0, 1, 4, 5, 37, 99):
        for step in (0, 9):  # constant within an epoch, as pycls sets it per epoch
            assert float(schedule(epoch * 10 + step)) == pytest.approx(epoch_lr(r, epoch), rel=1e-5, abs=1e-6)


def test_weight_decay_is_coupled_like_pytorch_sgd():
    torch = require("torch")
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(7,)).astype("float32")
    v = keras.Variable(w0)
    opt = CoupledWeightDecaySGD(l2=5e-2, learning_rate=0.3, momentum=0.9, nesterov=True)
    tw = torch.nn.Parameter(torch.tensor(w0))
    topt = torch.optim.SGD([tw], lr=0.3, momentum=0.9, nesterov=True, weight_decay=5e-2)
    for _ in range(4):
        g = rng.normal(size=(7,)).astype("float32")
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), v)])
        tw.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(v.numpy(), tw.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_directory_source_trains_at_the_recipe_size(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    data = prepare(str(tmp_path), Recipe(image_size=32, batch_size=6), small_images=False)
    assert data.class_names == ["cat", "dog"] and (data.num_train, data.num_validation, data.steps_per_epoch) == (18, 2, 3)
    images, labels = next(iter(data.train))
    assert images.shape == (6, 32, 32, 3) and labels.shape == (6, 2)
    np.testing.assert_allclose(np.sum(labels, axis=1), 1.0)


def test_short_real_run_learns(tmp_path):
    # 4,000 real CIFAR-10 images, 6 epochs on CPU (about a minute): validation
    # accuracy far above the 10% of chance (measured 0.396, top-5 0.901).
    recipe = Recipe(epochs=6, batch_size=64, image_size=32, warmup_epochs=2)  # lr 0.1 x 64/128
    results = train("RegNetX-200MF", data="embedded", output_dir=str(tmp_path), recipe=recipe, verbose=0)
    assert results["small_images"] and results["num_train"] == 4000 and results["num_validation"] == 1000
    assert (results["complete"], results["epochs_done"], results["epochs_run_this_call"]) == (True, 6, 6)
    assert results["final"]["val_accuracy"] >= 0.30, results["final"]
    assert results["final"]["val_top5_accuracy"] >= 0.75, results["final"]
    for name in ("best.keras", "last.keras", "log.csv", "curves.png", "results.json"):
        assert (tmp_path / name).is_file(), name
    restored = keras.models.load_model(tmp_path / "last.keras")
    assert restored.output.shape == (None, 10)
    with open(tmp_path / "log.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(6))


def test_train_takes_arrays_and_ready_batches(tmp_path):
    from keras_regnet import RegNetConfig

    config = RegNetConfig(depth=4, w0=24, wa=24.0, wm=2.5, group_width=8)  # small: quick on a CPU
    recipe = Recipe(epochs=1, batch_size=32, image_size=32, warmup_epochs=0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 96)
    results = train(config, data=(images[:64], labels[:64]), validation_data=(images[64:], labels[64:]),
                    output_dir=str(tmp_path / "arrays"), recipe=recipe, verbose=0)
    assert (results["num_train"], results["num_validation"], results["epochs_done"]) == (64, 32, 1)
    assert math.isfinite(results["final"]["val_loss"])
    assert keras.models.load_model(tmp_path / "arrays" / "last.keras").output.shape == (None, 3)

    one_hot = np.eye(3, dtype="float32")[labels]
    batches = tf.data.Dataset.from_tensor_slices((images.astype("float32"), one_hot)).batch(32)
    results = train(config, data=batches, output_dir=str(tmp_path / "batches"), recipe=recipe, verbose=0)
    assert results["data"] == "_BatchDataset given by the caller" and results["epochs_run_this_call"] == 1
    assert math.isfinite(results["final"]["loss"]) and "val_loss" not in results["final"]
    # The model's name is the builder's (keras_regnet.architecture.zoo.function_name).
    assert keras.models.load_model(tmp_path / "batches" / "last.keras").name == "custom"


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    recipe = Recipe(epochs=2, batch_size=128, base_lr=1e12, image_size=32, warmup_epochs=0)
    with pytest.raises(TrainingDiverged, match=r"the loss became (nan|inf) at epoch 1, batch \d+\. Lower the learning rate"):
        train("RegNetX-200MF", output_dir=str(tmp_path), recipe=recipe, verbose=0)


def test_mid_epoch_backups_also_record_finished_epochs(tmp_path):
    """With save_freq=N steps Keras alone leaves "epoch 0" as the last backup of epoch 0."""
    from keras_regnet.training.callbacks import BackupAndRestore

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((8, 3), "float32"), np.zeros((8, 2), "float32")
    metadata = tmp_path / "backup" / "training_metadata.json"

    class StopAfterFirstEpoch(keras.callbacks.Callback):  # a "kill" before any step of epoch 1 backs up
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    for backup_class, expected in ((keras.callbacks.BackupAndRestore, 0), (BackupAndRestore, 1)):
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=2, epochs=3, verbose=0,
                      callbacks=[backup_class(str(tmp_path / "backup"), save_freq=3), StopAfterFirstEpoch()])
        assert json.loads(metadata.read_text())["epoch"] == expected  # epochs to skip on restart
        metadata.unlink()


def test_killed_run_resumes_with_the_same_command(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "keras_regnet.cli", "train", "--model", "RegNetX-200MF", "--epochs", "3",
           "--batch-size", "128", "--output-dir", str(out), "--backup-every-steps", "5"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        # Wait until epoch 1 is logged, then a little into epoch 2, then SIGKILL.
        while time.time() < deadline:
            if (out / "log.csv").is_file() and len((out / "log.csv").read_text().splitlines()) >= 2:
                break
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.5)
        time.sleep(4)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run_this_call"] < 3  # resumed, not restarted
    with open(out / "log.csv") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert sorted(set(epochs)) == [0, 1, 2] and epochs[-1] == 2
    assert keras.models.load_model(out / "last.keras") is not None


def test_bad_inputs_fail_before_any_work(tmp_path, monkeypatch):
    small = Recipe(epochs=1, batch_size=64, image_size=32)
    with pytest.raises(ValueError, match=r"Unknown dataset data='no_such_dataset'"):
        train(data="no_such_dataset", output_dir=str(tmp_path / "a"), recipe=small)
    with pytest.raises(ValueError, match=r"data='imagenet2012' needs its files downloaded by hand: pass manual_dir"):
        train(data="imagenet2012", output_dir=str(tmp_path / "b"), recipe=small, data_dir=str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match=r"image_size must be >= 32; got image_size=16"):
        Recipe(image_size=16)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"output_dir='.*file/run' is not writable"):
        train(output_dir=str(blocker / "run"), recipe=small)
    with pytest.raises(ValueError, match=r"Unknown RegNet model name='RegNetQ'"):
        train("RegNetQ", output_dir=str(tmp_path / "c"), recipe=small)

    def no_scope():
        raise AssertionError("no model may be built when the batch does not divide")

    import keras_regnet.training.loop as training
    from keras_regnet.training.distribute import Distribution

    monkeypatch.setattr(training, "make_distribution", lambda name: Distribution(replicas=3, scope=no_scope))
    with pytest.raises(ValueError, match=r"batch_size=64 is not divisible by the 3 replicas"):
        train(output_dir=str(tmp_path / "d"), recipe=small)


def test_mixed_precision_run(tmp_path):
    # bfloat16 runs on CPU; float16 is the GPU choice and takes the same path.
    recipe = Recipe(epochs=1, batch_size=64, image_size=32, warmup_epochs=0)
    results = train("RegNetX-200MF", output_dir=str(tmp_path), recipe=recipe, mixed_precision="mixed_bfloat16", verbose=0)
    assert results["mixed_precision"] == "mixed_bfloat16" and math.isfinite(results["final"]["loss"])
    model = keras.models.load_model(tmp_path / "last.keras")
    assert model.get_layer("s2_b1_b_conv").compute_dtype == "bfloat16"
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_jax_backend_trains_without_tensorflow(tmp_path):
    require("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "jax_train_worker.py"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["keras_backend"] == "jax" and results["backend"] == "jax"
    assert results["tensorflow_imported"] is False
    assert results["epochs_run_this_call"] == 2 and math.isfinite(results["final"]["loss"])
    assert results["final"]["val_accuracy"] > 0.15  # 2 epochs of a small RegNet: above chance (0.10)
    assert (tmp_path / "last.keras").is_file() and (tmp_path / "curves.png").is_file()
