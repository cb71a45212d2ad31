"""Precise BatchNorm statistics: pycls's recomputation before each evaluation and save.

During training a BatchNorm layer's moving statistics trail the weights (an
exponential average over past batches, each seen by older weights).  pycls
therefore replaces them after every epoch (``BN.USE_PRECISE_STATS``,
``net.compute_precise_bn_stats``): it runs ``NUM_SAMPLES_PRECISE`` (8,192)
training images through the network in training mode, with the weights
fixed, and sets each layer's statistics to the average over those batches of
the batch mean and of the unbiased batch variance.

:func:`recompute_batch_norm_statistics` does the same for a Keras model, on
any backend, as one compiled ``predict`` pass; :class:`PreciseBatchNorm` is
the callback that runs it where pycls does: after each training epoch,
before validation and before the epoch's checkpoints are written.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import ops

from keras_regnet.architecture.layers import batch_moments

PYCLS_PRECISE_IMAGES = 8192  # pycls's BN.NUM_SAMPLES_PRECISE


def batch_norm_layers(model: keras.Model) -> list:
    """The model's BatchNormalization layers, in model order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def precise_batches(num_images: int, batch_size: int, steps_per_epoch: int) -> int:
    """pycls's batch count: ``num_images / batch_size`` (at least 1), at most one epoch."""
    return max(1, min(int(num_images / batch_size), steps_per_epoch))


class BatchMoments(keras.Model):
    """Per batch, the mean and unbiased variance of every BatchNorm layer's input, in training mode.

    Its outputs have one row per batch (``predict`` stacks them), so a pass
    over many batches keeps only a few numbers per channel in memory.
    """

    def __init__(self, model: keras.Model, layers: list, **kwargs):
        super().__init__(**kwargs)
        self.features = keras.Model(model.inputs, [layer.input for layer in layers])
        self.channel_axes = [layer.axis for layer in layers]

    def call(self, inputs, training=None):
        outputs = []
        for x, axis in zip(self.features(inputs, training=True), self.channel_axes):
            x = ops.cast(x, keras.backend.result_type(x.dtype, "float32"))  # as BatchNormalization computes
            mean, _, unbiased = batch_moments(x, axis)
            outputs += [ops.expand_dims(mean, 0), ops.expand_dims(unbiased, 0)]
        return outputs


def recompute_batch_norm_statistics(model: keras.Model, data, batches: int) -> int:
    """Set every BatchNorm layer's moving statistics to pycls's precise statistics.

    Args:
        model: a functional model (its BatchNorm layers at the top level, as
            in the package's RegNets).
        data: training batches (``(images, labels)`` or images): a
            ``tf.data.Dataset``, a ``keras.utils.PyDataset`` or anything
            ``model.predict`` takes with ``steps``.
        batches: how many batches to average over (:func:`precise_batches`).

    Returns:
        The number of BatchNorm layers updated.

    The moving mean becomes the average of the batch means, the moving
    variance the average of the unbiased batch variances (pycls's
    ``compute_precise_bn_stats``); weights do not change.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    strategy = getattr(model, "distribute_strategy", None)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        moments = BatchMoments(model, layers)
    values = moments.predict(data, steps=batches, verbose=0)
    for layer, mean, variance in zip(layers, values[0::2], values[1::2]):
        layer.moving_mean.assign(np.mean(np.asarray(mean, np.float64), axis=0).astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(np.mean(np.asarray(variance, np.float64), axis=0).astype(layer.moving_variance.dtype))
    return len(layers)


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recompute BatchNorm statistics after every training epoch, as pycls does.

    Runs once per epoch inside ``fit``: when validation begins (so validation
    sees the precise statistics), or at the epoch's end when there is no
    validation that epoch.  Put it before the callbacks that save the model,
    so checkpoints and backups hold the precise statistics, as pycls's do.

    Args:
        data: the training batches (see :func:`recompute_batch_norm_statistics`).
        batches: how many of them to use (:func:`precise_batches`).
    """

    def __init__(self, data, batches: int):
        super().__init__()
        self.data = data
        self.batches = int(batches)
        self._in_fit = False
        self._done = True

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._done = False

    def on_test_begin(self, logs=None):
        if self._in_fit and not self._done:
            self._recompute()

    def on_epoch_end(self, epoch, logs=None):
        if not self._done:
            self._recompute()

    def _recompute(self):
        recompute_batch_norm_statistics(self.model, self.data, self.batches)
        self._done = True
