"""A TensorFlow-free input pipeline: ``keras.utils.PyDataset`` batches over a
:class:`~keras_regnet.data.sources.Examples` split (numpy + Pillow).

The same transforms as the tf.data pipeline (:mod:`keras_regnet.data.augment`
over :mod:`keras_regnet.data.transforms_numpy`), for the JAX and torch
backends and machines without TensorFlow.  Images in memory or image files;
TensorFlow Datasets splits need the tf.data pipeline and are refused.

Randomness: each batch draws from its own generator, seeded by (the
pipeline's seed, the epoch, the batch index), so batches can be made in
any order or in parallel threads and a seeded pipeline repeats exactly.
"""

from __future__ import annotations

import math
import os
from typing import Optional

import keras
import numpy as np

from keras_regnet.data import augment
from keras_regnet.data import transforms_numpy as t
from keras_regnet.data.sources import Examples
from keras_regnet.errors import InvalidFileError

def decode_file(path: str) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); first frame of a GIF.

    Raises:
        InvalidFileError: not a JPEG, PNG, GIF or BMP image, or damaged
            (Pillow's decompression-bomb limit included).
    """
    try:
        return t.decode_image(path)
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad images
        raise InvalidFileError(path, f"is not a readable JPEG, PNG, GIF or BMP image ({type(e).__name__}: {e})") from None


def read_examples(examples: Examples, indices):
    """``(images, labels)`` of ``examples`` at ``indices``: a uint8 array, or a list of images from files."""
    if examples.tfds_split is not None:
        raise ValueError(
            f"TensorFlow Datasets split {examples.tfds_split!r} needs the tf.data pipeline (the TensorFlow backend)."
        )
    labels = examples.labels[indices]
    if examples.images is not None:
        return examples.images[indices], labels
    return [decode_file(examples.files[i]) for i in indices], labels


def reading_workers(examples: Examples) -> int:
    """Threads making batches: one for images in memory (fast enough), up to 8 for files to decode.

    Pillow and numpy release the GIL while decoding and resizing.
    """
    return 1 if examples.files is None else min(8, os.cpu_count() or 1)


class Batches(keras.utils.PyDataset):
    """Batches of (transformed) images from an :class:`Examples` split.

    Training (``recipe`` given): shuffled every epoch, the recipe's train
    transforms, the remainder dropped (as tf.data's ``drop_remainder``),
    one-hot labels.  Evaluation (``recipe=None``): in order, the eval
    transform ``eval_transform`` at ``image_size``; one-hot labels, or integers when
    ``num_classes`` is None.
    """

    def __init__(
        self, examples: Examples, batch_size: int, *, recipe=None, image_size: Optional[int] = None,
        small_images: bool = False, eval_transform: str = "resize_crop", num_classes: Optional[int] = None, seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        read_examples(examples, [])  # refuses a tfds split now, not at the first batch
        self.examples, self.batch_size, self.recipe = examples, batch_size, recipe
        self.image_size = recipe.image_size if recipe is not None else image_size
        self.small_images, self.eval_transform, self.num_classes = small_images, eval_transform, num_classes
        self.training = recipe is not None
        self.entropy = np.random.SeedSequence(seed).entropy
        self.epoch = 0
        self.orders = {}  # epoch -> example order, made once per epoch

    def __len__(self):
        if self.training:
            return self.examples.count // self.batch_size
        return math.ceil(self.examples.count / self.batch_size)

    def order(self) -> np.ndarray:
        """This epoch's example order: a fresh permutation when training."""
        if not self.training:
            return np.arange(self.examples.count)
        if self.epoch not in self.orders:
            self.orders = {self.epoch: np.random.default_rng([self.entropy, self.epoch]).permutation(self.examples.count)}
        return self.orders[self.epoch]

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        idx = self.order()[index * self.batch_size : (index + 1) * self.batch_size]
        images, labels = read_examples(self.examples, idx)
        if self.num_classes is not None:
            labels = np.eye(self.num_classes, dtype=np.float32)[labels]
        if not self.training:
            return np.stack([augment.eval_image(t, im, self.image_size, self.eval_transform) for im in images]), labels
        rng = np.random.default_rng([self.entropy, self.epoch, index])
        image_rngs = t.split_rng(rng, len(idx) + 1)
        images = np.stack([augment.train_image(t, im, self.recipe, self.small_images, r) for im, r in zip(images, image_rngs)])
        return augment.train_batch(t, images, labels, self.recipe, image_rngs[-1])

    def on_epoch_end(self):
        self.epoch += 1
