"""Constants and geometry shared by the TensorFlow and the numpy transforms.

Both :mod:`keras_regnet.data.transforms_tf` and
:mod:`keras_regnet.data.transforms_numpy` take their numbers from here, so
the two backends cannot drift apart.
"""

import math

import numpy as np

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

# CIFAR augmentation: zero padding on each side before the random crop.
CIFAR_PAD = 4


def eval_scale_size(size: int) -> int:
    """Shorter side before the eval centre crop: 256 for 224 (pycls's TEST.IM_SIZE)."""
    return int(round(size * 256 / 224))


def scale_crop_geometry(height: int, width: int, short: int, size: int):
    """pycls's ``scale(short)`` + ``center_crop(size)`` geometry: (new_h, new_w, top, left).

    The shorter side becomes ``short`` and the longer one is floored
    (``int(math.floor(long / shorter * short))``); an image whose shorter side
    already has that length is not resized.  The crop offset is rounded up
    (``ceil((new - size) / 2)``).
    """
    if min(height, width) == short:
        new_h, new_w = height, width
    elif width < height:
        new_h, new_w = int(math.floor(height / width * short)), short
    else:
        new_h, new_w = short, int(math.floor(width / height * short))
    return new_h, new_w, (new_h - size + 1) // 2, (new_w - size + 1) // 2
