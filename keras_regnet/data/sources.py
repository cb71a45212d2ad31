"""Data sources: the one description of where training and evaluation data are.

A :class:`Source` holds a class list and up to two :class:`Examples` splits
(train, validation).  An :class:`Examples` is images in memory (uint8 NHWC
arrays), image files, or a split of a TensorFlow Datasets builder, each with
its labels.  Both input pipelines read the same description:
:mod:`keras_regnet.data.pipeline_tf` with tf.data, and
:mod:`keras_regnet.data.pipeline_numpy` with numpy and Pillow (no
TensorFlow; TensorFlow Datasets splits are refused there by name).

Opening (:func:`open_source`):

* ``"embedded"``: the 5,000-image CIFAR-10 subset inside the package
  (4,000 train / 1,000 validation);
* a CIFAR-10 JPEG ``.npz`` (``train_jpeg``/``train_offsets``/...), with a
  held-out validation split of 5,000 training images;
* a directory of class folders: ``DIR/train/<class>/*`` with
  ``DIR/val/<class>/*`` (or ``DIR/validation``), or flat ``DIR/<class>/*``
  where every 10th image of each class (the 1st, 11th, ...) is held out;
* a TensorFlow Datasets name (TensorFlow backend only; ``imagenet2012``
  needs ``manual_dir``);
* in memory: :func:`from_arrays` (uint8 NHWC images, integer labels).

:func:`open_eval_source` opens a directory (all of ``DIR/val``,
``DIR/validation`` or ``DIR``) or a TensorFlow Datasets split for evaluation.

Opening reads no TensorFlow; only TensorFlow Datasets names import it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class Examples:
    """One split of a source: where its images are, and their labels.

    Exactly one of ``images`` (uint8 NHWC in memory), ``files`` (image file
    paths) or ``tfds_split`` (a split of ``tfds_builder``) is set.
    ``labels`` are int64 class indices (``None`` for a tfds split, whose
    labels come with its images).  ``count`` is the number of examples, or
    ``None`` when TensorFlow Datasets does not know it; ``limit`` caps a
    tfds split.
    """

    labels: Optional[np.ndarray] = None
    images: Optional[np.ndarray] = None
    files: Optional[Tuple[str, ...]] = None
    tfds_builder: object = None
    tfds_split: Optional[str] = None
    count: Optional[int] = None
    limit: Optional[int] = None

    def take(self, n: int) -> "Examples":
        """The first ``n`` examples."""
        count = None if self.count is None else min(self.count, n)
        if self.tfds_split is not None:
            return dataclasses.replace(self, count=count, limit=n if self.limit is None else min(self.limit, n))
        images = None if self.images is None else self.images[:n]
        files = None if self.files is None else self.files[:n]
        return dataclasses.replace(self, labels=self.labels[:n], images=images, files=files, count=count)


def in_memory(images, labels, name: str = "data") -> Examples:
    """In-memory examples, checked: ``images`` uint8 (N, H, W, 3), ``labels`` N integers >= 0."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{name} images must be a uint8 array of shape (N, height, width, 3) (RGB in [0, 255]); "
            f"got dtype {images.dtype} and shape {images.shape}."
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
        raise ValueError(
            f"{name} labels must be {len(images)} integer class indices (one per image, shape ({len(images)},)); "
            f"got dtype {labels.dtype} and shape {labels.shape}."
        )
    if len(labels) and labels.min() < 0:
        raise ValueError(f"{name} labels must be class indices >= 0; got {labels.min()}.")
    return Examples(labels=labels.astype(np.int64), images=images, count=len(images))


def image_files(files: Sequence[str], labels: Sequence[int]) -> Examples:
    """Examples read from image files (JPEG, PNG, GIF or BMP)."""
    return Examples(labels=np.asarray(labels, np.int64), files=tuple(files), count=len(files))


@dataclasses.dataclass(frozen=True)
class Source:
    """A data source: its classes and its train and validation :class:`Examples` (either may be ``None``)."""

    class_names: List[str]
    train: Optional[Examples]
    validation: Optional[Examples]
    description: str

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.class_names)

    @property
    def num_train(self) -> Optional[int]:
        """Training examples (``None``: no train split, or not known)."""
        return None if self.train is None else self.train.count

    @property
    def num_validation(self) -> Optional[int]:
        """Validation examples (``None``: no validation split, or not known)."""
        return None if self.validation is None else self.validation.count


def from_arrays(train, validation=None, class_names: Optional[Sequence[str]] = None, description: str = "") -> Source:
    """A source from ``(images, labels)`` arrays (``validation`` likewise, or ``None``).

    Class names default to ``"0"``, ``"1"``, ... up to the largest label.
    """
    train_examples = in_memory(*_pair(train, "data"), name="data")
    val_examples = None if validation is None else in_memory(*_pair(validation, "validation_data"), name="validation_data")
    if class_names is None:
        top = max(int(e.labels.max()) for e in (train_examples, val_examples) if e is not None and e.count)
        class_names = [str(i) for i in range(top + 1)]
    description = description or f"numpy arrays ({train_examples.count} training images)"
    return Source(list(class_names), train_examples, val_examples, description)


def _pair(value, name):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be an (images, labels) pair of numpy arrays; got {type(value).__name__}.")
    return value


# ---------------------------------------------------------------- opening by name


def open_source(data: str, *, data_dir: Optional[str] = None, manual_dir: Optional[str] = None) -> Source:
    """Open ``data`` for training: ``"embedded"``, a CIFAR-10 JPEG ``.npz``, a directory, or a tfds name."""
    if not isinstance(data, str) or not data:
        raise ValueError(f"data must be 'embedded', a .npz file, a directory or a TensorFlow Datasets name; got data={data!r}.")
    from keras_regnet.data.cifar10 import load_cifar10_jpeg_npz, load_embedded_cifar10

    if data == "embedded":
        train, val = load_embedded_cifar10("train"), load_embedded_cifar10("validation")
    elif data.endswith(".npz"):
        if not os.path.isfile(data):
            raise ValueError(f"data={data!r}: no such .npz file.")
        train, val = load_cifar10_jpeg_npz(data, "train"), load_cifar10_jpeg_npz(data, "validation")
    elif os.path.isdir(data):
        return directory_source(data)
    else:
        return tfds_source(data, data_dir, manual_dir)
    return from_arrays(train[:2], val[:2], class_names=train[2], description=data)


def subfolders(path: str) -> List[str]:
    """The sorted names of the folders in ``path``."""
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))


def list_class_folder(root: str, classes: Sequence[str]):
    """``(files, labels)`` of the images in ``root/<class>/`` for each class (label = position in ``classes``)."""
    files, labels = [], []
    for i, c in enumerate(classes):
        folder = os.path.join(root, c)
        if not os.path.isdir(folder):
            raise ValueError(f"{root!r} has no folder for class {c!r} (the classes are {list(classes)[:5]}...).")
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
        files += [os.path.join(folder, n) for n in names]
        labels += [i] * len(names)
    return files, labels


def hold_out_every_tenth(labels: Sequence[int]) -> np.ndarray:
    """Which examples are validation: every 10th of each class (its 1st, 11th, 21st, ...)."""
    labels = np.asarray(labels)
    is_val = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        is_val[np.flatnonzero(labels == c)[::10]] = True
    return is_val


def directory_source(root: str) -> Source:
    """``root/train`` + ``root/val`` (or ``root/validation``) class folders, or flat ``root/<class>`` with a 10% hold-out."""
    splits = {s: os.path.join(root, s) for s in ("train", "val", "validation") if os.path.isdir(os.path.join(root, s))}
    if "train" in splits and len(splits) > 1:
        classes = subfolders(splits["train"])
        train = list_class_folder(splits["train"], classes)
        val = list_class_folder(splits.get("val", splits.get("validation")), classes)
    else:
        classes = subfolders(root)
        if not classes:
            raise ValueError(f"data={root!r} has no class subfolders (expected DIR/<class>/<image> or DIR/train/<class>/...).")
        files, labels = list_class_folder(root, classes)
        is_val = hold_out_every_tenth(labels)
        train = [f for f, v in zip(files, is_val) if not v], [lab for lab, v in zip(labels, is_val) if not v]
        val = [f for f, v in zip(files, is_val) if v], [lab for lab, v in zip(labels, is_val) if v]
    if not train[0]:
        raise ValueError(f"data={root!r} contains no images with extensions {IMAGE_EXTENSIONS}.")
    return Source(classes, image_files(*train), image_files(*val), root)


def open_eval_source(
    data: str, *, split: Optional[str] = None, data_dir: Optional[str] = None, manual_dir: Optional[str] = None
) -> Source:
    """Open ``data`` for evaluation: a source whose ``validation`` is the split to evaluate.

    A directory: every image under ``DIR/val``, ``DIR/validation`` or
    ``DIR`` itself, labelled by class folder (sorted).  A TensorFlow Datasets
    name: ``split`` (default ``validation``, else ``test``).
    """
    if not isinstance(data, str) or not data:
        raise ValueError(f"data must be a TensorFlow Datasets name or a directory; got data={data!r}.")
    if not os.path.isdir(data):
        return tfds_source(data, data_dir, manual_dir, split=split, train=False)
    root = next((os.path.join(data, s) for s in ("val", "validation") if os.path.isdir(os.path.join(data, s))), data)
    classes = subfolders(root)
    if not classes:
        raise ValueError(f"data={data!r} has no class subfolders (expected DIR/<class>/<image>).")
    files, labels = list_class_folder(root, classes)
    if not files:
        raise ValueError(f"data={data!r} contains no images with extensions {IMAGE_EXTENSIONS}.")
    return Source(classes, None, image_files(files, labels), f"{root} ({len(classes)} classes)")


# ---------------------------------------------------------------- TensorFlow Datasets


def require_tensorflow_backend(what: str) -> None:
    """Refuse ``what`` (naming it) unless Keras runs on TensorFlow."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{what} needs the TensorFlow backend; Keras is running on {backend!r}. On {backend!r} use 'embedded', "
            "a CIFAR-10 .npz file, an image directory or numpy arrays, or set KERAS_BACKEND=tensorflow."
        )


def prepare_tfds(name: str, data_dir: Optional[str] = None, manual_dir: Optional[str] = None):
    """A prepared TensorFlow Datasets builder for ``name``; clear errors for unknown names / missing manual_dir."""
    require_tensorflow_backend(f"data={name!r} (not 'embedded', a .npz file or a directory: a TensorFlow Datasets name)")
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # tfds raises DatasetNotFoundError with a long list
        raise ValueError(
            f"Unknown dataset data={name!r}: not 'embedded', not a .npz file or directory, and not a "
            f"TensorFlow Datasets name ({type(e).__name__})."
        ) from None
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS and not builder.is_prepared():
        if not manual_dir or not os.path.isdir(manual_dir):
            raise ValueError(
                f"data={name!r} needs its files downloaded by hand: pass manual_dir=DIR with them "
                f"(got manual_dir={manual_dir!r}). {builder.MANUAL_DOWNLOAD_INSTRUCTIONS.strip().splitlines()[0]}"
            )
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


def validation_split_name(builder) -> str:
    """``validation``, or ``test`` for datasets that have only that held out."""
    splits = builder.info.splits
    return "test" if "validation" not in splits and "test" in splits else "validation"


def tfds_examples(builder, split: str) -> Examples:
    """A split of a prepared builder (``count`` ``None`` when tfds has no split metadata, as with mock data)."""
    known = builder.info.splits
    if known and split not in known:
        raise ValueError(f"split must be one of {sorted(known)} for data={builder.name!r}; got split={split!r}.")
    return Examples(tfds_builder=builder, tfds_split=split, count=known[split].num_examples if known else None)


def tfds_source(name, data_dir=None, manual_dir=None, split=None, train=True) -> Source:
    """A TensorFlow Datasets source: ``train`` and the held-out split (or, ``train=False``, only ``split``)."""
    builder = prepare_tfds(name, data_dir, manual_dir)
    split = split or validation_split_name(builder)
    names = [str(c) for c in builder.info.features["label"].names]
    train_examples = tfds_examples(builder, "train") if train else None
    description = name if train else f"{name}:{split}"
    return Source(names, train_examples, tfds_examples(builder, split), description)
