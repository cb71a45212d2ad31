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

from keras_regnet.data import tf_pipeline as ip
from keras_regnet.training.callbacks import TrainingDiverged
from keras_regnet.training import CoupledWeightDecaySGD, EpochCosineSchedule, Recipe, epoch_lr, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_recipe_defaults_are_pycls():
    r = Recipe.for_model("RegNetY-800MF")
    assert (r.batch_size, r.lr, r.epochs, r.momentum, r.nesterov, r.weight_decay) == (1024, 0.8, 100, 0.9, True, 5e-5)
    assert (r.warmup_epochs, r.warmup_factor, r.label_smoothing, r.mixup, r.cutmix, r.ema_decay) == (5, 0.1, 0, 0, 0, None)
    assert Recipe.for_model("RegNetX-32GF").batch_size == 256 and Recipe.for_model("RegNetX-32GF").lr == 0.2
    assert Recipe(batch_size=1024).lr == pytest.approx(0.8)  # 0.1 x batch / 128
    assert Recipe(batch_size=64).lr == pytest.approx(0.05)
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
    torch = pytest.importorskip("torch")
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


def test_pca_lighting_noise_has_the_alexnet_covariance():
    tf.random.set_seed(0)
    noise = np.stack([(ip.pca_lighting(tf.zeros((1, 1, 3)), 0.1)[0, 0] / 255.0).numpy() for _ in range(3000)])
    expected = ip.EIG_VECS @ np.diag((0.1 * ip.EIG_VALS) ** 2) @ ip.EIG_VECS.T
    np.testing.assert_allclose(np.cov(noise.T), expected, atol=0.15 * expected.max())
    # The same offset is added to every pixel.
    img = ip.pca_lighting(tf.fill((4, 5, 3), 100.0), 0.1).numpy()
    assert np.allclose(img, img[0, 0])


def test_transforms_shapes_and_crop_statistics():
    r = Recipe(image_size=64)
    image = tf.cast(tf.random.uniform((120, 90, 3), 0, 255, tf.int32), tf.uint8)
    assert ip.train_transform(image, r, small_images=False).shape == (64, 64, 3)
    assert ip.eval_transform(image, r, small_images=False).shape == (64, 64, 3)
    assert ip.train_transform(tf.zeros((32, 32, 3), tf.uint8), Recipe(image_size=32), small_images=True).shape == (32, 32, 3)
    # Inception crop: area fraction within [0.08, 1], aspect within [3/4, 4/3].
    areas = []
    for _ in range(200):
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            (200, 200, 3), tf.zeros([1, 0, 4]), min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
        areas.append(float(size[0] * size[1]) / 200**2)
    assert 0.07 <= min(areas) and max(areas) <= 1.0 and np.mean(areas) < 0.8


def test_mixup_and_cutmix_keep_label_mass():
    x = tf.random.uniform((8, 16, 16, 3))
    y = tf.one_hot(tf.range(8) % 4, 4)
    for mixup, cutmix in ((0.2, 0.0), (0.0, 1.0), (0.2, 1.0)):
        mx, my = ip.mix_batch(x, y, mixup, cutmix)
        assert mx.shape == x.shape
        np.testing.assert_allclose(tf.reduce_sum(my, axis=1), 1.0, rtol=1e-5)


def test_directory_source(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    source = ip.open_source(str(tmp_path))
    assert source.class_names == ["cat", "dog"] and (source.num_train, source.num_validation) == (18, 2)
    image, label = next(iter(source.train))
    assert image.shape == (40, 50, 3) and int(label) == 0


def test_short_real_run_learns(tmp_path):
    # 4,000 real CIFAR-10 images, 6 epochs on CPU (about a minute): validation
    # accuracy far above the 10% of chance (measured 0.396, top-5 0.901).
    recipe = Recipe(epochs=6, batch_size=64, image_size=32, warmup_epochs=2)  # lr 0.1 x 64/128
    results = train("RegNetX-200MF", data="embedded", output_dir=str(tmp_path), recipe=recipe, verbose=0)
    assert results["small_images"] and results["num_train"] == 4000 and results["num_validation"] == 1000
    assert results["final"]["val_accuracy"] >= 0.30, results["final"]
    assert results["final"]["val_top5_accuracy"] >= 0.75, results["final"]
    for name in ("best.keras", "last.keras", "log.csv", "curves.png", "results.json"):
        assert (tmp_path / name).is_file(), name
    restored = keras.models.load_model(tmp_path / "last.keras")
    assert restored.output.shape == (None, 10)
    with open(tmp_path / "log.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(6))


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

    class ThreeReplicas:  # a stand-in tf.distribute strategy
        num_replicas_in_sync = 3

        def scope(self):
            raise AssertionError("no model may be built when the batch does not divide")

    import keras_regnet.training.loop as training

    monkeypatch.setattr(training, "make_strategy", lambda name: ThreeReplicas())
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
    pytest.importorskip("jax")
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
