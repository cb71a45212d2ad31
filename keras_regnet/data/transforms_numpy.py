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
* Each random transform draws pycls's numbers and applies them with a
  public function of the same module (:func:`inception_box` and
  :func:`crop_resize`, :func:`horizontal_flip`, :func:`pad_crop`,
  :func:`add_lighting`), over the shared geometry of
  :mod:`keras_regnet.data.geometry`: ``tests/test_augmentation_parity.py``
  feeds those the draws recorded from pycls and compares the outputs.
"""

from __future__ import annotations

import io

import functools
import math

import numpy as np

from keras_regnet.data import geometry
from keras_regnet.data.geometry import CIFAR_FILL, CIFAR_PAD, CROP_AREA, CROP_ASPECT, CROP_TRIES, eval_scale_size


def make_rng(seed=None) -> np.random.Generator:
    """A random generator for these transforms (``seed=None``: fresh entropy)."""
    return np.random.default_rng(seed)


def split_rng(rng: np.random.Generator, n: int):
    """``n`` independent child generators of ``rng``."""
    return rng.spawn(n)


# Pillow formats an image file may be in: what the TensorFlow decoder reads too.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP")


def decode_image(encoded) -> np.ndarray:
    """JPEG/PNG/GIF/BMP bytes (or a path / file object) to uint8 RGB (H, W, 3), first frame of a GIF (Pillow).

    Raises Pillow's errors for anything else; callers name the file.
    """
    from PIL import Image

    source = io.BytesIO(encoded) if isinstance(encoded, (bytes, bytearray)) else encoded
    with Image.open(source, formats=IMAGE_FORMATS) as image:
        return np.asarray(image.convert("RGB"))


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


def scale_crop_box(height, width, short: int, size: int):
    """:func:`keras_regnet.data.geometry.scale_crop_geometry` in integers: ``(new_h, new_w, top, left)``."""
    box = geometry.scale_crop_geometry(np.asarray(height, np.float64), np.asarray(width, np.float64), short, size)
    return tuple(np.asarray(b).astype(np.int64)[()] for b in box)


def scale_center_crop(image, short: int, size: int) -> np.ndarray:
    """pycls's ``center_crop(size, scale(short, image))``: geometry of :func:`scale_crop_box`."""
    h, w = image.shape[:2]
    nh, nw, y, x = scale_crop_box(h, w, short, size)
    image = resize_bilinear(image, nh, nw) if (nh, nw) != (h, w) else np.asarray(image, np.float32)
    return image[y : y + size, x : x + size]


def eval_resize_crop(image, size: int) -> np.ndarray:
    """pycls's eval transform: shorter side to ``size * 256 / 224``, central ``size`` x ``size``."""
    return scale_center_crop(image, eval_scale_size(size), size)


def inception_box(height, width, area_draws, aspect_draws, swap_draws):
    """:func:`keras_regnet.data.geometry.inception_box` on numpy: ``(crop_h, crop_w)`` as integers, ``found``."""
    draws = (np.asarray(d, np.float64) for d in (area_draws, aspect_draws, swap_draws))
    crop_h, crop_w, found = geometry.inception_box(np.float64(height), np.float64(width), *draws)
    return np.asarray(crop_h).astype(np.int64)[()], np.asarray(crop_w).astype(np.int64)[()], np.asarray(found)[()]


def crop_resize(image, top, left, height: int, width: int, size: int) -> np.ndarray:
    """The ``height`` x ``width`` box at (``top``, ``left``), resized to ``size`` x ``size`` (bilinear)."""
    return resize_bilinear(np.asarray(image)[top : top + height, left : left + width], size, size)


def inception_crop(image, size: int, rng) -> np.ndarray:
    """pycls's ``random_sized_crop``: a random box resized to ``size`` x ``size``.

    Draws pycls's numbers for all 10 tries at once (area fraction uniform in
    [0.08, 1], aspect ratio uniform in [3/4, 4/3], swap coin) and turns them
    into a box with :func:`inception_box`; the box is placed uniformly
    (every position, where pycls's ``randint`` never reaches the last
    row/column) and resized.  When no try fits, pycls's fallback: shorter
    side to ``size``, centre crop.
    """
    h, w = image.shape[:2]
    draws = rng.uniform(*CROP_AREA, CROP_TRIES), rng.uniform(*CROP_ASPECT, CROP_TRIES), rng.uniform(size=CROP_TRIES)
    crop_h, crop_w, found = inception_box(h, w, *draws)
    if not found:
        return scale_center_crop(image, size, size)
    top, left = rng.integers(0, h - crop_h + 1), rng.integers(0, w - crop_w + 1)
    return crop_resize(image, top, left, crop_h, crop_w, size)


def horizontal_flip(image, draw) -> np.ndarray:
    """Mirrored left-right when the uniform ``draw`` says so (:func:`keras_regnet.data.geometry.flip_decision`)."""
    image = np.asarray(image, np.float32)
    return image[:, ::-1] if geometry.flip_decision(draw) else image


def random_flip(image, rng) -> np.ndarray:
    """Horizontal flip with probability 1/2."""
    return horizontal_flip(image, rng.uniform())


def pad_crop(image, top, left, pad: int = CIFAR_PAD) -> np.ndarray:
    """Pad by ``pad`` with :data:`~keras_regnet.data.geometry.CIFAR_FILL`, take the image's size at (``top``, ``left``)."""
    image = np.asarray(image, np.float32)
    h, w = image.shape[:2]
    padded = np.empty((h + 2 * pad, w + 2 * pad) + image.shape[2:], np.float32)
    padded[:] = np.asarray(CIFAR_FILL, np.float32)
    padded[pad : pad + h, pad : pad + w] = image
    return padded[top : top + h, left : left + w]


def pad_crop_flip(image, rng, pad: int = CIFAR_PAD) -> np.ndarray:
    """pycls's CIFAR augmentation: random flip, then pad by ``pad`` and crop back at a random offset.

    Draws as pycls does: the flip coin, then the top and left offsets,
    uniform over ``0 .. 2 * pad - 1`` as pycls's ``randint`` draws them (it
    never reaches the last position, ``2 * pad``).  The padding is pycls's:
    the colour the model's normalisation maps to zero.
    """
    draw = rng.uniform()
    top, left = rng.integers(0, 2 * pad, size=2)
    return pad_crop(horizontal_flip(image, draw), top, left, pad)


def add_lighting(image, alpha) -> np.ndarray:
    """``image`` plus the PCA lighting offset of the three ``alpha`` draws (:func:`keras_regnet.data.geometry.lighting_offset`)."""
    return np.asarray(image, np.float32) + geometry.lighting_offset(np.asarray(alpha, np.float32))


def pca_lighting(image, std: float, rng) -> np.ndarray:
    """AlexNet lighting noise: pycls adds it to [0, 1] pixels, here scaled to [0, 255]."""
    return add_lighting(image, rng.normal(0.0, std, size=3))


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
