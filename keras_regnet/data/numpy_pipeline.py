"""Compatibility name for callers not yet moved to :func:`keras_regnet.data.prepare`.

To be removed once ``training/loop.py`` calls :func:`keras_regnet.data.prepare`.
"""

from __future__ import annotations

from keras_regnet.data.pipeline import prepare


def make_batches(data: str, recipe, small_images: bool, workers: int = 1):
    """Compatibility: ``(train, validation, num_train, num_validation, class_names)`` from :func:`prepare`.

    ``workers`` is ignored (batches are made in the calling thread).
    """
    prepared = prepare(data, recipe, small_images=small_images)
    return prepared.train, prepared.validation, prepared.num_train, prepared.num_validation, prepared.class_names
