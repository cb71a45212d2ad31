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
``recipe.cutmix``).  Eval: pycls's resize + centre crop, or small images as
they are.
"""

from __future__ import annotations


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


def eval_image(t, image, image_size: int, small_images: bool):
    """One evaluation image: pycls's resize + centre crop, or a small image as it is (float32 out)."""
    return t.as_float(image) if small_images else t.eval_resize_crop(image, image_size)


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
