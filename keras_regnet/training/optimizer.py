"""The recipe's optimizer, learning-rate schedule and compile step, as Keras objects."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_regnet.training.recipe import Recipe


@keras.saving.register_keras_serializable(package="keras_regnet")
class EpochCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """pycls's per-epoch warm-up + cosine schedule, evaluated per step."""

    def __init__(self, base_lr, epochs, steps_per_epoch, warmup_epochs=5, warmup_factor=0.1, min_lr=0.0):
        self.base_lr = float(base_lr)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.warmup_epochs = int(warmup_epochs)
        self.warmup_factor = float(warmup_factor)
        self.min_lr = float(min_lr)

    def __call__(self, step):
        epoch = ops.floor(ops.cast(step, "float32") / self.steps_per_epoch)
        lr = 0.5 * (1.0 + ops.cos(math.pi * epoch / self.epochs))
        lr = ((1.0 - self.min_lr) * lr + self.min_lr) * self.base_lr
        if self.warmup_epochs > 0:
            alpha = epoch / self.warmup_epochs
            warm = self.warmup_factor * (1.0 - alpha) + alpha
            lr = ops.where(epoch < self.warmup_epochs, lr * warm, lr)
        return lr

    def get_config(self):
        return dict(
            base_lr=self.base_lr, epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
            warmup_epochs=self.warmup_epochs, warmup_factor=self.warmup_factor, min_lr=self.min_lr,
        )


@keras.saving.register_keras_serializable(package="keras_regnet")
class CoupledWeightDecaySGD(keras.optimizers.SGD):
    """SGD whose weight decay is added to the gradient, as in PyTorch/pycls.

    Keras's ``weight_decay`` is decoupled (subtracted from the weights outside
    momentum); pycls's is L2 in the gradient, so it flows through momentum and
    Nesterov.  Applies to every trainable variable, BatchNorm included.
    """

    def __init__(self, l2=5e-5, **kwargs):
        super().__init__(**kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = gradient + ops.cast(self.l2, variable.dtype) * variable
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def make_optimizer(recipe: Recipe, steps_per_epoch: int):
    schedule = EpochCosineSchedule(
        recipe.lr, recipe.epochs, steps_per_epoch, recipe.warmup_epochs, recipe.warmup_factor, recipe.min_lr
    )
    ema = dict(use_ema=recipe.ema_decay is not None, ema_momentum=recipe.ema_decay or 0.99)
    if recipe.optimizer == "sgd":
        return CoupledWeightDecaySGD(
            l2=recipe.weight_decay, learning_rate=schedule, momentum=recipe.momentum, nesterov=recipe.nesterov, **ema
        )
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay, **ema)


def compile_model(model, recipe: Recipe, steps_per_epoch: int, jit_compile="auto", steps_per_execution=1):
    """Compile ``model`` with the recipe's optimizer, schedule, loss and metrics.

    Labels are one-hot (mixup/cutmix make them soft), so the loss is
    categorical cross-entropy with the recipe's label smoothing; the model's
    classifier must output probabilities (``classifier_activation="softmax"``).
    """
    model.compile(
        optimizer=make_optimizer(recipe, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"),
        ],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


