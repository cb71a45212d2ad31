"""The recipe's optimizer, learning-rate schedule and compile step, as Keras objects."""

from __future__ import annotations

import keras
from keras import ops

from keras_regnet.training.recipe import Recipe, epoch_lr


def schedule_dtype() -> str:
    """float64 where the backend computes in it (JAX only with ``jax_enable_x64``), else float32."""
    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


@keras.saving.register_keras_serializable(package="keras_regnet")
class EpochCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """pycls's per-epoch warm-up + cosine schedule, looked up per step.

    The learning rate of each epoch is computed once, in Python floats (double
    precision, pycls's formula: :func:`~keras_regnet.training.recipe.epoch_lr`),
    and the step's value is read from that table, so no float32 arithmetic
    rounds it; the optimizer casts it to each variable's dtype, as PyTorch
    does when it multiplies a float32 parameter by its float learning rate.
    """

    def __init__(self, base_lr, epochs, steps_per_epoch, warmup_epochs=5, warmup_factor=0.1, min_lr=0.0):
        self.base_lr = float(base_lr)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.warmup_epochs = int(warmup_epochs)
        self.warmup_factor = float(warmup_factor)
        self.min_lr = float(min_lr)
        recipe = Recipe(
            epochs=self.epochs, base_lr=self.base_lr, warmup_epochs=self.warmup_epochs,
            warmup_factor=self.warmup_factor, min_lr=self.min_lr,
        )
        self.epoch_lrs = [epoch_lr(recipe, epoch) for epoch in range(self.epochs)]

    def __call__(self, step):
        epoch = ops.minimum(ops.floor_divide(ops.cast(step, "int64"), self.steps_per_epoch), self.epochs - 1)
        return ops.take(ops.convert_to_tensor(self.epoch_lrs, dtype=schedule_dtype()), epoch)

    def get_config(self):
        return dict(
            base_lr=self.base_lr, epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
            warmup_epochs=self.warmup_epochs, warmup_factor=self.warmup_factor, min_lr=self.min_lr,
        )


@keras.saving.register_keras_serializable(package="keras_regnet")
class CoupledWeightDecaySGD(keras.optimizers.SGD):
    """Deprecated (0.1.0): Keras's SGD with weight decay added to the gradient.

    Kept so that checkpoints written by 0.1.0 load with their optimizer
    state, which is in Keras's velocity convention.  Its momentum differs from
    PyTorch's whenever the learning rate changes; new training uses
    :class:`TorchSGD`.
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


def fused_momentum_update(variable, velocity, lr, gradient, momentum, nesterov: bool) -> bool:
    """PyTorch's momentum update as TensorFlow's one ``ResourceApplyMomentum`` op; False where it does not apply.

    TensorFlow's op is PyTorch's update (``v = mu * v + g``, then
    ``p -= lr * v``, or with Nesterov ``p -= lr * g + lr * mu * v``; only the
    rounding order of the last line differs), in one op per variable
    instead of about ten: the update was 1,300 small ops per step of
    RegNetX-200MF.  Not used on other backends or under a
    ``tf.distribute`` strategy (whose variables Keras updates itself).
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return False
    tf.raw_ops.ResourceApplyMomentum(
        var=variable.handle, accum=velocity.handle, lr=lr, grad=gradient, momentum=momentum,
        use_locking=False, use_nesterov=nesterov,
    )
    return True


@keras.saving.register_keras_serializable(package="keras_regnet")
class TorchSGD(CoupledWeightDecaySGD):
    """SGD exactly as ``torch.optim.SGD`` (and so pycls) updates, as a Keras optimizer.

    With gradient ``g``, parameter ``p``, momentum ``mu``, learning rate
    ``lr`` and weight decay ``wd`` (dampening 0)::

        g = g + wd * p            # coupled L2, on every trainable variable
        v = mu * v + g            # the velocity does not contain lr
        p = p - lr * (g + mu * v)   # Nesterov; p - lr * v without

    Keras's own SGD keeps ``lr`` inside its velocity (``v = mu * v - lr * g``),
    so the two differ whenever the learning rate changes, which pycls's
    schedule does every epoch.  The ``momentums`` slot holds PyTorch's
    ``momentum_buffer``.  Compile with it like any Keras optimizer.

    Args:
        l2: the weight decay ``wd`` (pycls: 5e-5), added to the gradient.
        **kwargs: :class:`keras.optimizers.SGD`'s (``learning_rate``,
            ``momentum``, ``nesterov``, EMA, clipping...).
    """

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        # Python floats straight to the variable's dtype: ops.cast(0.9, "float64")
        # would go through float32 and round 0.9 to 0.899999976.
        momentum, l2 = (ops.convert_to_tensor(v, dtype=dtype) for v in (self.momentum, self.l2))
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self.l2:
            gradient = gradient + l2 * variable
        if self.momentum == 0:
            self.assign_sub(variable, lr * gradient)
            return
        velocity = self.momentums[self._get_variable_index(variable)]
        if fused_momentum_update(variable, velocity, lr, gradient, momentum, self.nesterov):
            return
        self.assign(velocity, momentum * velocity + gradient)
        self.assign_sub(variable, lr * (gradient + momentum * velocity if self.nesterov else velocity))


@keras.saving.register_keras_serializable(package="keras_regnet")
class TopKCategoricalAccuracy(keras.metrics.TopKCategoricalAccuracy):
    """Keras's top-k accuracy, with predictions cast to float32 first.

    TensorFlow's ``in_top_k`` takes float32 only, so Keras's metric fails on
    a float64 model; ranking ``k`` classes loses nothing in float32.
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, ops.cast(y_pred, "float32"), sample_weight=sample_weight)


def make_optimizer(recipe: Recipe, steps_per_epoch: int):
    schedule = EpochCosineSchedule(
        recipe.lr, recipe.epochs, steps_per_epoch, recipe.warmup_epochs, recipe.warmup_factor, recipe.min_lr
    )
    ema = dict(use_ema=recipe.ema_decay is not None, ema_momentum=recipe.ema_decay or 0.99)
    if recipe.optimizer == "sgd":
        return TorchSGD(
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
        # In the model's variable dtype: float32 under mixed precision, float64 for a float64 model.
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing, dtype=model.dtype),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            TopKCategoricalAccuracy(k=5, name="top5_accuracy"),
        ],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


