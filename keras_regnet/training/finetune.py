"""Fine-tuning from pretrained weights: the right head, the fine-tuning recipe, a frozen phase, frozen BatchNorm.

:func:`~keras_regnet.training.train` with ``weights=`` uses these steps:

* :func:`pretrained_classifier`: the run's RegNet with the checkpoint's
  backbone, and a new classifier over the data's classes unless they are the
  checkpoint's (:func:`choose_head`: by name where the checkpoint's names are
  known, e.g. ImageNet's WordNet ids; else by count);
* :func:`finetuning_recipe`: one tenth of the from-scratch learning rate and
  one warm-up epoch, unless given;
* :func:`training_phases` and :func:`set_phase_trainable`: an optional first
  phase that trains the head only (the backbone frozen, BatchNorm in
  inference mode), then everything with a new optimizer; and optionally
  BatchNorm frozen throughout (its statistics are then the checkpoint's, so
  precise BN does not run).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import keras

from keras_regnet.architecture.config import RegNetConfig, check_int
from keras_regnet.architecture.models import RegNet, replace_classifier
from keras_regnet.training.recipe import Recipe
from keras_regnet.weights.resolve import classifier_class_ids, classifier_classes, parse_weights_argument

FINETUNE_LR_FACTOR = 0.1
FINETUNE_WARMUP_EPOCHS = 1
HEAD_LAYER = "predictions"


def finetuning_recipe(recipe: Recipe, keep_lr: bool = False, keep_warmup: bool = False) -> Recipe:
    """``recipe`` for fine-tuning: learning rate x 0.1 and 1 warm-up epoch (``keep_*``: leave that one as given)."""
    changes = {}
    if not keep_lr:
        changes["base_lr"] = recipe.lr * FINETUNE_LR_FACTOR
    if not keep_warmup:
        changes["warmup_epochs"] = min(FINETUNE_WARMUP_EPOCHS, recipe.epochs)
    return dataclasses.replace(recipe, **changes)


@dataclasses.dataclass(frozen=True)
class HeadChoice:
    """Whether the checkpoint's classifier is kept, and why (``message``, for the log and results.json)."""

    keep: bool
    checkpoint_classes: Optional[int]  # None: the weights have no classifier
    message: str


def choose_head(spec, class_names: Sequence[str]) -> HeadChoice:
    """Keep the checkpoint's classifier only when the data's classes are its classes.

    By name where the checkpoint's class names are known (``imagenet``
    weights: the WordNet ids, in order); by count otherwise.
    """
    n, m, ids = len(class_names), classifier_classes(spec), classifier_class_ids(spec)
    if m is None:
        return HeadChoice(False, None, f"the weights have no classifier: new {n}-class head")
    if m != n:
        return HeadChoice(False, m, f"backbone from the weights; new {n}-class head (the weights' head has {m} classes)")
    if ids is not None and list(ids) != [str(c) for c in class_names]:
        return HeadChoice(False, m, f"backbone from the weights; new {n}-class head (the data's classes are not the weights' {m} classes)")
    why = "the data's classes are the weights' classes" if ids is not None else "as many classes as the weights' head; its class names are not known"
    return HeadChoice(True, m, f"kept the weights' {n}-class head ({why})")


def pretrained_classifier(
    config: RegNetConfig, weights, class_names: Sequence[str], image_size: int, name: str
) -> "tuple[keras.Model, HeadChoice]":
    """The RegNet of ``config`` with ``weights``' backbone and a classifier over ``class_names``.

    Every backbone weight is the file's; the head is the file's when
    :func:`choose_head` keeps it, else new (pycls's initialisation).
    """
    spec = parse_weights_argument(weights, config, include_top=False, classes=len(class_names))
    choice = choose_head(spec, class_names)
    shape = (image_size, image_size, 3)
    if choice.keep:
        return RegNet(config, input_shape=shape, classes=len(class_names), weights=weights, name=name), choice
    if choice.checkpoint_classes is None:
        source = RegNet(config, include_top=False, input_shape=shape, weights=weights, name=name)
    else:  # the file fits as it is; then its head is replaced
        source = RegNet(config, input_shape=shape, classes=choice.checkpoint_classes, weights=weights, name=name)
    return replace_classifier(source, len(class_names)), choice


@dataclasses.dataclass(frozen=True)
class Phase:
    """Epochs ``[start, end)`` trained with the backbone frozen (``"head"``) or not (``"all"``)."""

    name: str
    start: int
    end: int

    @property
    def backbone_trainable(self) -> bool:
        return self.name == "all"


def training_phases(epochs: int, freeze_epochs: int = 0) -> List[Phase]:
    """The head-only phase (``freeze_epochs`` epochs, if any), then everything."""
    check_int("freeze_epochs", freeze_epochs, minimum=0, maximum=epochs)
    phases = [Phase("head", 0, freeze_epochs)] if freeze_epochs else []
    if freeze_epochs < epochs:
        phases.append(Phase("all", freeze_epochs, epochs))
    return phases


def set_phase_trainable(model: keras.Model, phase: Phase, freeze_batch_norm: bool = False) -> None:
    """Make the head trainable and the rest as ``phase`` says; BatchNorm frozen (inference mode) if asked.

    In Keras a BatchNormalization layer with ``trainable=False`` runs in
    inference mode: its statistics (and scale and offset) stay as they are.
    """
    for layer in model.layers:
        if layer.name == HEAD_LAYER:
            layer.trainable = True
        elif freeze_batch_norm and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        else:
            layer.trainable = phase.backbone_trainable


def uses_precise_bn(recipe: Recipe, phase: Phase, freeze_batch_norm: bool) -> bool:
    """Precise BN only where BatchNorm statistics are being learnt."""
    return bool(recipe.precise_bn_images) and phase.backbone_trainable and not freeze_batch_norm
