"""The pycls training recipe of the published RegNets, for ``model.fit``.

pycls (configs/dds_baselines) trains every published model with: SGD,
momentum 0.9, Nesterov; base learning rate 0.1 x batch / 128 (0.8 at 1024);
half-period cosine over 100 epochs; 5 warm-up epochs rising linearly from
0.1 x; weight decay 5e-5 on *all* parameters (BatchNorm included), coupled
into the gradient as PyTorch's SGD does; plain cross-entropy.  The learning
rate is set once per epoch (pycls's ``get_epoch_lr``).

:class:`Recipe` holds those defaults (every field overridable, modern extras
off); :func:`compile_model` applies it to a Keras model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import time
from typing import Optional, Union

import keras
from keras import ops

from keras_regnet.atomic import write_text
from keras_regnet.config import RegNetConfig, check_int
from keras_regnet.zoo import lookup

OPTIMIZERS = ("sgd", "adamw")


@dataclasses.dataclass
class Recipe:
    """Training hyper-parameters; defaults are pycls's for the published models.

    Attributes:
        epochs: training epochs (pycls: 100).
        batch_size: global batch size (pycls: per model, 256-1024).
        base_lr: learning rate at ``batch_size``; ``None`` -> 0.1 x batch/128.
        optimizer: ``"sgd"`` (pycls) or ``"adamw"``.
        momentum, nesterov: SGD momentum (0.9, Nesterov).
        weight_decay: 5e-5, on all parameters, added to the gradient (SGD) or
            decoupled (AdamW).
        warmup_epochs, warmup_factor: linear warm-up from
            ``warmup_factor x lr`` over ``warmup_epochs`` (5, 0.1).
        min_lr: cosine floor as a fraction of ``base_lr`` (pycls: 0).
        label_smoothing: 0 (plain cross-entropy).
        ema_decay: exponential moving average of weights; ``None`` = off.
        image_size: training crop size (224); evaluation resizes the shorter
            side to ``image_size * 256 / 224`` and centre-crops.
        pca_lighting: AlexNet PCA lighting noise std (0.1; 0 = off).
        mixup, cutmix: mixing strength alpha (0 = off).
        randaugment: RandAugment magnitude in [0, 1] (0 = off).
    """

    epochs: int = 100
    batch_size: int = 256
    base_lr: Optional[float] = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5
    warmup_epochs: int = 5
    warmup_factor: float = 0.1
    min_lr: float = 0.0
    label_smoothing: float = 0.0
    ema_decay: Optional[float] = None
    image_size: int = 224
    pca_lighting: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    randaugment: float = 0.0

    def __post_init__(self):
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got optimizer={self.optimizer!r}.")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32; got image_size={self.image_size}.")
        check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        for name in ("weight_decay", "label_smoothing", "pca_lighting", "mixup", "cutmix", "randaugment", "min_lr"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {name}={getattr(self, name)}.")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be None or in (0, 1); got ema_decay={self.ema_decay}.")

    @property
    def lr(self) -> float:
        """The base learning rate: ``base_lr`` or pycls's 0.1 x batch / 128."""
        return self.base_lr if self.base_lr is not None else 0.1 * self.batch_size / 128

    @classmethod
    def for_model(cls, name: str, **overrides) -> "Recipe":
        """pycls's recipe for a published model (its batch size and learning rate).

        Overriding ``batch_size`` without ``base_lr`` scales the published
        learning rate linearly with it, as pycls's rule (0.1 x batch / 128) does.
        """
        published = lookup(name)
        settings = dict(batch_size=published.train_batch_size, base_lr=published.base_lr)
        if overrides.get("batch_size") is not None and overrides.get("base_lr") is None:
            settings["base_lr"] = published.base_lr * overrides["batch_size"] / published.train_batch_size
        settings.update({k: v for k, v in overrides.items() if not (k == "base_lr" and v is None)})
        return cls(**settings)


def epoch_lr(recipe: Recipe, epoch: float) -> float:
    """Learning rate during ``epoch`` (0-based), exactly pycls's formula."""
    lr = 0.5 * (1.0 + math.cos(math.pi * epoch / recipe.epochs))
    lr = (1.0 - recipe.min_lr) * lr + recipe.min_lr
    lr *= recipe.lr
    if epoch < recipe.warmup_epochs:
        alpha = epoch / recipe.warmup_epochs
        lr *= recipe.warmup_factor * (1.0 - alpha) + alpha
    return lr


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


# ------------------------------------------------------------------ running


STRATEGIES = ("auto", "none", "mirrored", "multiworker", "tpu")
PRECISIONS = (None, "float32", "mixed_float16", "mixed_bfloat16")
# Multi-worker training shuffles with this seed on every worker (see train()).
MULTI_WORKER_SHUFFLE_SEED = 0


def check_output_dir(output_dir: str) -> str:
    """Create ``output_dir`` and prove it is writable, before any work starts."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"output_dir={output_dir!r} is not writable: {e.strerror or e}.") from None
    return output_dir


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


def _in_multi_worker_mode(strategy) -> bool:
    """Whether Keras's trainer takes its multi-worker branch for ``strategy``.

    The same test as Keras 3.15's ``_collective_all_reduce_multi_worker``
    (``keras/src/backend/tensorflow/trainer.py``): a MultiWorkerMirroredStrategy
    with a cluster of more than one worker (``TF_CONFIG``).
    """
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def _enable_multi_worker_fit(model, strategy):
    """Let ``model.fit`` run under a multi-worker MultiWorkerMirroredStrategy.

    Keras 3.15.1's TensorFlow trainer (``keras/src/backend/tensorflow/trainer.py``)
    fails on this path in two places (keras-team/keras#20585, open;
    tensorflow/tensorflow#72388).  Both are worked around here, on this one
    model instance, only in multi-worker mode (:func:`_in_multi_worker_mode`):

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


def train(
    model: Union[str, RegNetConfig] = "RegNetX-200MF",
    data: str = "embedded",
    output_dir: str = "runs/regnet",
    recipe: Optional[Recipe] = None,
    small_images: Optional[bool] = None,
    weights=None,
    data_dir: Optional[str] = None,
    manual_dir: Optional[str] = None,
    mixed_precision: Optional[str] = None,
    jit_compile="auto",
    steps_per_execution: int = 1,
    strategy: str = "auto",
    backup_every_steps: Optional[int] = None,
    verbose: int = 1,
) -> dict:
    """Train a RegNet with the recipe in ``model.fit``; resumable and logged.

    Args:
        model: a published model name or a :class:`RegNetConfig`.
        data: ``"embedded"`` (offline CIFAR-10 subset), a CIFAR-10 JPEG
            ``.npz``, an image directory, or a TensorFlow Datasets name.
        output_dir: checkpoints (``best.keras``, ``last.keras``), ``log.csv``,
            ``curves.png``, ``tensorboard/``, ``backup/``, ``results.json``.
        recipe: hyper-parameters; default pycls's for the model.
        small_images: stride-1 stem and CIFAR-style augmentation; default:
            ``recipe.image_size <= 64``.
        weights: initial weights (``builder`` ``weights`` argument).
        mixed_precision: ``None``/``"float32"``, ``"mixed_float16"``,
            ``"mixed_bfloat16"``.
        jit_compile, steps_per_execution: passed to ``model.compile``.
        strategy: on TensorFlow a ``tf.distribute`` strategy name (see
            :func:`make_strategy`); on JAX ``auto``/``none``/``data_parallel``
            (:func:`make_keras_distribution`).
        backup_every_steps: also back up mid-epoch every N steps (default:
            at epoch ends), so a killed run loses at most N steps.

    Running the same call again after an interruption (even ``kill -9``)
    resumes from the last backup (``keras.callbacks.BackupAndRestore``).

    Returns:
        The results dict also written to ``output_dir/results.json``.

    Raises:
        ValueError: bad arguments, found before any training starts.
        keras_regnet.callbacks.TrainingDiverged: the loss became NaN/inf.
    """
    from keras_regnet import callbacks as cb
    from keras_regnet.models import RegNet

    # --- everything that can be wrong is checked before any work starts
    if isinstance(model, RegNetConfig):
        config, name = model, "custom"
        recipe = recipe or Recipe()
    else:
        published = lookup(model)
        config, name = published.config, published.name
        recipe = recipe or Recipe.for_model(name)
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {PRECISIONS}; got mixed_precision={mixed_precision!r}.")
    check_output_dir(output_dir)
    on_tensorflow = keras.backend.backend() == "tensorflow"
    multi_worker = False
    if on_tensorflow:
        dist = make_strategy(strategy)
        replicas, scope = dist.num_replicas_in_sync, dist.scope
        multi_worker = _in_multi_worker_mode(dist)
    else:
        # tf.distribute needs TensorFlow; JAX scales with keras.distribution.
        distribution = make_keras_distribution(strategy)
        replicas = len(distribution.device_mesh.devices.flatten()) if distribution else 1
        scope = distribution.scope if distribution else contextlib.nullcontext
    if recipe.batch_size % replicas:
        raise ValueError(
            f"batch_size={recipe.batch_size} is not divisible by the {replicas} replicas of the "
            f"distribution strategy; use a multiple of {replicas}."
        )
    small = recipe.image_size <= 64 if small_images is None else small_images
    if on_tensorflow:
        from keras_regnet import input_pipeline

        source = input_pipeline.open_source(data, data_dir=data_dir, manual_dir=manual_dir)
        num_train, num_validation, class_names = source.num_train, source.num_validation, source.class_names
    else:
        from keras_regnet import numpy_pipeline

        train_ds, val_ds, num_train, num_validation, class_names = numpy_pipeline.make_batches(data, recipe, small)
    if small:
        config = dataclasses.replace(config, stem_stride=1)
    steps_per_epoch = num_train // recipe.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"batch_size={recipe.batch_size} is larger than the {num_train} training images of data={data!r}."
        )

    keras.mixed_precision.set_global_policy(mixed_precision or "float32")
    try:
        if on_tensorflow:
            # Multi-worker: tf.distribute shards each global batch across the
            # workers (AutoShardPolicy DATA for in-memory data), which is a
            # partition only if every worker shuffles in the same order; unseeded,
            # two workers overlapped on about half their examples per epoch.
            seed = MULTI_WORKER_SHUFFLE_SEED if multi_worker else None
            train_ds, val_ds = input_pipeline.make_datasets(source, recipe, small_images=small, seed=seed)
        with scope():
            net = RegNet(
                config,
                input_shape=(recipe.image_size, recipe.image_size, 3),
                classes=len(class_names),
                weights=weights,
                name=name.replace("-", "_").replace(".", "_").lower(),
            )
            compile_model(net, recipe, steps_per_epoch, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        if multi_worker:
            _enable_multi_worker_fit(net, dist)

        csv_path = os.path.join(output_dir, "log.csv")
        nan_stop = cb.StopOnNaN()
        callbacks = [
            cb.BackupAndRestore(
                os.path.join(output_dir, "backup"), save_freq=backup_every_steps or "epoch", double_checkpoint=True
            ),
            nan_stop,
            keras.callbacks.CSVLogger(csv_path, append=True),
            cb.AtomicCheckpoints(output_dir),
            cb.TrainingCurves(csv_path, os.path.join(output_dir, "curves.png")),
        ]
        if on_tensorflow:  # tf.summary writes the event files
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard")))
        start = time.perf_counter()
        history = net.fit(
            train_ds, validation_data=val_ds, epochs=recipe.epochs, callbacks=callbacks, verbose=verbose
        )
        wall = time.perf_counter() - start
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if nan_stop.message:
        raise cb.TrainingDiverged(nan_stop.message)
    epochs_run = len(history.epoch)
    results = {
        "model": name,
        "config": dataclasses.asdict(config),
        "data": data,
        "backend": keras.backend.backend(),
        "num_train": num_train,
        "num_validation": num_validation,
        "recipe": dataclasses.asdict(recipe),
        "small_images": small,
        "mixed_precision": mixed_precision,
        "replicas": replicas,
        "epochs_run_this_call": epochs_run,
        "wall_s_this_call": wall,
        "train_images_per_s": epochs_run * steps_per_epoch * recipe.batch_size / wall if epochs_run else None,
        "final": {k: float(v[-1]) for k, v in history.history.items()} if epochs_run else None,
    }
    write_text(os.path.join(output_dir, "results.json"), json.dumps(results, indent=2))
    return results
