"""The one entry point from data to ``model.fit``, on every backend: :func:`prepare`.

On TensorFlow the batches are a ``tf.data.Dataset``
(:mod:`keras_regnet.data.pipeline_tf`); on other backends a
``keras.utils.PyDataset`` (:mod:`keras_regnet.data.pipeline_numpy`, which
never imports TensorFlow).  Both run the same transforms
(:mod:`keras_regnet.data.augment`) over the same :class:`Source`.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import List, Optional

import keras
import numpy as np

from keras_regnet.data.augment import eval_transform_name
from keras_regnet.data.sources import Examples, Source, from_arrays, open_source


@dataclasses.dataclass
class TrainingData:
    """Batches ready for ``model.fit`` and what they are.

    Attributes:
        train, validation: float32 RGB images in [0, 255] with one-hot float
            labels, batched: ``tf.data.Dataset`` on TensorFlow,
            ``keras.utils.PyDataset`` otherwise (or what the caller gave).
            ``validation`` is ``None`` when there is none.
        num_train, num_validation: example counts (``None``: not known).
        steps_per_epoch: training batches per epoch.
        class_names: one name per class.
        description: what the data is, for ``results.json``.
    """

    train: object
    validation: object
    num_train: Optional[int]
    steps_per_epoch: int
    num_validation: Optional[int]
    class_names: List[str]
    description: str


def on_tensorflow() -> bool:
    """Whether Keras runs on TensorFlow (then the batches are tf.data)."""
    return keras.backend.backend() == "tensorflow"


def is_tf_dataset(value) -> bool:
    """Whether ``value`` is a ``tf.data.Dataset`` (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.data.Dataset)


def is_batched_dataset(value) -> bool:
    """Whether ``value`` is ready batches: a ``tf.data.Dataset`` or a ``keras.utils.PyDataset``."""
    return is_tf_dataset(value) or isinstance(value, keras.utils.PyDataset)


def train_batches(examples: Examples, recipe, small_images: bool, num_classes: int, seed=None):
    """The training batches of ``examples`` for the current backend (recipe's train transforms)."""
    if on_tensorflow():
        from keras_regnet.data import pipeline_tf

        return pipeline_tf.train_dataset(examples, recipe, small_images, num_classes, seed=seed)
    from keras_regnet.data.pipeline_numpy import Batches, reading_workers

    return Batches(
        examples, recipe.batch_size, recipe=recipe, small_images=small_images, num_classes=num_classes, seed=seed,
        workers=reading_workers(examples),
    )


def eval_batches(examples: Examples, image_size: int, batch_size: int, *, transform: str = "resize_crop", num_classes=None):
    """Evaluation batches of ``examples`` for the current backend, in order, through the eval ``transform``
    (:func:`keras_regnet.data.augment.eval_image`).

    Labels are one-hot with ``num_classes``, else integer class indices.
    """
    if on_tensorflow():
        from keras_regnet.data import pipeline_tf

        return pipeline_tf.eval_dataset(examples, image_size, batch_size, transform, num_classes)
    from keras_regnet.data.pipeline_numpy import Batches, reading_workers

    return Batches(
        examples, batch_size, image_size=image_size, eval_transform=transform, num_classes=num_classes,
        workers=reading_workers(examples),
    )


def numpy_batches(batches):
    """Iterate ``(images, labels)`` numpy batches of a ``tf.data.Dataset`` or a ``keras.utils.PyDataset``."""
    if is_tf_dataset(batches):
        yield from batches.as_numpy_iterator()
        return
    for i in range(len(batches)):
        images, labels = batches[i]
        yield np.asarray(images), np.asarray(labels)


def refuse_batch_options(recipe, what: str) -> None:
    """Refuse recipe options that transform batches we do not build (named, with the way out)."""
    for option in ("mixup", "cutmix", "randaugment"):
        if getattr(recipe, option):
            raise ValueError(
                f"recipe.{option}={getattr(recipe, option)} cannot be applied to {what}, which is used as given; "
                f"apply it in your own pipeline, or pass (images, labels) numpy arrays or a data name instead."
            )


def given_batches(data, name: str):
    """``(steps, num_classes, image_shape)`` of a ready-batched dataset given by the caller."""
    if is_tf_dataset(data):
        steps = int(data.cardinality())
        images, labels = data.element_spec[:2] if isinstance(data.element_spec, tuple) else (None, None)
        shapes = (images.shape if images is not None else None, labels.shape if labels is not None else None)
    else:
        try:
            steps = len(data)
        except TypeError:
            steps = -1
        first = data[0]
        shapes = (np.shape(first[0]), np.shape(first[1]))
    if steps < 1:
        raise ValueError(
            f"{name} must have a known, finite number of batches (steps per epoch); got {steps}. For tf.data, "
            "use dataset.apply(tf.data.experimental.assert_cardinality(N)) for a dataset of N batches."
        )
    if shapes[1] is None or len(shapes[1]) != 2 or shapes[1][-1] is None:
        raise ValueError(f"{name} must yield (images, one-hot labels) batches, labels of shape (batch, classes).")
    return steps, int(shapes[1][-1]), tuple(shapes[0][1:]) if shapes[0] is not None else None


def check_given(data, recipe, name: str):
    """A ready-batched dataset's ``(steps, class_names)``, after checking it fits the recipe."""
    refuse_batch_options(recipe, f"{name} (a ready-batched {type(data).__name__})")
    steps, num_classes, image_shape = given_batches(data, name)
    size = recipe.image_size
    if image_shape and None not in image_shape and tuple(image_shape) != (size, size, 3):
        raise ValueError(f"{name} yields images of shape {tuple(image_shape)}; recipe.image_size={size} needs ({size}, {size}, 3).")
    return steps, [str(i) for i in range(num_classes)]


def open_data(data, validation_data, data_dir, manual_dir) -> Source:
    """The :class:`Source` of ``data`` (a name or an ``(images, labels)`` pair), with tuple ``validation_data`` in it."""
    if isinstance(data, str):
        source = open_source(data, data_dir=data_dir, manual_dir=manual_dir)
        if isinstance(validation_data, (tuple, list)):
            source = dataclasses.replace(source, validation=from_arrays(validation_data).train)
        return source
    if isinstance(data, (tuple, list)):
        validation = validation_data if isinstance(validation_data, (tuple, list)) else None
        return from_arrays(data, validation)
    raise ValueError(
        "data must be a name ('embedded', a .npz file, a directory, a TensorFlow Datasets name), an (images, labels) "
        f"pair of numpy arrays, a tf.data.Dataset or a keras.utils.PyDataset; got {type(data).__name__}."
    )


def check_source(source: Source, recipe, small_images: bool) -> int:
    """Steps per epoch of ``source`` under ``recipe``, after checking that they can be made."""
    if source.num_train is None:
        raise ValueError(f"data={source.description!r}: the number of training examples is not known.")
    steps = source.num_train // recipe.batch_size
    if steps < 1:
        raise ValueError(
            f"batch_size={recipe.batch_size} is larger than the {source.num_train} training images of data={source.description!r}."
        )
    size = recipe.image_size
    for examples in (source.train, source.validation):
        if small_images and examples is not None and examples.images is not None and examples.images.shape[1:3] != (size, size):
            raise ValueError(
                f"small_images keeps the images' own size, {examples.images.shape[1:3]}, but recipe.image_size={size}; "
                "use an image_size equal to the images' size."
            )
    return steps


def prepare(
    data, recipe, *, small_images: bool, validation_data=None, seed=None, data_dir=None, manual_dir=None
) -> TrainingData:
    """Training and validation batches for ``model.fit`` on the current backend.

    Args:
        data: ``"embedded"``, a CIFAR-10 JPEG ``.npz``, an image directory, a
            TensorFlow Datasets name (TensorFlow backend only), an
            ``(images, labels)`` pair (uint8 NHWC, integer labels), all
            through the recipe's transforms; or a ready-batched
            ``tf.data.Dataset`` / ``keras.utils.PyDataset`` of (images,
            one-hot labels), used as given (``mixup``, ``cutmix`` and
            ``randaugment`` are then refused; nothing else is applied).
        recipe: a :class:`keras_regnet.training.Recipe` (``image_size``,
            ``batch_size``, ``pca_lighting``, ``mixup``, ``cutmix``,
            ``randaugment``).
        small_images: CIFAR-style augmentation at the images' own size.
        validation_data: an ``(images, labels)`` pair (eval transform) or a
            ready-batched dataset; replaces a named source's validation split.
        seed: seeds the shuffle and augmentation (multi-worker TensorFlow
            needs the same shuffle on every worker); ``None``: random.
        data_dir, manual_dir: TensorFlow Datasets directories.

    Raises:
        ValueError: unknown or unusable data, or a batch larger than the data.
    """
    if is_batched_dataset(data):
        steps, class_names = check_given(data, recipe, "data")
        if validation_data is not None and not is_batched_dataset(validation_data):
            raise ValueError("validation_data must be a ready-batched dataset too when data is one (or None).")
        if validation_data is not None:
            check_given(validation_data, recipe, "validation_data")
        description = f"{type(data).__name__} given by the caller"
        return TrainingData(data, validation_data, None, steps, None, class_names, description)
    source = open_data(data, validation_data, data_dir, manual_dir)
    steps = check_source(source, recipe, small_images)
    n = source.num_classes
    train = train_batches(source.train, recipe, small_images, n, seed=seed)
    if is_batched_dataset(validation_data):
        check_given(validation_data, recipe, "validation_data")
        source = dataclasses.replace(source, validation=None)
        validation = validation_data
    elif source.validation is not None:
        validation = eval_batches(
            source.validation, recipe.image_size, recipe.batch_size, transform=eval_transform_name(small_images), num_classes=n
        )
    else:
        validation = None
    return TrainingData(train, validation, source.num_train, steps, source.num_validation, source.class_names, source.description)
