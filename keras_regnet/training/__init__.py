"""Training with pycls's recipe in ``model.fit``.

``from keras_regnet.training import Recipe, train`` is the documented entry
point.  The pieces: ``recipe`` (hyper-parameters, pycls's learning-rate rule
and schedule formula), ``optimizer`` (the schedule and PyTorch's SGD as Keras
objects, compile), ``precise_bn`` (pycls's BatchNorm recomputation), ``distribute`` (the backend and device interface,
:class:`Distribution`, and every Keras workaround), ``callbacks`` (checkpoints,
curves, the NaN stop, the time budget), ``finetune`` (pretrained weights: the
head, the fine-tuning recipe, frozen phases) and ``loop`` (``train``, step by
step).
"""

from keras_regnet.training.callbacks import TimeBudget, TrainingDiverged
from keras_regnet.training.distribute import Distribution, make_distribution
from keras_regnet.training.finetune import finetuning_recipe, pretrained_classifier
from keras_regnet.training.loop import train
from keras_regnet.training.optimizer import (
    CoupledWeightDecaySGD,
    EpochCosineSchedule,
    TorchSGD,
    compile_model,
    make_optimizer,
)
from keras_regnet.training.precise_bn import PreciseBatchNorm, recompute_batch_norm_statistics
from keras_regnet.training.recipe import Recipe, epoch_lr, linear_scaled_lr

__all__ = [
    "CoupledWeightDecaySGD",
    "Distribution",
    "EpochCosineSchedule",
    "PreciseBatchNorm",
    "Recipe",
    "TimeBudget",
    "TorchSGD",
    "TrainingDiverged",
    "compile_model",
    "epoch_lr",
    "finetuning_recipe",
    "linear_scaled_lr",
    "make_distribution",
    "make_optimizer",
    "pretrained_classifier",
    "recompute_batch_norm_statistics",
    "train",
]
