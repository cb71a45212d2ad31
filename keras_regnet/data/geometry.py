"""Constants and geometry shared by the TensorFlow and the numpy transforms.

Both :mod:`keras_regnet.data.transforms_tf` and
:mod:`keras_regnet.data.transforms_numpy` take their numbers from here, so
the two backends cannot drift apart.

This module is also the seam between randomness and pixels: every random
transform draws the numbers pycls draws (area fraction, aspect ratio and
swap coin per try, flip coin, integer offsets, lighting alphas) and hands
them to a function here that turns draws into a crop box, a flip or a colour
offset.  The functions are elementwise array code over a namespace ``xp``
(``numpy`` or ``tensorflow``: only ``sqrt``, ``round``, ``floor`` and
``where``, which mean the same in both, half-to-even rounding included), so
one implementation serves both backends and ``tests/test_augmentation_parity.py``
feeds it the draws recorded from pycls's own transforms.
"""

import numpy as np

from keras_regnet.architecture.preprocessing import IMAGENET_MEAN

# AlexNet PCA lighting (Krizhevsky et al. 2012), as pycls uses it, RGB order.
EIG_VALS = np.array([0.2175, 0.0188, 0.0045], np.float32)
EIG_VECS = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], np.float32
)

# pycls's random_sized_crop: area fraction, aspect ratio (before a coin flip
# swaps height and width) and the number of tries before the centre crop.
CROP_AREA = (0.08, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
CROP_TRIES = 10

# Horizontal flips (ImageNet and CIFAR): mirrored when a uniform draw is below this.
FLIP_PROBABILITY = 0.5

# CIFAR augmentation: padding on each side before the random crop.  pycls
# pads after normalising, with zeros, that is with the mean colour its
# normalisation subtracts.  The package's models normalise with the ImageNet
# mean (architecture.preprocessing), so that is the fill, RGB on [0, 255].
CIFAR_PAD = 4
CIFAR_FILL = tuple(255.0 * m for m in IMAGENET_MEAN)


def eval_scale_size(size: int) -> int:
    """Shorter side before the eval centre crop: 256 for 224 (pycls's TEST.IM_SIZE)."""
    return int(round(size * 256 / 224))


def scale_crop_geometry(height, width, short: int, size: int, xp=np):
    """pycls's ``scale(short)`` + ``center_crop(size)`` geometry: ``(new_h, new_w, top, left)``.

    The shorter side becomes ``short`` and the longer one is floored
    (``floor(long / shorter * short)``); an image whose shorter side already
    has that length is not resized.  The crop offset is rounded up
    (``ceil((new - size) / 2)``).

    Args:
        height: image height(s), float64 (scalars or arrays of ``xp``).
        width: image width(s), float64.
        short: the shorter side after scaling.
        size: the side of the centre crop.
        xp: ``numpy`` or ``tensorflow``.

    Returns:
        Whole numbers of ``height``'s type; the callers cast them to integers.
    """
    tall = width < height
    shorter, longer = xp.where(tall, width, height), xp.where(tall, height, width)
    long_side = xp.floor(longer / shorter * short)
    keep = shorter == short
    # ``short`` (a Python int) second: TensorFlow's where takes the dtype from the first value.
    new_h = xp.where(keep, height, xp.where(tall, long_side, short))
    new_w = xp.where(keep, width, xp.where(width >= height, long_side, short))
    return new_h, new_w, (new_h - size + 1) // 2, (new_w - size + 1) // 2


def inception_box(height, width, area_draws, aspect_draws, swap_draws, xp=np):
    """pycls's ``random_sized_crop`` sides from its draws: ``(crop_h, crop_w, found)``.

    Try ``i`` asks for ``area_draws[i]`` of the image's area (a draw uniform
    in :data:`CROP_AREA`) at aspect ratio (width / height) ``aspect_draws[i]``
    (uniform in :data:`CROP_ASPECT`); the sides are rounded half to even, as
    Python's ``round``, and swapped when ``swap_draws[i]`` (uniform in [0, 1))
    is below 1/2.  The first try whose box fits is used; ``found`` is false
    when none of the :data:`CROP_TRIES` fits, and the transform falls back to
    the centre crop of :func:`scale_crop_geometry`.  The box's offsets are
    the next two draws, integers uniform over every position.

    Args:
        height: image height(s), float64.
        width: image width(s), float64.
        area_draws: area fractions, tries along the first axis (any further
            axes: independent images, elementwise).
        aspect_draws: aspect ratios, same shape.
        swap_draws: swap coins, same shape.
        xp: ``numpy`` or ``tensorflow``.

    Returns:
        ``crop_h`` and ``crop_w`` (whole numbers, float64; meaningless where
        not ``found``) and ``found`` (bool).
    """
    area = area_draws * (height * width)
    crop_h, crop_w = xp.round(xp.sqrt(area / aspect_draws)), xp.round(xp.sqrt(area * aspect_draws))
    swap = swap_draws < 0.5
    crop_h, crop_w = xp.where(swap, crop_w, crop_h), xp.where(swap, crop_h, crop_w)
    fits = (crop_h <= height) & (crop_w <= width)
    last = int(area_draws.shape[0]) - 1
    box_h, box_w, found = crop_h[last], crop_w[last], fits[last]
    for i in range(last - 1, -1, -1):  # from the last try back: the first that fits wins
        box_h, box_w = xp.where(fits[i], crop_h[i], box_h), xp.where(fits[i], crop_w[i], box_w)
        found = fits[i] | found
    return box_h, box_w, found


def flip_decision(draw):
    """Whether a horizontal flip happens for a uniform ``draw`` in [0, 1): pycls's ``draw < 1/2``."""
    return draw < FLIP_PROBABILITY


def lighting_offset(alpha):
    """The AlexNet PCA lighting offset for the three ``alpha`` draws, RGB on the [0, 255] scale.

    ``255 * EIG_VECS @ (alpha * EIG_VALS)``, summed eigenvector by
    eigenvector; pycls adds the same offset, unscaled, to [0, 1] pixels.
    ``alpha``: numpy or TensorFlow, float32.
    """
    scaled = alpha * EIG_VALS
    return 255.0 * sum(scaled[k] * EIG_VECS[:, k] for k in range(3))
