"""Backends and scaling out, behind one interface: :class:`Distribution`.

:func:`make_distribution` turns a strategy name into a :class:`Distribution`:
a ``tf.distribute`` strategy on TensorFlow, ``keras.distribution`` on JAX.
``train()`` asks it only for the number of replicas, a ``scope()`` to build
and compile in, the shuffle seed of the input pipeline, whether TensorBoard
event files can be written, and ``prepare_model(model)``.

Every workaround for Keras behaviour that training relies on lives here,
with its upstream issue where one exists: the multi-worker ``fit``
(:func:`enable_multi_worker_fit`) and backups at epoch ends
(:class:`BackupAndRestore`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from typing import Any, Callable, ContextManager, Optional

import keras

STRATEGIES = ("auto", "none", "mirrored", "multiworker", "tpu")
# Multi-worker training shuffles with this seed on every worker (Distribution.shuffle_seed).
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
        # Every GPU; without GPUs, every logical CPU device (tf.distribute's own
        # default would take a single CPU), so CPU-only hosts can mirror too.
        gpus = tf.config.list_logical_devices("GPU")
        return mirrored_strategy(None if gpus else tuple(d.name for d in tf.config.list_logical_devices("CPU")))
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


@functools.lru_cache(maxsize=None)
def mirrored_strategy(devices: Optional[tuple] = None):
    """The process's one ``tf.distribute.MirroredStrategy`` over ``devices`` (``None``: every GPU).

    Every new MirroredStrategy numbers its collective all-reduces from the
    same keys, so a second one in a process fails once its all-reduces differ
    in shape from the first's ("Shape mismatch in the collective instance
    100", tensorflow/tensorflow#62790).  One strategy per device list, reused.
    """
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(devices) if devices else None)


def in_multi_worker_mode(strategy) -> bool:
    """Whether Keras's trainer takes its multi-worker branch for ``strategy``.

    The same test as Keras 3.15's ``_collective_all_reduce_multi_worker``
    (``keras/src/backend/tensorflow/trainer.py``): a MultiWorkerMirroredStrategy
    with a cluster of more than one worker (``TF_CONFIG``).
    """
    import tensorflow as tf

    # TensorFlow's own (private) predicate, the one Keras calls: any other test could disagree with Keras.
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


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
    if keras.backend.backend() != "jax":
        # keras.distribution is implemented for JAX only (list_devices() fails on torch).
        if name == "data_parallel":
            raise ValueError(
                f"strategy='data_parallel' needs the JAX backend; on {keras.backend.backend()} use 'auto' or 'none'."
            )
        return None
    devices = keras.distribution.list_devices()
    if name == "none" or (name == "auto" and len(devices) < 2):
        return None
    return keras.distribution.DataParallel(devices=devices)


@dataclasses.dataclass(frozen=True)
class Distribution:
    """What training needs to know about the backend and the devices it runs on.

    Attributes:
        replicas: model replicas a global batch is split across.
        scope: a callable returning the context to build and compile in
            (``strategy.scope`` / ``distribution.scope`` / a null context).
        multi_worker: several worker processes (TensorFlow
            MultiWorkerMirroredStrategy with a ``TF_CONFIG`` cluster).
        tensorboard: whether TensorBoard event files can be written
            (Keras writes them with ``tf.summary``, so TensorFlow only).
        strategy: the ``tf.distribute`` strategy or ``keras.distribution``
            object, or ``None``.
    """

    replicas: int = 1
    scope: Callable[[], ContextManager] = contextlib.nullcontext
    multi_worker: bool = False
    tensorboard: bool = False
    strategy: Any = None

    @property
    def shuffle_seed(self) -> Optional[int]:
        """Seed for the training data's shuffle: fixed on multi-worker runs, else ``None``.

        tf.distribute shards each global batch across the workers
        (AutoShardPolicy DATA for in-memory data), which is a partition only
        if every worker shuffles in the same order; unseeded, two workers
        overlapped on about half their examples per epoch.
        """
        return MULTI_WORKER_SHUFFLE_SEED if self.multi_worker else None

    def check_batch_size(self, batch_size: int) -> None:
        """Raise ``ValueError`` unless ``batch_size`` splits evenly across the replicas."""
        if batch_size % self.replicas:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by the {self.replicas} replicas of the "
                f"distribution strategy; use a multiple of {self.replicas}."
            )

    def prepare_model(self, model):
        """Make a built and compiled ``model`` ready for ``fit`` on this distribution."""
        if self.multi_worker:
            enable_multi_worker_fit(model, self.strategy)
        return model


def make_distribution(strategy: str = "auto") -> Distribution:
    """The :class:`Distribution` for ``strategy`` on the current Keras backend.

    Args:
        strategy: on TensorFlow a ``tf.distribute`` strategy name (see
            :func:`make_strategy`); on other backends ``auto``, ``none`` or
            ``data_parallel`` (:func:`make_keras_distribution`).
    """
    if keras.backend.backend() == "tensorflow":
        tf_strategy = make_strategy(strategy)
        return Distribution(
            replicas=tf_strategy.num_replicas_in_sync,
            scope=tf_strategy.scope,
            multi_worker=in_multi_worker_mode(tf_strategy),
            tensorboard=True,
            strategy=tf_strategy,
        )
    # tf.distribute needs TensorFlow; JAX scales with keras.distribution.
    distribution = make_keras_distribution(strategy)
    if distribution is None:
        return Distribution()
    return Distribution(
        replicas=len(distribution.device_mesh.devices.flatten()), scope=distribution.scope, strategy=distribution
    )


def forget_restored_epoch(model) -> None:
    """Make the next ``fit`` of ``model`` start at its own ``initial_epoch``.

    ``keras.callbacks.BackupAndRestore`` restores the epoch by setting the
    model's private ``_initial_epoch``, which every backend's ``fit`` prefers
    to its ``initial_epoch`` argument (``initial_epoch = self._initial_epoch
    or initial_epoch`` in ``keras/src/backend/*/trainer.py``, Keras 3.15.1)
    and nothing resets.  A second ``fit`` of the same model, as the next
    fine-tuning phase, would start at the epoch the first one restored.  No
    upstream issue found (searched keras-team/keras).
    """
    model._initial_epoch = None


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` that also backs up at every epoch end.

    With an integer ``save_freq`` (mid-epoch backups) Keras 3.15 saves only
    every ``save_freq`` batches (``keras/src/callbacks/backup_and_restore.py``,
    ``on_epoch_end`` saves for ``save_freq="epoch"`` only), so the last
    backup of an epoch still says "in epoch N" and a run killed just after
    epoch N ended repeats all of it.  Backing up at the epoch end as well
    records "epoch N done".  No upstream issue found (searched
    keras-team/keras); Keras restores the epoch, never the step, so a run
    resumed from a mid-epoch backup runs that epoch again in full, from the
    backed-up weights.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # "epoch" already saved in super()
            self._save_model()
