"""The recipe's train and eval transforms, written once over a transforms module.

``t`` is :mod:`keras_regnet.data.transforms_tf` (inside tf.data) or
:mod:`keras_regnet.data.transforms_numpy` (inside a ``keras.utils.PyDataset``):
the same composition runs on both, so the two backends augment alike.

Train, ImageNet-size images (pycls's ImageNet loader): Inception crop to
``recipe.image_size``, horizontal flip, PCA lighting (``recipe.pca_lighting``).
Train, small images: pycls's CIFAR loader exactly, that is horizontal flip,
then padding by 4 (with the CIFAR mean colour) and a random crop back, and
no PCA lighting whatever ``recipe.pca_lighting`` says.  Then, per batch:
RandAugment (``recipe.randaugment``), Mixup/CutMix (``recipe.mixup``,
``recipe.cutmix``).  Eval (:data:`EVAL_TRANSFORMS`): pycls's resize +
centre crop (``"resize_crop"``), or for small images the central square at
their own size (``"center_crop"``: the identity on images of that size).
"""

from __future__ import annotations

from keras_regnet.architecture.model_info import EVAL_TRANSFORMS
from keras_regnet.data.geometry import eval_scale_size


def train_image(t, image, recipe, small_images: bool, rng):
    """One training image through the recipe's per-image transforms (float32 out).

    Small images: ``t.pad_crop_flip`` on the first of three child
    generators of ``rng``, and nothing else (pycls's CIFAR pipeline has no
    lighting).  Otherwise the Inception crop, the flip and, when
    ``recipe.pca_lighting`` is set, the lighting, on the three children.
    """
    crop_rng, flip_rng, light_rng = t.split_rng(rng, 3)
    if small_images:
        return t.pad_crop_flip(image, crop_rng)
    image = t.random_flip(t.inception_crop(image, recipe.image_size, crop_rng), flip_rng)
    if recipe.pca_lighting:
        image = t.pca_lighting(image, recipe.pca_lighting, light_rng)
    return image


def eval_transform_name(small_images: bool) -> str:
    """The eval transform a run validates with: ``"center_crop"`` for small images, else ``"resize_crop"``."""
    return "center_crop" if small_images else "resize_crop"


def check_eval_transform(transform: str) -> str:
    if transform not in EVAL_TRANSFORMS:
        raise ValueError(f"eval_transform must be one of {EVAL_TRANSFORMS}; got eval_transform={transform!r}.")
    return transform


def eval_image(t, image, image_size: int, transform: str = "resize_crop"):
    """One evaluation image through ``transform`` (one of :data:`EVAL_TRANSFORMS`), float32 out.

    ``"resize_crop"``: shorter side to ``image_size * 256 / 224``, then the
    central square (pycls).  ``"center_crop"``: shorter side to
    ``image_size`` (no resize when it has that length), then the central
    square.
    """
    short = eval_scale_size(image_size) if check_eval_transform(transform) == "resize_crop" else image_size
    return t.scale_center_crop(image, short, image_size)


def train_batch(t, images, labels, recipe, rng):
    """A batch through the recipe's per-batch transforms: RandAugment, then Mixup/CutMix."""
    if recipe.randaugment:
        images = t.randaugment(images, recipe.randaugment)
    if recipe.mixup or recipe.cutmix:
        images, labels = t.mix(images, labels, recipe.mixup, recipe.cutmix, rng)
    return images, labels


def has_batch_transforms(recipe) -> bool:
    """Whether the recipe transforms whole batches (RandAugment, Mixup, CutMix)."""
    return bool(recipe.randaugment or recipe.mixup or recipe.cutmix)
