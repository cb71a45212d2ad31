"""``train()``: a RegNet trained with the recipe in ``model.fit``, resumable and logged."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from typing import Optional, Union

import keras

from keras_regnet.architecture.config import RegNetConfig
from keras_regnet.architecture.zoo import lookup
from keras_regnet.atomic import write_text
from keras_regnet.training.distribute import (
    MULTI_WORKER_SHUFFLE_SEED,
    enable_multi_worker_fit,
    in_multi_worker_mode,
    make_keras_distribution,
    make_strategy,
)
from keras_regnet.training.optimizer import compile_model
from keras_regnet.training.recipe import Recipe

PRECISIONS = (None, "float32", "mixed_float16", "mixed_bfloat16")


def check_output_dir(output_dir: str) -> str:
    """Create ``output_dir`` and prove it is writable, before any work starts."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"output_dir={output_dir!r} is not writable: {e.strerror or e}.") from None
    return output_dir


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
    from keras_regnet.training import callbacks as cb
    from keras_regnet.architecture.models import RegNet

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
        multi_worker = in_multi_worker_mode(dist)
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
        from keras_regnet.data import tf_pipeline as input_pipeline

        source = input_pipeline.open_source(data, data_dir=data_dir, manual_dir=manual_dir)
        num_train, num_validation, class_names = source.num_train, source.num_validation, source.class_names
    else:
        from keras_regnet.data import numpy_pipeline

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
            enable_multi_worker_fit(net, dist)

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
