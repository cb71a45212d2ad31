"""tf.data input pipelines with pycls's train and eval transforms.

Train (ImageNet-size images): Inception random-resized crop (area 0.08-1,
aspect 3/4-4/3) to ``image_size``, horizontal flip, AlexNet PCA lighting on
[0, 1] pixels.  Eval: resize the shorter side to ``image_size * 256 / 224``,
centre crop.  Small images (CIFAR, 32x32): pad 4 + random crop + flip for
training, the image as is for evaluation.

Images leave the pipeline as float32 RGB in [0, 255] (the models normalise
inside) with one-hot labels, batched, with parallel map and prefetch
(AUTOTUNE).

Data sources (:func:`open_source`):
  * ``"embedded"``: the 5,000-image CIFAR-10 subset inside the package;
  * a CIFAR-10 JPEG ``.npz`` (``train_jpeg``/``train_offsets``/...) with a
    held-out validation split of 5,000 training images;
  * a directory of class subfolders (``DIR/train/<class>/*.jpg`` and
    ``DIR/val/<class>/...``, or one level of class folders split 90/10);
  * a TensorFlow Datasets name (``imagenet2012`` needs ``manual_dir``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional

import numpy as np
import tensorflow as tf

from keras_regnet.data.geometry import EIG_VALS, EIG_VECS, eval_scale_size

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass
class Source:
    """An opened data source: unbatched (uint8 image, int label) datasets and metadata."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    num_train: int
    num_validation: int
    class_names: List[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def inception_crop(image, size):
    """Random area 8-100% / aspect 3/4-4/3 crop, resized to ``size`` (pycls random_sized_crop)."""
    shape = tf.shape(image)
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.zeros([1, 0, 4]),
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, crop_size)
    return tf.image.resize(crop, (size, size), method="bilinear")


def pca_lighting(image_255, std):
    """AlexNet lighting noise; pycls adds it on [0, 1] pixels, here scaled to [0, 255]."""
    alpha = tf.random.normal([3], stddev=std)
    rgb = tf.linalg.matvec(tf.constant(EIG_VECS), alpha * EIG_VALS)
    return image_255 + 255.0 * rgb


def eval_resize_crop(image, size):
    """pycls's eval transform in graph ops (also inside exported SavedModels).

    Shorter side to ``size * 256 / 224`` (bilinear, the longer side floored;
    no resize if the shorter side already has that length), then the central
    ``size`` x ``size`` with offsets rounded up: the geometry of
    :func:`keras_regnet.input_pipeline_common.eval_geometry`.
    """
    short = eval_scale_size(size)
    shape = tf.shape(image)[:2]
    h, w = shape[0], shape[1]
    ratio = tf.cast(tf.maximum(h, w), tf.float64) / tf.cast(tf.minimum(h, w), tf.float64)
    long_side = tf.cast(tf.floor(ratio * short), tf.int32)
    new_h = tf.where(w < h, long_side, short)
    new_w = tf.where(w < h, short, long_side)
    keep = tf.equal(tf.minimum(h, w), short)
    new_h, new_w = tf.where(keep, h, new_h), tf.where(keep, w, new_w)
    image = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]), method="bilinear")
    top, left = (new_h - size + 1) // 2, (new_w - size + 1) // 2
    return image[top : top + size, left : left + size]


def train_transform(image, recipe, small_images):
    image = tf.cast(image, tf.float32)
    if small_images:
        size = tf.shape(image)[0]
        image = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
        image = tf.image.random_crop(image, tf.stack([size, size, 3]))
    else:
        image = inception_crop(image, recipe.image_size)
    image = tf.image.random_flip_left_right(image)
    if recipe.pca_lighting:
        image = pca_lighting(image, recipe.pca_lighting)
    return image


def eval_transform(image, recipe, small_images):
    image = tf.cast(image, tf.float32)
    return image if small_images else eval_resize_crop(image, recipe.image_size)


def make_datasets(source: Source, recipe, small_images: bool = False, batch_size: Optional[int] = None, seed=None):
    """(train, validation) batched datasets with the recipe's transforms."""
    batch_size = batch_size or recipe.batch_size
    n = source.num_classes
    randaugment = None
    if recipe.randaugment:
        import keras

        randaugment = keras.layers.RandAugment(value_range=(0, 255), factor=recipe.randaugment)

    def train_map(image, label):
        image = train_transform(image, recipe, small_images)
        if randaugment is not None:
            image = randaugment(image)
        return image, tf.one_hot(label, n)

    def eval_map(image, label):
        return eval_transform(image, recipe, small_images), tf.one_hot(label, n)

    train = (
        source.train.shuffle(min(source.num_train, 10_000), seed=seed, reshuffle_each_iteration=True)
        .map(train_map, num_parallel_calls=AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
    )
    if recipe.mixup or recipe.cutmix:
        train = train.map(lambda x, y: mix_batch(x, y, recipe.mixup, recipe.cutmix), num_parallel_calls=AUTOTUNE)
    validation = source.validation.map(eval_map, num_parallel_calls=AUTOTUNE).batch(batch_size)
    return train.prefetch(AUTOTUNE), validation.prefetch(AUTOTUNE)


def _beta(alpha):
    a = tf.random.gamma([], alpha)
    b = tf.random.gamma([], alpha)
    return a / (a + b)


def mix_batch(images, labels, mixup_alpha, cutmix_alpha):
    """Mixup or CutMix on a batch (one of the two per batch, at random, when both are on)."""
    perm = tf.random.shuffle(tf.range(tf.shape(images)[0]))
    other_x, other_y = tf.gather(images, perm), tf.gather(labels, perm)
    mixed = (images, labels)
    if mixup_alpha > 0:
        lam = _beta(mixup_alpha)
        mixed = (lam * images + (1 - lam) * other_x, lam * labels + (1 - lam) * other_y)
    if cutmix_alpha <= 0:
        return mixed
    lam = _beta(cutmix_alpha)
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    cut = tf.sqrt(1.0 - lam)
    ch = tf.cast(cut * tf.cast(h, tf.float32), tf.int32)
    cw = tf.cast(cut * tf.cast(w, tf.float32), tf.int32)
    cy, cx = tf.random.uniform([], 0, h, tf.int32), tf.random.uniform([], 0, w, tf.int32)
    y0, y1 = tf.clip_by_value(cy - ch // 2, 0, h), tf.clip_by_value(cy + ch // 2, 0, h)
    x0, x1 = tf.clip_by_value(cx - cw // 2, 0, w), tf.clip_by_value(cx + cw // 2, 0, w)
    rows, cols = tf.range(h)[:, None], tf.range(w)[None, :]
    box = tf.cast((rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1), images.dtype)[None, :, :, None]
    area = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(h * w, tf.float32)
    cut_x = images * (1 - box) + other_x * box
    cut_y = (1 - area) * labels + area * other_y
    use_cutmix = tf.random.uniform([]) < 0.5 if mixup_alpha > 0 else tf.constant(True)
    return tf.where(use_cutmix, cut_x, mixed[0]), tf.where(use_cutmix, cut_y, mixed[1])


# ---------------------------------------------------------------- sources


def open_source(data: str, data_dir: Optional[str] = None, manual_dir: Optional[str] = None) -> Source:
    """Open ``data``: ``"embedded"``, a CIFAR-10 JPEG ``.npz``, a directory, or a tfds name."""
    if data == "embedded":
        from keras_regnet.data.cifar10 import load_embedded_cifar10

        return _from_arrays(load_embedded_cifar10("train"), load_embedded_cifar10("validation"))
    if data.endswith(".npz"):
        if not os.path.isfile(data):
            raise ValueError(f"data={data!r}: no such .npz file.")
        from keras_regnet.data.cifar10 import load_cifar10_jpeg_npz

        return _from_arrays(load_cifar10_jpeg_npz(data, "train"), load_cifar10_jpeg_npz(data, "validation"))
    if os.path.isdir(data):
        return _from_directory(data)
    return _from_tfds(data, data_dir, manual_dir)


def _from_arrays(train, validation) -> Source:
    (xt, yt, classes), (xv, yv, _) = train, validation
    return Source(
        tf.data.Dataset.from_tensor_slices((xt, yt)),
        tf.data.Dataset.from_tensor_slices((xv, yv)),
        len(xt),
        len(xv),
        list(classes),
    )


def list_class_folder(root, classes):
    files, labels = [], []
    for i, c in enumerate(classes):
        folder = os.path.join(root, c)
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
        files += [os.path.join(folder, n) for n in names]
        labels += [i] * len(names)
    return files, labels


# What tf.io.decode_image reads: JPEG, PNG, GIF, BMP.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def decode_files(files, labels):
    def load(path, label):
        raw = tf.io.read_file(path)
        is_image = tf.reduce_any([tf.strings.substr(raw, 0, len(s)) == s for s in IMAGE_SIGNATURES])
        # TensorFlow's own decode error does not say which file: name it.
        check = tf.debugging.Assert(is_image, ["not a JPEG, PNG, GIF or BMP image:", path])
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(raw, channels=3, expand_animations=False)
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((files, np.asarray(labels, np.int64)))
    return ds.map(load, num_parallel_calls=AUTOTUNE)


def subfolders(path):
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))


def _from_directory(root) -> Source:
    splits = {s: os.path.join(root, s) for s in ("train", "val", "validation") if os.path.isdir(os.path.join(root, s))}
    if "train" in splits and len(splits) > 1:
        classes = subfolders(splits["train"])
        train_files, train_labels = list_class_folder(splits["train"], classes)
        val_root = splits.get("val", splits.get("validation"))
        val_files, val_labels = list_class_folder(val_root, classes)
    else:
        classes = subfolders(root)
        if not classes:
            raise ValueError(f"data={root!r} has no class subfolders (expected DIR/<class>/<image> or DIR/train/<class>/...).")
        files, labels = list_class_folder(root, classes)
        # Every 10th image of each class is held out for validation.
        order = np.arange(len(files))
        is_val = np.zeros(len(files), bool)
        for c in range(len(classes)):
            members = order[np.asarray(labels) == c]
            is_val[members[::10]] = True
        train_files = [f for f, v in zip(files, is_val) if not v]
        train_labels = [lab for lab, v in zip(labels, is_val) if not v]
        val_files = [f for f, v in zip(files, is_val) if v]
        val_labels = [lab for lab, v in zip(labels, is_val) if v]
    if not train_files:
        raise ValueError(f"data={root!r} contains no images with extensions {IMAGE_EXTENSIONS}.")
    return Source(
        decode_files(train_files, train_labels),
        decode_files(val_files, val_labels),
        len(train_files),
        len(val_files),
        classes,
    )


def prepare_tfds(name, data_dir=None, manual_dir=None):
    """A prepared TensorFlow Datasets builder for ``name``; clear errors for unknown names / missing manual_dir."""
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


def _from_tfds(name, data_dir, manual_dir) -> Source:
    builder = prepare_tfds(name, data_dir, manual_dir)
    splits = builder.info.splits
    val_split = validation_split_name(builder)
    label_feature = builder.info.features["label"]
    return Source(
        builder.as_dataset(split="train", as_supervised=True),
        builder.as_dataset(split=val_split, as_supervised=True),
        splits["train"].num_examples,
        splits[val_split].num_examples,
        list(label_feature.names),
    )
