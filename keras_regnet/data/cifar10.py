"""Small real datasets that work offline, decoded to numpy without TensorFlow.

* :func:`load_embedded_cifar10`: 5,000 real CIFAR-10 training images (500 per
  class, JPEG bytes as in the source) shipped inside the package, split
  4,000 / 1,000 (the last 100 of each class are the validation split).
* :func:`load_cifar10_jpeg_npz`: the full CIFAR-10 training set in the same
  JPEG-in-npz layout (``train_jpeg``, ``train_offsets``, ``train_labels``,
  ``classes``), with a held-out validation split of the training images.

Decoding uses Pillow, so these also serve the JAX backend on machines
without TensorFlow.
"""

from __future__ import annotations

import io
from importlib import resources

import numpy as np

from keras_regnet.errors import InvalidFileError
from keras_regnet.safe_io import load_npz

SPLITS = ("train", "validation", "all")


def decode_jpegs(jpeg: np.ndarray, offsets: np.ndarray, indices, source="<arrays>") -> np.ndarray:
    """Decode images ``indices`` of a concatenated-JPEG array to uint8 RGB (N, H, W, 3).

    Raises:
        InvalidFileError: an image of ``source`` does not decode (Pillow's
            decompression-bomb limit included).
    """
    from PIL import Image

    images = []
    for i in indices:
        data = jpeg[offsets[i] : offsets[i + 1]].tobytes()
        try:
            images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad images
            raise InvalidFileError(source, f"image {i} does not decode ({type(e).__name__}: {e})") from None
    return np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)


def _check_offsets(path, jpeg, offsets, labels) -> None:
    if offsets.ndim != 1 or len(offsets) != len(labels) + 1 or offsets.dtype.kind not in "iu":
        raise InvalidFileError(path, f"has {len(offsets)} offsets for {len(labels)} labels; expected one more offset than labels")
    if len(offsets) and (offsets[0] < 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > len(jpeg)):
        raise InvalidFileError(path, "has offsets that are not increasing or run past the end of the JPEG bytes")


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}; got split={split!r}.")


def _embedded(split: str):
    """The embedded subset's ``(jpeg, offsets, labels, classes)`` and the indices of ``split``.

    Within each class, the last fifth (source order) is validation.
    """
    _check_split(split)
    with resources.as_file(resources.files("keras_regnet.data").joinpath("cifar10_subset.npz")) as path:
        d = load_npz(path, ["jpeg", "offsets", "labels", "classes"])
    jpeg, offsets, labels, classes = d["jpeg"], d["offsets"], d["labels"], d["classes"]
    _check_offsets("embedded CIFAR-10 subset", jpeg, offsets, labels)
    rank = np.zeros(len(labels), int)
    for c in range(len(classes)):
        members = np.flatnonzero(labels == c)
        rank[members] = np.arange(len(members))
    per_class = np.bincount(labels).min()
    is_val = rank >= per_class - per_class // 5
    idx = {"train": np.flatnonzero(~is_val), "validation": np.flatnonzero(is_val), "all": np.arange(len(labels))}[split]
    return (jpeg, offsets, labels, [str(c) for c in classes]), idx


def load_embedded_cifar10(split: str = "train"):
    """The embedded CIFAR-10 subset: ``(images uint8 NHWC, labels int64, class_names)``."""
    (jpeg, offsets, labels, classes), idx = _embedded(split)
    return decode_jpegs(jpeg, offsets, idx), labels[idx].astype(np.int64), classes


def embedded_cifar10_jpegs(split: str = "train"):
    """The embedded subset undecoded: ``(JPEG bytes per image, labels int64, class_names)``.

    The bytes are the source's own: real files for testing a decoder or a
    serving signature.
    """
    (jpeg, offsets, labels, classes), idx = _embedded(split)
    return [jpeg[offsets[i] : offsets[i + 1]].tobytes() for i in idx], labels[idx].astype(np.int64), classes


def load_cifar10_jpeg_npz(path: str, split: str = "train", validation_size: int = 5000, seed: int = 0, limit=None):
    """CIFAR-10 from a JPEG npz; ``validation`` is a fixed random hold-out of the training set."""
    _check_split(split)
    d = load_npz(path, ["train_jpeg", "train_offsets", "train_labels", "classes"])
    labels = d["train_labels"]
    if not 0 <= validation_size < len(labels):
        raise ValueError(f"validation_size must be in [0, {len(labels)}); got validation_size={validation_size}.")
    order = np.random.default_rng(seed).permutation(len(labels))
    idx = {"train": order[validation_size:], "validation": order[:validation_size], "all": np.arange(len(labels))}[split]
    if limit is not None:
        idx = idx[:limit]
    _check_offsets(path, d["train_jpeg"], d["train_offsets"], labels)
    images = decode_jpegs(d["train_jpeg"], d["train_offsets"], idx, source=path)
    return images, labels[idx].astype(np.int64), [str(c) for c in d["classes"]]
