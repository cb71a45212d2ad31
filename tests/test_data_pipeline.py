"""keras_regnet.data.prepare: one entry point from data to model.fit, on TensorFlow and without it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_regnet.data import TrainingData, eval_batches, numpy_batches, open_source, prepare
from keras_regnet.data.pipeline_numpy import Batches
from keras_regnet.training import Recipe
from conftest import require  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = Recipe(epochs=1, batch_size=64, image_size=32)


def first(batches):
    return next(iter(numpy_batches(batches)))


def test_embedded_on_tensorflow_is_tf_data_with_one_hot_labels():
    data = prepare("embedded", SMALL, small_images=True)
    assert isinstance(data, TrainingData) and isinstance(data.train, tf.data.Dataset)
    assert (data.num_train, data.num_validation, data.steps_per_epoch) == (4000, 1000, 62)
    assert data.class_names[0] == "airplane" and data.description == "embedded"
    images, labels = first(data.train)
    assert images.shape == (64, 32, 32, 3) and images.dtype == np.float32 and labels.shape == (64, 10)
    np.testing.assert_array_equal(labels.sum(1), 1.0)
    # Augmented: CIFAR crops bring in padding in pycls's colour, the normalisation's mean: off the integers.
    assert np.any(images != np.round(images))
    batches = list(numpy_batches(data.validation))
    assert len(batches) == 16 and sum(len(b[0]) for b in batches) == 1000
    source = open_source("embedded")
    np.testing.assert_array_equal(batches[0][0], source.validation.images[:64].astype(np.float32))


def test_a_seed_repeats_shuffle_and_augmentation():
    # Multi-worker tf.distribute needs the same order on every worker.
    recipe = Recipe(epochs=1, batch_size=32, image_size=32, mixup=0.2)
    a, b = (first(prepare("embedded", recipe, small_images=True, seed=7).train) for _ in range(2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = first(prepare("embedded", recipe, small_images=True, seed=8).train)
    assert not np.array_equal(a[1], c[1])


def test_arrays_go_through_the_recipe_transforms():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 48, 40, 3), dtype=np.uint8), rng.integers(0, 5, 40)
    recipe = Recipe(epochs=1, batch_size=8, image_size=32, cutmix=1.0, randaugment=0.3)
    data = prepare((x, y), recipe, small_images=False, validation_data=(x[:10], y[:10]))
    assert (data.num_train, data.num_validation, data.steps_per_epoch) == (40, 10, 5) and len(data.class_names) == 5
    images, labels = first(data.train)
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8, 5)
    np.testing.assert_allclose(labels.sum(1), 1.0, rtol=1e-5)
    val_images, _ = first(data.validation)
    assert val_images.shape == (8, 32, 32, 3)  # pycls's eval resize + centre crop


def test_ready_batches_are_used_as_given():
    x = np.zeros((10, 32, 32, 3), np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(10) % 3]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    data = prepare(ds, SMALL, small_images=True, validation_data=ds)
    assert data.train is ds and data.validation is ds and data.steps_per_epoch == 3
    assert data.class_names == ["0", "1", "2"] and data.num_train is None and data.num_validation is None

    class Given(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[:4], y[:4]

    given = Given()
    data = prepare(given, SMALL, small_images=True)
    assert data.train is given and data.validation is None and data.steps_per_epoch == 2
    assert data.description == "Given given by the caller"
    with pytest.raises(ValueError, match=r"recipe.mixup=0.2 cannot be applied to data \(a ready-batched Given\)"):
        prepare(given, Recipe(image_size=32, mixup=0.2), small_images=True)
    with pytest.raises(ValueError, match="known, finite number of batches"):
        prepare(ds.repeat(), SMALL, small_images=True)
    with pytest.raises(ValueError, match=r"yields images of shape \(32, 32, 3\); recipe.image_size=64"):
        prepare(ds, Recipe(image_size=64), small_images=False)


def test_bad_data_fails_clearly():
    with pytest.raises(ValueError, match=r"batch_size=64 is larger than the 40 training images of data='numpy arrays"):
        prepare((np.zeros((40, 32, 32, 3), np.uint8), np.zeros(40, int)), SMALL, small_images=True)
    with pytest.raises(ValueError, match=r"small_images keeps the images' own size, \(16, 16\), but recipe.image_size=32"):
        prepare((np.zeros((80, 16, 16, 3), np.uint8), np.zeros(80, int)), SMALL, small_images=True)
    with pytest.raises(ValueError, match="data must be a name .* got int"):
        prepare(3, SMALL, small_images=True)
    with pytest.raises(ValueError, match="Unknown dataset data='no_such_dataset'"):
        prepare("no_such_dataset", SMALL, small_images=True)


def test_numpy_batches_reshuffle_every_epoch_and_repeat_with_a_seed():
    source = open_source("embedded")
    make = lambda seed: Batches(source.train, 50, recipe=SMALL, small_images=True, num_classes=10, seed=seed)  # noqa: E731
    a, b = make(1), make(1)
    assert len(a) == 80
    np.testing.assert_array_equal(a[3][0], b[3][0])
    epoch0 = a[0][1].argmax(1)
    a.on_epoch_end()
    assert not np.array_equal(a[0][1].argmax(1), epoch0)
    with pytest.raises(IndexError):
        a[80]


def test_tf_and_numpy_pipelines_read_a_folder_alike(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (70 + i, 90, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    examples = open_source(str(tmp_path)).train  # 2 per class after the hold-out
    tf_images, tf_labels = first(eval_batches(examples, 64, 4, num_classes=None))
    np_images, np_labels = Batches(examples, 4, image_size=64)[0]
    np.testing.assert_array_equal(tf_labels, np_labels)
    np.testing.assert_allclose(tf_images, np_images, atol=0.02)


JAX_SCRIPT = r"""
import json, sys
import no_tensorflow  # noqa: F401  (first: every tensorflow import fails)
import keras, numpy as np
from keras_regnet.data import prepare, numpy_batches
from keras_regnet.training import Recipe

out = {"backend": keras.backend.backend()}
recipe = Recipe(epochs=1, batch_size=16, image_size=32, mixup=0.2, cutmix=1.0, randaugment=0.2)
data = prepare("embedded", recipe, small_images=True, seed=0)
x, y = data.train[0]
out.update(train=type(data.train).__name__, shape=list(x.shape), dtype=str(x.dtype), label_sums=np.round(y.sum(1), 5).tolist(),
           mixed=bool(np.any((y > 0) & (y < 1))), steps=data.steps_per_epoch, num_validation=data.num_validation)
folder = prepare(sys.argv[1], Recipe(epochs=1, batch_size=4, image_size=48), small_images=False)
fx, fy = folder.train[0]
out.update(folder_shape=list(fx.shape), folder_classes=folder.class_names, folder_counts=[folder.num_train, folder.num_validation])
from keras_regnet.evaluation import open_eval_data
evaluation = open_eval_data(sys.argv[1], 2, image_size=32, batch_size=8)
labels = np.concatenate([y for _, y in numpy_batches(evaluation.dataset)])
out.update(eval_count=evaluation.num_images, eval_labels=np.bincount(labels).tolist())
try:
    prepare("imagenet2012", recipe, small_images=False)
except ValueError as e:
    out["tfds_error"] = str(e)
out["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(out))
"""


def test_prepare_on_jax_without_tensorflow(tmp_path):
    require("jax")
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(11):
            Image.fromarray(np.full((60, 50, 3), i, np.uint8)).save(tmp_path / c / f"{i}.jpg")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax" and out["tensorflow_imported"] is False and out["train"] == "Batches"
    assert out["shape"] == [16, 32, 32, 3] and out["dtype"] == "float32" and out["label_sums"] == [1.0] * 16
    assert out["mixed"] and out["steps"] == 250 and out["num_validation"] == 1000
    assert out["folder_shape"] == [4, 48, 48, 3] and out["folder_classes"] == ["cat", "dog"] and out["folder_counts"] == [18, 4]
    assert out["eval_count"] == 22 and out["eval_labels"] == [11, 11]  # evaluation reads every image of the folder
    assert "data='imagenet2012'" in out["tfds_error"] and "needs the TensorFlow backend; Keras is running on 'jax'" in out["tfds_error"]
