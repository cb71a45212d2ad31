"""pycls's transforms in numpy: the TensorFlow-free half of the data path.

Every function here has a twin of the same name and signature in
:mod:`keras_regnet.data.transforms_tf`; :mod:`keras_regnet.data.augment`
composes either module into the recipe's train and eval transforms, and
``tests/test_transforms.py`` runs one statistical test over both.

Conventions (both modules):

* ``image``: one HWC RGB image, uint8 or float; ``images``: a NHWC batch.
  Every transform returns float32 on the [0, 255] scale.
* ``rng``: the backend's randomness; here a ``numpy.random.Generator``
  (:func:`make_rng`), split with :func:`split_rng`.
* Resizing is bilinear with half-pixel centres and no antialiasing, as
  OpenCV's ``INTER_LINEAR`` in pycls and ``tf.image.resize``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from keras_regnet.data.geometry import (
    CIFAR_PAD,
    CROP_AREA,
    CROP_ASPECT,
    CROP_TRIES,
    EIG_VALS,
    EIG_VECS,
    eval_scale_size,
    scale_crop_geometry,
)


def make_rng(seed=None) -> np.random.Generator:
    """A random generator for these transforms (``seed=None``: fresh entropy)."""
    return np.random.default_rng(seed)


def split_rng(rng: np.random.Generator, n: int):
    """``n`` independent child generators of ``rng``."""
    return rng.spawn(n)


def as_float(image) -> np.ndarray:
    """``image`` as float32, values unchanged."""
    return np.asarray(image, np.float32)


def _linear_weights(n_in, n_out):
    """Source indices and weights of 1-D linear resampling, half-pixel centres, no antialiasing."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize_bilinear(image, height: int, width: int) -> np.ndarray:
    """Bilinear resize as OpenCV's INTER_LINEAR and ``tf.image.resize`` do; float32 out.

    Pillow antialiases when shrinking, which would change the inputs
    visibly; this is the plain separable interpolation.
    """
    image = np.asarray(image)
    lo, hi, t = _linear_weights(image.shape[0], height)
    t = t[:, None, None]
    # Gather rows before converting to float32: half the time, the same values.
    image = image[lo].astype(np.float32) * (1 - t) + image[hi].astype(np.float32) * t
    lo, hi, t = _linear_weights(image.shape[1], width)
    t = t[None, :, None]
    return np.take(image, lo, axis=1) * (1 - t) + np.take(image, hi, axis=1) * t


def scale_center_crop(image, short: int, size: int) -> np.ndarray:
    """pycls's ``center_crop(size, scale(short, image))``: geometry of :func:`scale_crop_geometry`."""
    h, w = image.shape[:2]
    nh, nw, y, x = scale_crop_geometry(h, w, short, size)
    image = resize_bilinear(image, nh, nw) if (nh, nw) != (h, w) else np.asarray(image, np.float32)
    return image[y : y + size, x : x + size]


def eval_resize_crop(image, size: int) -> np.ndarray:
    """pycls's eval transform: shorter side to ``size * 256 / 224``, central ``size`` x ``size``."""
    return scale_center_crop(image, eval_scale_size(size), size)


def inception_crop(image, size: int, rng) -> np.ndarray:
    """pycls's ``random_sized_crop``: a random box resized to ``size`` x ``size``.

    Each of up to 10 tries draws an area fraction uniform in [0.08, 1] and an
    aspect ratio uniform in [3/4, 4/3], rounds the sides, and swaps them on a
    fair coin; the first box that fits is placed uniformly (every position,
    where pycls's ``randint`` never reaches the last row/column) and resized.
    When none fits, pycls's fallback: shorter side to ``size``, centre crop.
    """
    h, w = image.shape[:2]
    for _ in range(CROP_TRIES):
        area = rng.uniform(*CROP_AREA) * h * w
        aspect = rng.uniform(*CROP_ASPECT)
        ch, cw = round(math.sqrt(area / aspect)), round(math.sqrt(area * aspect))
        if rng.uniform() < 0.5:
            ch, cw = cw, ch
        if ch <= h and cw <= w:
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            return resize_bilinear(image[y : y + ch, x : x + cw], size, size)
    return scale_center_crop(image, size, size)


def random_flip(image, rng) -> np.ndarray:
    """Horizontal flip with probability 1/2."""
    image = np.asarray(image, np.float32)
    return image[:, ::-1] if rng.uniform() < 0.5 else image


def pad_crop_flip(image, rng, pad: int = CIFAR_PAD) -> np.ndarray:
    """CIFAR augmentation: zero-pad by ``pad``, random crop back (offsets 0..2*pad), random flip."""
    crop_rng, flip_rng = split_rng(rng, 2)
    h, w = image.shape[:2]
    padded = np.pad(np.asarray(image, np.float32), ((pad, pad), (pad, pad), (0, 0)))
    y, x = crop_rng.integers(0, 2 * pad + 1, size=2)
    return random_flip(padded[y : y + h, x : x + w], flip_rng)


def pca_lighting(image, std: float, rng) -> np.ndarray:
    """AlexNet lighting noise: pycls adds it to [0, 1] pixels, here scaled to [0, 255]."""
    alpha = rng.normal(0.0, std, size=3).astype(np.float32)
    return np.asarray(image, np.float32) + 255.0 * (EIG_VECS @ (alpha * EIG_VALS))


def _cutmix_box(h, w, lam, rng):
    """A box of about ``1 - lam`` of the image, centred at a random pixel and clipped."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(cut * h), int(cut * w)
    cy, cx = rng.integers(0, h), rng.integers(0, w)
    return np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h), np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)


def mix(images, labels, mixup: float, cutmix: float, rng):
    """Mixup or CutMix on a batch with one-hot ``labels`` (one of the two per batch, on a coin, when both are on).

    Mixup: ``lam ~ Beta(mixup, mixup)``, images and labels blended with the
    batch in a random order.  CutMix: ``lam ~ Beta(cutmix, cutmix)``, a box
    of about ``1 - lam`` of the area pasted from the permuted batch, labels
    weighted by the box's actual (clipped) area.
    """
    images, labels = np.asarray(images, np.float32), np.asarray(labels, np.float32)
    perm = rng.permutation(len(images))
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.uniform() < 0.5)
    if not use_cutmix:
        if mixup <= 0:
            return images, labels
        lam = np.float32(rng.beta(mixup, mixup))
        return lam * images + (1 - lam) * images[perm], lam * labels + (1 - lam) * labels[perm]
    h, w = images.shape[1:3]
    y0, y1, x0, x1 = _cutmix_box(h, w, rng.beta(cutmix, cutmix), rng)
    out = images.copy()
    out[:, y0:y1, x0:x1] = images[perm, y0:y1, x0:x1]
    area = np.float32((y1 - y0) * (x1 - x0) / (h * w))
    return out, (1 - area) * labels + area * labels[perm]


@functools.lru_cache(maxsize=None)
def randaugment_layer(magnitude: float):
    """The ``keras.layers.RandAugment`` for ``magnitude``, made once so its random stream advances."""
    import keras

    return keras.layers.RandAugment(value_range=(0, 255), factor=magnitude)


def randaugment(images, magnitude: float) -> np.ndarray:
    """RandAugment on a batch: ``keras.layers.RandAugment`` run with the current backend's ops.

    As Keras applies it to a batch: two operations drawn per batch, their
    strengths per image.  Its random stream is the layer's own (seeded by
    ``keras.utils.set_random_seed``).  No TensorFlow on other backends.
    """
    out = randaugment_layer(float(magnitude))(np.asarray(images, np.float32), training=True)
    return np.asarray(out, np.float32)
