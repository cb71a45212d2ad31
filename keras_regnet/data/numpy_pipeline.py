"""A TensorFlow-free input pipeline (numpy + Pillow) for the JAX and torch backends.

The same transforms as :mod:`keras_regnet.input_pipeline`, as
``keras.utils.PyDataset`` batches (float32 RGB in [0, 255], one-hot labels),
so training runs where TensorFlow is not installed (the lent GPU machines).
Sources: ``"embedded"`` and CIFAR-10 JPEG ``.npz`` files, held in memory as
uint8 arrays.  (Image directories and TensorFlow Datasets need the tf.data
pipeline.)
"""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_regnet.data.geometry import EIG_VALS, EIG_VECS, eval_geometry


def pca_lighting(batch, std, rng):
    """AlexNet lighting noise per image (pycls on [0, 1] pixels, here on [0, 255])."""
    alpha = rng.normal(0.0, std, size=(len(batch), 3)).astype(np.float32)
    rgb = (alpha * EIG_VALS) @ EIG_VECS.T  # (n, 3): EIG_VECS @ (alpha * eigval) per image
    return batch + 255.0 * rgb[:, None, None, :]


def pad_crop_flip(images, rng, pad=4):
    """CIFAR augmentation: zero-pad by 4, random crop back, random horizontal flip."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ys = rng.integers(0, 2 * pad + 1, n)
    xs = rng.integers(0, 2 * pad + 1, n)
    out = np.stack([padded[i, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(ys, xs))])
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def inception_crop(image, size, rng):
    """Random area 8-100% / aspect 3/4-4/3 crop resized to ``size`` (10 tries, then centre)."""
    from PIL import Image

    h, w = image.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(0.08, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ch, cw = int(round(math.sqrt(area / aspect))), int(round(math.sqrt(area * aspect)))
        if 0 < ch <= h and 0 < cw <= w:
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = image[y : y + ch, x : x + cw]
            break
    else:
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        crop = image[y : y + side, x : x + side]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))


def _linear_weights(n_in, n_out):
    """Source indices and weights of 1-D linear resampling, half-pixel centres, no antialiasing."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize_bilinear(image, height, width):
    """Bilinear resize as OpenCV's INTER_LINEAR and ``tf.image.resize`` do (pycls's eval resize).

    Pillow antialiases when shrinking, which would change eval inputs
    visibly; this is the plain separable interpolation, float32 out.
    """
    image = image.astype(np.float32)
    lo, hi, t = _linear_weights(image.shape[0], height)
    image = image[lo] * (1 - t)[:, None, None] + image[hi] * t[:, None, None]
    lo, hi, t = _linear_weights(image.shape[1], width)
    return image[:, lo] * (1 - t)[None, :, None] + image[:, hi] * t[None, :, None]


def eval_resize_crop(image, size):
    """pycls's eval transform (:func:`eval_geometry`), float32 out."""
    h, w = image.shape[:2]
    nh, nw, y, x = eval_geometry(h, w, size)
    image = resize_bilinear(image, nh, nw) if (nh, nw) != (h, w) else image.astype(np.float32)
    return image[y : y + size, x : x + size]


class ArrayBatches(keras.utils.PyDataset):
    """Batches of (augmented) images from in-memory uint8 arrays."""

    def __init__(self, images, labels, num_classes, recipe, training, small_images, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.num_classes = num_classes
        self.recipe = recipe
        self.training = training
        self.small_images = small_images
        self.batch_size = recipe.batch_size
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(images))
        if training:
            self.rng.shuffle(self.order)

    def __len__(self):
        if self.training:
            return len(self.images) // self.batch_size  # drop the remainder, as tf.data does
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images, labels = self.images[idx], self.labels[idx]
        size = self.recipe.image_size
        if self.training:
            if self.small_images:
                images = pad_crop_flip(images, self.rng)
            else:
                images = np.stack([inception_crop(im, size, self.rng) for im in images])
                flip = self.rng.random(len(images)) < 0.5
                images[flip] = images[flip, :, ::-1]
            images = images.astype(np.float32)
            if self.recipe.pca_lighting:
                images = pca_lighting(images, self.recipe.pca_lighting, self.rng)
        else:
            if not self.small_images:
                images = np.stack([eval_resize_crop(im, size) for im in images])
            images = images.astype(np.float32)
        return images, np.eye(self.num_classes, dtype=np.float32)[labels]

    def on_epoch_end(self):
        if self.training:
            self.rng.shuffle(self.order)


def make_batches(data: str, recipe, small_images: bool, workers: int = 1):
    """(train, validation, num_train, num_validation, class_names) without TensorFlow."""
    from keras_regnet.data.cifar10 import load_cifar10_jpeg_npz, load_embedded_cifar10

    if data == "embedded":
        train, val = load_embedded_cifar10("train"), load_embedded_cifar10("validation")
    elif data.endswith(".npz"):
        train, val = load_cifar10_jpeg_npz(data, "train"), load_cifar10_jpeg_npz(data, "validation")
    else:
        raise ValueError(
            f"data={data!r}: on the {keras.backend.backend()} backend only 'embedded' and CIFAR-10 "
            ".npz files are supported (image directories and TensorFlow Datasets need TensorFlow)."
        )
    (xt, yt, classes), (xv, yv, _) = train, val
    kw = dict(workers=workers, use_multiprocessing=False)
    return (
        ArrayBatches(xt, yt, len(classes), recipe, True, small_images, **kw),
        ArrayBatches(xv, yv, len(classes), recipe, False, small_images, **kw),
        len(xt),
        len(xv),
        classes,
    )
