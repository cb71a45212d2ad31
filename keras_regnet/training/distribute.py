"""Scaling out: tf.distribute strategies (TensorFlow) and keras.distribution (JAX).

Every workaround for a Keras bug on these paths lives here, with its
upstream issue.
"""

from __future__ import annotations

import os
from typing import Optional

import keras

STRATEGIES = ("auto", "none", "mirrored", "multiworker", "tpu")
# Multi-worker training shuffles with this seed on every worker (see loop.py).
MULTI_WORKER_SHUFFLE_SEED = 0


def make_strategy(name: str = "auto", tpu: Optional[str] = None):
    """A ``tf.distribute`` strategy by name (``auto``: several GPUs -> Mirrored,
    ``TF_CONFIG`` set -> MultiWorkerMirrored, else the default strategy)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got strategy={name!r}.")
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def in_multi_worker_mode(strategy) -> bool:
    """Whether Keras's trainer takes its multi-worker branch for ``strategy``.

    The same test as Keras 3.15's ``_collective_all_reduce_multi_worker``
    (``keras/src/backend/tensorflow/trainer.py``): a MultiWorkerMirroredStrategy
    with a cluster of more than one worker (``TF_CONFIG``).
    """
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended.in_multi_worker_mode()


def enable_multi_worker_fit(model, strategy):
    """Let ``model.fit`` run under a multi-worker MultiWorkerMirroredStrategy.

    Keras 3.15.1's TensorFlow trainer (``keras/src/backend/tensorflow/trainer.py``)
    fails on this path in two places (keras-team/keras#20585, open;
    tensorflow/tensorflow#72388).  Both are worked around here, on this one
    model instance, only in multi-worker mode (:func:`in_multi_worker_mode`):

    1. ``TensorFlowTrainer._maybe_symbolic_build`` (line 731) takes the first
       distributed batch and, to get a plain one for the symbolic build, calls
       ``strategy.reduce("MEAN", batch, axis=None)`` on the whole ``(x, y)``
       structure.  MWMS's collective reduce takes a single value and fails
       converting the tuple ("Attempt to convert a value (PerReplica...) to a
       Tensor"); all-reducing images across workers would be pointless anyway,
       the build only needs shapes and dtypes.  The reduce runs before Keras
       checks whether anything is unbuilt, so building the model, metrics and
       optimizer beforehand does not avoid it.  Replaced (a private method,
       hence the instance override) by the same build from this worker's first
       local replica batch, without cross-worker communication.
    2. ``reduce_per_replica`` (line 841) reduces every step's logs with
       ``strategy.reduce("MEAN", v, axis=0)`` in multi-worker mode, but the
       logs are scalar metric results and have no axis 0 ("Invalid reduction
       dimension 0 for input with 0 dimensions").  ``train_step`` and
       ``test_step`` (public, meant to be overridden) return each scalar as
       shape ``(1,)`` instead, which that reduce turns into the mean over all
       replicas: a scalar again.

    Epoch-end metrics do not go through (2): Keras reads them from the metric
    variables, summed over all replicas.  Remove this once Keras fixes both.
    """
    import tensorflow as tf

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                local = strategy.experimental_local_results
                data_batch = tf.nest.map_structure(lambda v: local(v)[0], next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def as_vectors(logs):
        def vector(v):
            v = tf.convert_to_tensor(v)
            return tf.reshape(v, [1]) if v.shape.rank == 0 else v

        return tf.nest.map_structure(vector, logs)

    train_step, test_step = model.train_step, model.test_step
    model._maybe_symbolic_build = maybe_symbolic_build
    model.train_step = lambda data: as_vectors(train_step(data))
    model.test_step = lambda data: as_vectors(test_step(data))
    return model


def make_keras_distribution(name: str = "auto"):
    """``keras.distribution.DataParallel`` over all devices (JAX backend), or ``None``.

    ``auto``: data parallel when there is more than one device.
    """
    if name not in ("auto", "none", "data_parallel"):
        raise ValueError(
            f"strategy={name!r} is a tf.distribute strategy and needs the TensorFlow backend; on "
            f"{keras.backend.backend()} use 'auto', 'none' or 'data_parallel'."
        )
    devices = keras.distribution.list_devices()
    if name == "none" or (name == "auto" and len(devices) < 2):
        return None
    return keras.distribution.DataParallel(devices=devices)


