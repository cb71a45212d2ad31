"""pycls's transforms in TensorFlow ops, for tf.data (and exported SavedModels).

Every function here has a twin of the same name and signature in
:mod:`keras_regnet.data.transforms_numpy` (read its module docstring for
the shared conventions); ``tests/test_transforms.py`` runs one statistical
test over both, and ``tests/test_augmentation_parity.py`` feeds both the
draws recorded from pycls's own transforms.

Here ``rng`` is a stateless seed, an integer tensor of shape ``[2]`` (the
input pipeline draws one per example from ``tf.data.Dataset.random``), or,
for eager use, a ``tf.random.Generator`` (:func:`make_rng`).  Stateless ops
keep the pipeline free of captured random state, which tf.distribute
would otherwise have to carry into every worker's copy of the dataset.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from keras_regnet.data import geometry
from keras_regnet.data.geometry import CIFAR_FILL, CIFAR_PAD, CROP_AREA, CROP_ASPECT, CROP_TRIES, eval_scale_size


def make_rng(seed=None) -> tf.random.Generator:
    """A random generator for eager use of these transforms (``seed=None``: fresh entropy)."""
    return tf.random.Generator.from_non_deterministic_state() if seed is None else tf.random.Generator.from_seed(seed)


def split_rng(rng, n: int):
    """A list of ``n`` independent stateless seeds (each shape ``[2]``) from a seed or a generator."""
    if isinstance(rng, tf.random.Generator):
        return tf.unstack(rng.make_seeds(n), axis=1)
    return tf.unstack(tf.random.split(tf.cast(rng, tf.int64), n))


def decode_image(encoded):
    """JPEG/PNG/GIF/BMP bytes to uint8 RGB (H, W, 3), first frame of a GIF.

    JPEGs are decoded with the accurate integer IDCT, libjpeg's default and
    what Pillow (the numpy pipeline's :func:`decode_image`) and OpenCV
    (pycls's loader) use: the same pixels, exactly.  TensorFlow's own default
    (the fast IDCT) is up to 5 levels off on real photos.
    """

    def jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")

    def other():
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def as_float(image):
    """``image`` as float32, values unchanged."""
    return tf.cast(image, tf.float32)


def scale_crop_box(height, width, short: int, size: int):
    """:func:`keras_regnet.data.geometry.scale_crop_geometry` in int32: ``(new_h, new_w, top, left)``."""
    dims = (tf.cast(height, tf.float64), tf.cast(width, tf.float64))
    return tuple(tf.cast(b, tf.int32) for b in geometry.scale_crop_geometry(*dims, short, size, xp=tf))


def scale_center_crop(image, short: int, size: int):
    """pycls's ``center_crop(size, scale(short, image))`` in graph ops (float32 out).

    Shorter side to ``short`` (bilinear, the longer side floored; no resize
    if the shorter side already has that length), then the central ``size``
    x ``size`` with offsets rounded up: the geometry of :func:`scale_crop_box`.
    """
    shape = tf.shape(image)
    new_h, new_w, top, left = scale_crop_box(shape[0], shape[1], short, size)
    image = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]), method="bilinear")
    return image[top : top + size, left : left + size]


def eval_resize_crop(image, size: int):
    """pycls's eval transform: shorter side to ``size * 256 / 224``, central ``size`` x ``size``."""
    return scale_center_crop(image, eval_scale_size(size), size)


@tf.function(autograph=False, reduce_retracing=True)
def inception_box(height, width, area_draws, aspect_draws, swap_draws):
    """:func:`keras_regnet.data.geometry.inception_box` in graph ops: ``(crop_h, crop_w)`` in int32, ``found``."""
    dims = (tf.cast(height, tf.float64), tf.cast(width, tf.float64))
    draws = (tf.cast(d, tf.float64) for d in (area_draws, aspect_draws, swap_draws))
    crop_h, crop_w, found = geometry.inception_box(*dims, *draws, xp=tf)
    return tf.cast(crop_h, tf.int32), tf.cast(crop_w, tf.int32), found


def crop_resize(image, top, left, height, width, size: int):
    """The ``height`` x ``width`` box at (``top``, ``left``), resized to ``size`` x ``size`` (bilinear)."""
    box = tf.cast(image, tf.float32)[top : top + height, left : left + width]
    return tf.image.resize(box, (size, size), method="bilinear")


def _place_and_resize(image, crop_h, crop_w, size, seed):
    """A ``crop_h`` x ``crop_w`` box at a uniform position (every position), resized to ``size``."""
    shape = tf.shape(image)
    y_seed, x_seed = split_rng(seed, 2)
    top = tf.random.stateless_uniform([], y_seed, 0, shape[0] - crop_h + 1, tf.int32)
    left = tf.random.stateless_uniform([], x_seed, 0, shape[1] - crop_w + 1, tf.int32)
    return crop_resize(image, top, left, crop_h, crop_w, size)


def inception_crop(image, size: int, rng):
    """pycls's ``random_sized_crop`` (see the numpy twin for the exact rule), in graph ops.

    All 10 tries are drawn at once and :func:`inception_box` picks the first
    box that fits; when none fits, pycls's fallback: shorter side to
    ``size``, centre crop.
    """
    area_seed, aspect_seed, swap_seed, place_seed = split_rng(rng, 4)
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    area = tf.random.stateless_uniform([CROP_TRIES], area_seed, *CROP_AREA, dtype=tf.float64)
    aspect = tf.random.stateless_uniform([CROP_TRIES], aspect_seed, *CROP_ASPECT, dtype=tf.float64)
    swap = tf.random.stateless_uniform([CROP_TRIES], swap_seed, dtype=tf.float64)
    crop_h, crop_w, found = inception_box(shape[0], shape[1], area, aspect, swap)
    out = tf.cond(
        found,
        lambda: _place_and_resize(image, crop_h, crop_w, size, place_seed),
        lambda: scale_center_crop(image, size, size),
    )
    return tf.ensure_shape(out, [size, size, 3])


def horizontal_flip(image, draw):
    """Mirrored left-right when the uniform ``draw`` says so (:func:`keras_regnet.data.geometry.flip_decision`)."""
    image = tf.cast(image, tf.float32)
    return tf.cond(tf.convert_to_tensor(geometry.flip_decision(draw)), lambda: image[:, ::-1], lambda: image)


def random_flip(image, rng):
    """Horizontal flip with probability 1/2."""
    return horizontal_flip(image, tf.random.stateless_uniform([], split_rng(rng, 1)[0]))


def pad_crop(image, top, left, pad: int = CIFAR_PAD):
    """Pad by ``pad`` with :data:`~keras_regnet.data.geometry.CIFAR_FILL`, take the image's size at (``top``, ``left``)."""
    image = tf.cast(image, tf.float32)
    shape, paddings = tf.shape(image), [[pad, pad], [pad, pad], [0, 0]]
    inside = tf.pad(tf.ones_like(image), paddings) > 0
    padded = tf.where(inside, tf.pad(image, paddings), tf.constant(CIFAR_FILL, tf.float32))
    return tf.ensure_shape(padded[top : top + shape[0], left : left + shape[1]], image.shape)


def pad_crop_flip(image, rng, pad: int = CIFAR_PAD):
    """pycls's CIFAR augmentation: random flip, then pad by ``pad`` and crop back at a random offset (see the numpy twin)."""
    flip_seed, crop_seed = split_rng(rng, 2)
    top, left = tf.unstack(tf.random.stateless_uniform([2], crop_seed, 0, 2 * pad, tf.int32))
    return pad_crop(horizontal_flip(image, tf.random.stateless_uniform([], flip_seed)), top, left, pad)


def add_lighting(image, alpha):
    """``image`` plus the PCA lighting offset of the three ``alpha`` draws (:func:`keras_regnet.data.geometry.lighting_offset`)."""
    return tf.cast(image, tf.float32) + geometry.lighting_offset(tf.cast(alpha, tf.float32))


def pca_lighting(image, std: float, rng):
    """AlexNet lighting noise: pycls adds it to [0, 1] pixels, here scaled to [0, 255]."""
    return add_lighting(image, tf.random.stateless_normal([3], split_rng(rng, 1)[0], stddev=std))


def _beta(alpha, seed):
    a_seed, b_seed = split_rng(seed, 2)
    a = tf.random.stateless_gamma([], a_seed, alpha)
    b = tf.random.stateless_gamma([], b_seed, alpha)
    return a / (a + b)


def _cutmix(images, labels, other_x, other_y, alpha, seed):
    beta_seed, y_seed, x_seed = split_rng(seed, 3)
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    cut = tf.sqrt(1.0 - _beta(alpha, beta_seed))
    ch = tf.cast(cut * tf.cast(h, tf.float32), tf.int32)
    cw = tf.cast(cut * tf.cast(w, tf.float32), tf.int32)
    cy = tf.random.stateless_uniform([], y_seed, 0, h, tf.int32)
    cx = tf.random.stateless_uniform([], x_seed, 0, w, tf.int32)
    y0, y1 = tf.clip_by_value(cy - ch // 2, 0, h), tf.clip_by_value(cy + ch // 2, 0, h)
    x0, x1 = tf.clip_by_value(cx - cw // 2, 0, w), tf.clip_by_value(cx + cw // 2, 0, w)
    rows, cols = tf.range(h)[:, None], tf.range(w)[None, :]
    box = tf.cast((rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1), images.dtype)[None, :, :, None]
    area = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(h * w, tf.float32)
    return images * (1 - box) + other_x * box, (1 - area) * labels + area * other_y


def mix(images, labels, mixup: float, cutmix: float, rng):
    """Mixup or CutMix on a batch with one-hot ``labels`` (see the numpy twin for the rule)."""
    perm_seed, coin_seed, mixup_seed, cutmix_seed = split_rng(rng, 4)
    images, labels = tf.cast(images, tf.float32), tf.cast(labels, tf.float32)
    perm = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(images)[0]), perm_seed)
    other_x, other_y = tf.gather(images, perm), tf.gather(labels, perm)
    mixed = (images, labels)
    if mixup > 0:
        lam = _beta(mixup, mixup_seed)
        mixed = (lam * images + (1 - lam) * other_x, lam * labels + (1 - lam) * other_y)
    if cutmix <= 0:
        return mixed
    cut_x, cut_y = _cutmix(images, labels, other_x, other_y, cutmix, cutmix_seed)
    use_cutmix = tf.random.stateless_uniform([], coin_seed) < 0.5 if mixup > 0 else tf.constant(True)
    return tf.where(use_cutmix, cut_x, mixed[0]), tf.where(use_cutmix, cut_y, mixed[1])


@functools.lru_cache(maxsize=None)
def randaugment_layer(magnitude: float):
    """The ``keras.layers.RandAugment`` for ``magnitude``, made once so its random stream advances.

    Build it eagerly (call this before tracing a tf.data map) so its
    variables are not created inside a dataset function.
    """
    import keras

    return keras.layers.RandAugment(value_range=(0, 255), factor=magnitude)


def randaugment(images, magnitude: float):
    """RandAugment on a batch: ``keras.layers.RandAugment`` in TensorFlow ops.

    As Keras applies it to a batch: two operations drawn per batch, their
    strengths per image.  Its random stream is the layer's own (seeded by
    ``keras.utils.set_random_seed``).
    """
    return tf.cast(randaugment_layer(float(magnitude))(tf.cast(images, tf.float32), training=True), tf.float32)
