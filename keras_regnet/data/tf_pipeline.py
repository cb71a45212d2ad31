"""Compatibility names for callers not yet moved to :func:`keras_regnet.data.prepare`.

Thin wrappers over :mod:`keras_regnet.data.sources`,
:mod:`keras_regnet.data.pipeline_tf` and
:mod:`keras_regnet.data.transforms_tf`; nothing is implemented here.  To be
removed once ``export.py`` imports ``eval_resize_crop`` from
:mod:`keras_regnet.data.transforms_tf`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from keras_regnet.data import augment, pipeline_tf
from keras_regnet.data import transforms_tf as t
from keras_regnet.data.geometry import EIG_VALS, EIG_VECS  # noqa: F401  (compatibility names)
from keras_regnet.data.sources import Source, open_source as open_any_source
from keras_regnet.data.transforms_tf import eval_resize_crop, inception_crop  # noqa: F401  (compatibility names)

AUTOTUNE = pipeline_tf.AUTOTUNE


def open_source(data: str, data_dir: Optional[str] = None, manual_dir: Optional[str] = None) -> Source:
    """Compatibility: :func:`keras_regnet.data.open_source`."""
    return open_any_source(data, data_dir=data_dir, manual_dir=manual_dir)


def make_datasets(source: Source, recipe, small_images: bool = False, batch_size: Optional[int] = None, seed=None):
    """Compatibility: ``(train, validation)`` tf.data batches of ``source`` (use :func:`keras_regnet.data.prepare`)."""
    if batch_size:
        recipe = dataclasses.replace(recipe, batch_size=batch_size)
    train = pipeline_tf.train_dataset(source.train, recipe, small_images, source.num_classes, seed=seed)
    validation = pipeline_tf.eval_dataset(
        source.validation, recipe.image_size, recipe.batch_size, small_images, source.num_classes
    )
    return train, validation


def _seed():
    """A stateless seed from TensorFlow's global random stream (``tf.random.set_seed`` applies)."""
    return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)


def train_transform(image, recipe, small_images):
    """Compatibility: :func:`keras_regnet.data.augment.train_image` on TensorFlow."""
    return augment.train_image(t, image, recipe, small_images, _seed())


def eval_transform(image, recipe, small_images):
    """Compatibility: :func:`keras_regnet.data.augment.eval_image` on TensorFlow."""
    return augment.eval_image(t, image, recipe.image_size, small_images)


def pca_lighting(image_255, std):
    """Compatibility: :func:`keras_regnet.data.transforms_tf.pca_lighting` with a drawn seed."""
    return t.pca_lighting(image_255, std, _seed())


def mix_batch(images, labels, mixup_alpha, cutmix_alpha):
    """Compatibility: :func:`keras_regnet.data.transforms_tf.mix` with a drawn seed."""
    return t.mix(images, labels, mixup_alpha, cutmix_alpha, _seed())
