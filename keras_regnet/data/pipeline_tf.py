"""tf.data input pipelines over a :class:`~keras_regnet.data.sources.Examples` split.

Batches of float32 RGB in [0, 255] (the models normalise inside) with
one-hot labels (or integer labels for evaluation), with parallel map and
prefetch (AUTOTUNE).  The transforms are :mod:`keras_regnet.data.augment`
over :mod:`keras_regnet.data.transforms_tf`; their randomness is stateless,
one seed per example (and per batch) drawn from ``tf.data.Dataset.random``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_regnet.data import augment
from keras_regnet.data import transforms_tf as t
from keras_regnet.data.sources import Examples

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BUFFER = 10_000

# What tf.io.decode_image reads: JPEG, PNG, GIF, BMP.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def decode_files(files, labels) -> tf.data.Dataset:
    """(uint8 image, label) pairs decoded from image files; a non-image file is named in the error."""

    def load(path, label):
        raw = tf.io.read_file(path)
        is_image = tf.reduce_any([tf.strings.substr(raw, 0, len(s)) == s for s in IMAGE_SIGNATURES])
        # TensorFlow's own decode error does not say which file: name it.
        check = tf.debugging.Assert(is_image, ["not a JPEG, PNG, GIF or BMP image:", path])
        with tf.control_dependencies([check]):
            image = t.decode_image(raw)
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((list(files), np.asarray(labels, np.int64)))
    return ds.map(load, num_parallel_calls=AUTOTUNE)


def examples_dataset(examples: Examples) -> tf.data.Dataset:
    """Unbatched (uint8 image, int64 label) pairs of ``examples``, in order."""
    if examples.images is not None:
        return tf.data.Dataset.from_tensor_slices((examples.images, examples.labels))
    if examples.files is not None:
        return decode_files(examples.files, examples.labels)
    ds = examples.tfds_builder.as_dataset(split=examples.tfds_split, as_supervised=True, shuffle_files=False)
    return ds if examples.limit is None else ds.take(examples.limit)


def random_seeds(seed: Optional[int]) -> tf.data.Dataset:
    """An endless stream of stateless seeds (shape [2]), new each epoch; ``seed=None``: the global seed."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def _offset(seed, k):
    return None if seed is None else seed + k


def train_dataset(examples: Examples, recipe, small_images: bool, num_classes: int, seed: Optional[int] = None):
    """Shuffled, augmented, batched training data (remainder dropped) with one-hot labels.

    ``seed`` makes the shuffle (and the augmentation) the same on every run
    and every worker: multi-worker tf.distribute shards each batch across
    workers, a partition only when all shuffle alike.
    """
    if recipe.randaugment:
        t.randaugment_layer(float(recipe.randaugment))  # built eagerly, not inside the dataset function

    def per_image(example, rng):
        image, label = example
        return augment.train_image(t, image, recipe, small_images, rng), tf.one_hot(label, num_classes)

    def per_batch(batch, rng):
        return augment.train_batch(t, batch[0], batch[1], recipe, rng)

    buffer = min(examples.count or SHUFFLE_BUFFER, SHUFFLE_BUFFER)
    ds = examples_dataset(examples).shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, random_seeds(seed)).map(per_image, num_parallel_calls=AUTOTUNE)
    ds = ds.batch(recipe.batch_size, drop_remainder=True)
    if augment.has_batch_transforms(recipe):
        ds = tf.data.Dataset.zip(ds, random_seeds(_offset(seed, 1))).map(per_batch, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def eval_dataset(examples: Examples, image_size: int, batch_size: int, transform: str = "resize_crop", num_classes=None):
    """Batched evaluation data in order through the eval ``transform``; one-hot labels, or integers when ``num_classes`` is None."""

    def per_image(image, label):
        label = label if num_classes is None else tf.one_hot(label, num_classes)
        return augment.eval_image(t, image, image_size, transform), label

    ds = examples_dataset(examples).map(per_image, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
