"""``train()``: a RegNet trained with the recipe in ``model.fit``, resumable and logged.

``train()`` is a sequence of steps, each a function of this module:
:func:`check_arguments`, :func:`make_distribution` (in ``distribute``),
:func:`load_data`, :func:`build_model`, ``compile_model`` (in
``optimizer``), :func:`make_callbacks`, :func:`fit` and
:func:`write_results`.  Backend differences are behind the
:class:`~keras_regnet.training.distribute.Distribution` the second step
returns, and, for the input pipeline, behind :func:`keras_regnet.data.prepare`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Optional, Sequence, Tuple, Union

import keras

from keras_regnet.architecture.config import AnyNetConfig, RegNetConfig, check_int
from keras_regnet.architecture.model_info import TRAINED_WEIGHTS
from keras_regnet.architecture.models import RegNet
from keras_regnet.architecture.zoo import function_name, lookup
from keras_regnet.atomic import write_text
from keras_regnet.data import TrainingData, eval_transform_name, prepare
from keras_regnet.training import callbacks as cb
from keras_regnet.training.distribute import Distribution, forget_restored_epoch, make_distribution
from keras_regnet.training.finetune import (
    Phase,
    finetuning_recipe,
    pretrained_classifier,
    set_phase_trainable,
    training_phases,
    uses_precise_bn,
)
from keras_regnet.training.optimizer import compile_model
from keras_regnet.training.precise_bn import PreciseBatchNorm, precise_batches
from keras_regnet.training.recipe import Recipe

# float64 is for numerical verification (the parity tests against pycls run in it).
PRECISIONS = (None, "float32", "mixed_float16", "mixed_bfloat16", "float64")


def check_output_dir(output_dir: str) -> str:
    """Create ``output_dir`` and prove it is writable, before any work starts."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"output_dir={output_dir!r} is not writable: {e.strerror or e}.") from None
    return output_dir


@dataclasses.dataclass(frozen=True)
class Run:
    """The resolved arguments of one ``train()`` call."""

    name: str  # the paper's name, or "custom" for a RegNetConfig or AnyNetConfig
    config: Union[RegNetConfig, AnyNetConfig]
    recipe: Recipe
    small_images: bool
    output_dir: str
    seed: Optional[int] = None
    weights: Optional[str] = None  # the initial weights argument
    phases: Tuple[Phase, ...] = (Phase("all", 0, 0),)
    freeze_batch_norm: bool = False


@dataclasses.dataclass
class FitSettings:
    """How ``fit`` runs: the ``train()`` arguments that are not about the model or the data."""

    jit_compile: object = "auto"
    steps_per_execution: int = 1
    backup_every_steps: Optional[int] = None
    verbose: int = 1
    extra_callbacks: Sequence[keras.callbacks.Callback] = ()
    time_budget: Optional[cb.TimeBudget] = None


def train(
    model: Union[str, RegNetConfig, AnyNetConfig] = "RegNetX-200MF",
    data="embedded",
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
    *,
    validation_data=None,
    time_budget_s: Optional[float] = None,
    seed: Optional[int] = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    freeze_epochs: int = 0,
    freeze_batch_norm: bool = False,
) -> dict:
    """Train a RegNet with the recipe in ``model.fit``; resumable and logged.

    Args:
        model: a published model name, a :class:`RegNetConfig` or an
            :class:`~keras_regnet.AnyNetConfig`.
        data: what to train on (see :func:`keras_regnet.data.prepare`):

            - a name: ``"embedded"`` (offline CIFAR-10 subset, 4,000 training
              and 1,000 validation images), a CIFAR-10 JPEG ``.npz``, an
              image directory (one folder per class), or a TensorFlow
              Datasets name (TensorFlow backend only);
            - an ``(images, labels)`` pair of numpy arrays (uint8 NHWC RGB,
              integer labels);
            - a ready-batched ``tf.data.Dataset`` or ``keras.utils.PyDataset``
              of ``(images, one-hot labels)`` (float RGB in [0, 255]).

            Names and arrays are shuffled and go through the recipe's
            transforms; ready batches are used as given (the recipe's
            mixup, cutmix and randaugment are then refused).
        output_dir: checkpoints (``best.keras``, ``last.keras``), ``log.csv``,
            ``curves.png``, ``tensorboard/`` (TensorFlow), ``backup/``,
            ``results.json``.
        recipe: hyper-parameters; default pycls's for the model.
        small_images: stride-1 stem and CIFAR-style augmentation; default:
            ``recipe.image_size <= 64``.
        weights: initial weights: ``"imagenet"`` (``"imagenet:SOURCE"``) or
            a weights file (see :func:`keras_regnet.RegNet`).  The backbone
            is loaded from them; the classifier too when the data's classes
            are the weights' classes (ImageNet's WordNet ids in order, or
            the same count for a file whose class names are unknown), else
            a new one is made for the data's classes (results.json's
            ``head`` says which).  With ``recipe=None`` the recipe is then
            the fine-tuning one: a tenth of the from-scratch learning rate
            and one warm-up epoch (:func:`~keras_regnet.training.finetune.finetuning_recipe`).
        data_dir, manual_dir: TensorFlow Datasets folders.
        mixed_precision: the dtype policy: ``None``/``"float32"``,
            ``"mixed_float16"``, ``"mixed_bfloat16"``, or ``"float64"`` (slow;
            for numerical checks).
        jit_compile, steps_per_execution: passed to ``model.compile``.
        strategy: on TensorFlow a ``tf.distribute`` strategy name (see
            :func:`~keras_regnet.training.distribute.make_strategy`); on JAX
            ``auto``/``none``/``data_parallel``.
        backup_every_steps: also back up mid-epoch every N steps (default:
            at epoch ends).  Keras restores the epoch, not the step: a run
            resumed from a mid-epoch backup keeps those updates and runs that
            epoch again in full.
        verbose: ``model.fit``'s verbosity.
        validation_data: an ``(images, labels)`` pair or a ready-batched
            dataset; replaces the validation split of a named source.
        time_budget_s: stop after the epoch when the next one would end more
            than this many seconds after the call started (at least one
            epoch runs), keeping the backup: calling ``train`` again the same
            way continues.  ``results["complete"]`` says whether the run
            has all its epochs.
        seed: fixes the initial weights, the shuffling and the augmentation
            (:func:`keras.utils.set_random_seed` and the input pipeline's
            seed), so two runs with the same seed see the same batches from
            the same start.  ``None``: a fresh random run.
        callbacks: more Keras callbacks for ``fit``; they run after the
            package's own (precise BN, backup, log, checkpoints) and before
            the time budget.
        freeze_epochs: fine-tuning: train only the classifier for this many
            first epochs (the backbone frozen, its BatchNorm in inference
            mode, no precise BN), then everything with a new optimizer that
            continues the schedule.  Needs ``weights``.
        freeze_batch_norm: fine-tuning: keep every BatchNorm layer in
            inference mode with the weights' statistics (and scale and
            offset) throughout; precise BN then does not run.  Needs
            ``weights``.

    Running the same call again after an interruption (even ``kill -9``) or a
    time-budget stop resumes from the last backup
    (``keras.callbacks.BackupAndRestore``), in the phase it was in.

    Returns:
        The results dict also written to ``output_dir/results.json``:
        ``complete`` and ``epochs_done`` (of ``recipe.epochs``), this call's
        epochs, wall time and images/s, and the last epoch's metrics.

    Raises:
        ValueError: bad arguments, found before any training starts.
        keras_regnet.training.TrainingDiverged: the loss became NaN/inf.
    """
    start = time.monotonic()
    run = check_arguments(
        model, output_dir, recipe, small_images, mixed_precision, time_budget_s, seed, weights, freeze_epochs, freeze_batch_norm
    )
    distribution = make_distribution(strategy)
    distribution.check_batch_size(run.recipe.batch_size)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    budget = cb.TimeBudget(time_budget_s, start=start, run_epochs=run.recipe.epochs) if time_budget_s is not None else None
    settings = FitSettings(jit_compile, steps_per_execution, backup_every_steps, verbose, callbacks, budget)
    with dtype_policy(mixed_precision):
        dataset = load_data(data, validation_data, run, distribution, data_dir=data_dir, manual_dir=manual_dir)
        with distribution.scope():
            net, head = build_model(run, dataset, weights)
        if head and verbose:
            print(f"weights={weights}: {head}")
        history, wall, last_callbacks = fit_phases(net, run, dataset, distribution, settings)
    check_finite(last_callbacks)
    return write_results(run, dataset, distribution, mixed_precision, last_callbacks, history, wall, head)


def check_arguments(
    model, output_dir, recipe, small_images, mixed_precision, time_budget_s, seed=None, weights=None, freeze_epochs=0,
    freeze_batch_norm=False,
) -> Run:
    """Everything that can be wrong with the arguments, checked before any work starts."""
    if isinstance(model, (RegNetConfig, AnyNetConfig)):
        config, name = model, "custom"
        recipe = recipe or Recipe()
    else:
        published = lookup(model)
        config, name = published.config, published.name
        if recipe is None:
            recipe = Recipe.for_model(name)
            recipe = finetuning_recipe(recipe) if weights is not None else recipe
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {PRECISIONS}; got mixed_precision={mixed_precision!r}.")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"time_budget_s must be None or a positive number of seconds; got {time_budget_s!r}.")
    if seed is not None:
        check_int("seed", seed, minimum=0)
    if weights is None and (freeze_epochs or freeze_batch_norm):
        raise ValueError("freeze_epochs and freeze_batch_norm fine-tune pretrained weights: give weights= (imagenet or a file).")
    phases = tuple(training_phases(recipe.epochs, freeze_epochs))
    check_output_dir(output_dir)
    small = recipe.image_size <= 64 if small_images is None else small_images
    if small:
        config = dataclasses.replace(config, stem_stride=1)
    return Run(
        name=name, config=config, recipe=recipe, small_images=small, output_dir=output_dir, seed=seed,
        weights=None if weights is None else str(weights), phases=phases, freeze_batch_norm=bool(freeze_batch_norm),
    )


@contextlib.contextmanager
def dtype_policy(mixed_precision: Optional[str]):
    """Keras's global dtype policy set to ``mixed_precision`` inside, float32 again after."""
    keras.mixed_precision.set_global_policy(mixed_precision or "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def load_data(data, validation_data, run: Run, distribution: Distribution, data_dir=None, manual_dir=None) -> TrainingData:
    """Batches of ``data`` with the recipe's transforms, for the current backend (:func:`keras_regnet.data.prepare`)."""
    return prepare(
        data,
        run.recipe,
        small_images=run.small_images,
        validation_data=validation_data,
        seed=run.seed if run.seed is not None else distribution.shuffle_seed,
        data_dir=data_dir,
        manual_dir=manual_dir,
    )


def build_model(run: Run, dataset: TrainingData, weights=None) -> Tuple[keras.Model, Optional[str]]:
    """The RegNet of ``run`` with a softmax classifier over the dataset's classes (call inside the distribution's scope).

    With ``weights``, the backbone is theirs and the head theirs or new
    (:func:`~keras_regnet.training.finetune.pretrained_classifier`); the
    second value says which (``None`` without weights).  The model's
    :class:`~keras_regnet.architecture.model_info.ModelInfo` says what the
    checkpoints are: the dataset's class names, the training size, the eval
    transform the run validates with, and that the weights are trained.
    """
    size, name = run.recipe.image_size, function_name(run.name).lower()
    if weights is None:
        net, head = RegNet(run.config, input_shape=(size, size, 3), classes=len(dataset.class_names), name=name), None
    else:
        net, choice = pretrained_classifier(run.config, weights, dataset.class_names, size, name)
        head = choice.message
    net.model_info = dataclasses.replace(
        net.model_info,
        weights=TRAINED_WEIGHTS,
        dataset=dataset.description,
        class_names=tuple(str(c) for c in dataset.class_names),
        image_size=size,
        eval_transform=eval_transform_name(run.small_images),
    )
    return net, head


def fit_phases(net, run: Run, dataset: TrainingData, distribution: Distribution, settings: FitSettings):
    """``fit`` each phase of ``run`` (one, or the head-only phase and then all); ``(history, wall seconds, callbacks)``.

    Each phase compiles a new optimizer that starts the schedule at the
    phase's first epoch, and backs up to its own folder: a finished phase's
    backup is kept until the run completes, so a resumed run restores the
    weights it ended with and goes on in the phase it was in.
    """
    histories, wall, callbacks = [], 0.0, []
    net = distribution.prepare_model(net)
    for phase in run.phases:
        set_phase_trainable(net, phase, run.freeze_batch_norm)
        with distribution.scope():
            compile_model(net, run.recipe, dataset.steps_per_epoch, jit_compile=settings.jit_compile,
                          steps_per_execution=settings.steps_per_execution)
            net.optimizer.iterations.assign(phase.start * dataset.steps_per_epoch)
        callbacks = make_callbacks(run, dataset, distribution, phase, settings)
        forget_restored_epoch(net)
        with distribution.scope():  # JAX: keras.distribution shards the batches only while it is set
            history, seconds = fit(net, dataset, phase, callbacks, settings.verbose)
        histories.append(history)
        wall += seconds
        if net.stop_training:
            break
    else:
        if len(run.phases) > 1:
            shutil.rmtree(os.path.join(run.output_dir, "backup"), ignore_errors=True)
    return merged_history(histories), wall, callbacks


def merged_history(histories) -> keras.callbacks.History:
    """One ``History`` of consecutive ``fit`` calls."""
    merged = keras.callbacks.History()
    merged.epoch = [e for h in histories for e in h.epoch]
    keys = {k for h in histories for k in h.history}
    merged.history = {k: [v for h in histories for v in h.history.get(k, [])] for k in keys}
    return merged


def make_callbacks(run: Run, dataset: TrainingData, distribution: Distribution, phase: Phase, settings: FitSettings) -> list:
    """Precise BN first (what is saved has its statistics), then backup, NaN stop, CSV log, checkpoints,
    curves, TensorBoard where it can be written, the caller's, time budget last."""
    output_dir = run.output_dir
    csv_path = os.path.join(output_dir, "log.csv")
    backup_root = os.path.join(output_dir, "backup")
    resuming = os.path.isdir(backup_root) or phase.start > 0  # deleted when a run completes
    last_phase = phase == run.phases[-1]
    backup_dir = backup_root if len(run.phases) == 1 else os.path.join(backup_root, phase.name)
    backup = cb.BackupAndRestore(
        backup_dir, save_freq=settings.backup_every_steps or "epoch", double_checkpoint=True, delete_checkpoint=last_phase
    )
    callbacks = [
        backup,
        cb.StopOnNaN(),
        keras.callbacks.CSVLogger(csv_path, append=True),
        cb.AtomicCheckpoints(
            output_dir, log_csv=csv_path if resuming else None, validation=(dataset.num_validation, dataset.description)
        ),
        cb.TrainingCurves(csv_path, os.path.join(output_dir, "curves.png")),
    ]
    if uses_precise_bn(run.recipe, phase, run.freeze_batch_norm):
        batches = precise_batches(run.recipe.precise_bn_images, run.recipe.batch_size, dataset.steps_per_epoch)
        callbacks.insert(0, PreciseBatchNorm(dataset.train, batches))
    if distribution.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard")))
    callbacks += list(settings.extra_callbacks)
    if settings.time_budget is not None:  # last: stops after everything above has written its files
        settings.time_budget.backup = backup
        callbacks.append(settings.time_budget)
    return callbacks


def fit(model: keras.Model, dataset: TrainingData, phase: Phase, callbacks: list, verbose: int):
    """``model.fit`` over the epochs of ``phase``; ``(history, wall seconds)``."""
    start = time.perf_counter()
    history = model.fit(
        dataset.train,
        validation_data=dataset.validation,
        initial_epoch=phase.start,
        epochs=phase.end,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the input pipelines shuffle, seeded where it matters (Distribution.shuffle_seed)
    )
    return history, time.perf_counter() - start


def find_callback(callbacks: list, kind):
    """The first callback of type ``kind`` in ``callbacks``, or ``None``."""
    return next((c for c in callbacks if isinstance(c, kind)), None)


def check_finite(callbacks: list) -> None:
    """Raise :class:`TrainingDiverged` when the NaN stop ended training."""
    nan_stop = find_callback(callbacks, cb.StopOnNaN)
    if nan_stop is not None and nan_stop.message:
        raise cb.TrainingDiverged(nan_stop.message)


def write_results(run, dataset, distribution, mixed_precision, callbacks, history, wall, head=None) -> dict:
    """The results dict, also written atomically to ``results.json``."""
    budget = find_callback(callbacks, cb.TimeBudget)
    recipe = run.recipe
    epochs_run = len(history.epoch)
    # No epoch this call: a backup already said every epoch was done.
    epochs_done = history.epoch[-1] + 1 if epochs_run else recipe.epochs
    results = {
        "model": run.name,
        "config": dataclasses.asdict(run.config),
        "data": dataset.description,
        "backend": keras.backend.backend(),
        "num_train": dataset.num_train,
        "num_validation": dataset.num_validation,
        "recipe": dataclasses.asdict(recipe),
        "small_images": run.small_images,
        "mixed_precision": mixed_precision,
        "seed": run.seed,
        "initial_weights": run.weights,
        "head": head,
        "freeze_epochs": run.phases[0].end if run.phases[0].name == "head" else 0,
        "freeze_batch_norm": run.freeze_batch_norm,
        "replicas": distribution.replicas,
        "complete": epochs_done >= recipe.epochs,
        "epochs_done": epochs_done,
        "time_budget_s": budget.budget_s if budget else None,
        "stopped_for_time_budget": bool(budget and budget.stopped),
        "epochs_run_this_call": epochs_run,
        "wall_s_this_call": wall,
        "train_images_per_s": epochs_run * dataset.steps_per_epoch * recipe.batch_size / wall if epochs_run else None,
        "final": {k: float(v[-1]) for k, v in history.history.items()} if epochs_run else None,
    }
    write_text(os.path.join(run.output_dir, "results.json"), json.dumps(results, indent=2))
    return results
