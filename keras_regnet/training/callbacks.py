"""Training callbacks: atomic checkpoints, curves as a picture, a clear stop on NaN, a time budget.

(``BackupAndRestore``, backups at epoch ends, is a Keras workaround and lives
in :mod:`keras_regnet.training.distribute`; it is importable from here too.)
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from typing import Optional

import keras

from keras_regnet.atomic import atomic_path
from keras_regnet.architecture.model_info import ModelInfo
from keras_regnet.architecture.plotting import save_figure
from keras_regnet.training.distribute import BackupAndRestore

__all__ = ["AtomicCheckpoints", "BackupAndRestore", "StopOnNaN", "TimeBudget", "TrainingCurves", "TrainingDiverged"]


def _atomic_save(model, path):
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


class AtomicCheckpoints(keras.callbacks.Callback):
    """``last.keras`` after every epoch and ``best.keras`` on a new best ``monitor``.

    Each file is written to a temporary name and renamed into place, so a run
    killed mid-write never leaves a truncated checkpoint behind.  Give a
    resumed run ``log_csv`` (its ``CSVLogger`` file): it then starts from the
    best ``monitor`` value logged so far, so ``best.keras`` stays the best of
    the whole run, not of the last call.  Give ``validation`` (the number of
    validation images and what they are) to record each saved epoch's
    validation error in the model's
    :class:`~keras_regnet.architecture.model_info.ModelInfo`, which
    ``keras-regnet evaluate`` shows beside its own measurement.
    """

    def __init__(self, directory, monitor="val_accuracy", mode="max", log_csv: Optional[str] = None, validation=None):
        super().__init__()
        self.directory = directory
        self.validation = validation
        self.monitor = monitor
        self.sign = 1 if mode == "max" else -1
        self.log_csv = log_csv
        self.best = -math.inf

    def on_train_begin(self, logs=None):
        if self.log_csv and os.path.isfile(os.path.join(self.directory, "best.keras")):
            logged = [log_value(r, self.monitor) for r in read_log(self.log_csv)]
            self.best = max((self.sign * v for v in logged if v is not None and math.isfinite(v)), default=-math.inf)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.validation is not None and isinstance(getattr(self.model, "model_info", None), ModelInfo):
            self.model.model_info = with_validation(self.model.model_info, epoch, logs, *self.validation)
        _atomic_save(self.model, os.path.join(self.directory, "last.keras"))
        value = logs.get(self.monitor)
        if value is not None and self.sign * value > self.best:
            self.best = self.sign * value
            _atomic_save(self.model, os.path.join(self.directory, "best.keras"))


def with_validation(info: ModelInfo, epoch: int, logs: dict, num_images: Optional[int], data: str) -> ModelInfo:
    """``info`` with the validation errors of ``logs`` (Keras's ``val_`` metrics) at 0-based ``epoch``."""
    accuracy, top5 = logs.get("val_accuracy"), logs.get("val_top5_accuracy")
    if accuracy is None:
        return info
    validation = {
        "epoch": epoch + 1,
        "top1_err": 100.0 * (1.0 - float(accuracy)),
        "top5_err": None if top5 is None else 100.0 * (1.0 - float(top5)),
        "num_images": num_images,
        "data": data,
    }
    return dataclasses.replace(info, validation=validation)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class StopOnNaN(keras.callbacks.Callback):
    """Stop as soon as the loss is NaN/inf and remember why (``message``)."""

    def __init__(self):
        super().__init__()
        self.message = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.message = (
                f"Training stopped: the loss became {float(loss)} at epoch {self._epoch + 1}, "
                f"batch {batch + 1}. Lower the learning rate (or check the data); the last good "
                "checkpoint is kept."
            )
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch when the next one would end past ``budget_s`` seconds.

    The budget counts from ``start`` (a ``time.monotonic()`` value; default:
    the start of ``fit``), so work before ``fit`` (loading data, building)
    can count too.  The next epoch is expected to take as long as the
    slowest of the last three (the first, which includes compilation, only
    while there is no other), plus ``margin``.  At least one epoch runs per
    call, so repeated calls always make progress, and the last epoch of the
    run is never cut.  The check runs at epoch ends, after the callbacks
    listed before this one (put it last: backup, log and checkpoints are then
    written).  Keras restores the epoch, not the step, from a backup, so a
    mid-epoch stop would repeat that epoch's steps: the budget does not stop
    mid-epoch.

    When it stops training it keeps ``backup``'s files (a normal end of
    ``fit`` deletes them), so running the same training again resumes from
    there.  ``stopped`` says whether it stopped this call.  ``clock`` is the
    time source (``start`` is on its scale), replaceable in tests.
    ``run_epochs``: the run's epoch count when it trains in several ``fit``
    calls (fine-tuning phases), so that the budget also stops between them;
    default: this ``fit``'s ``epochs``.  One instance serves all the phases
    of a call (set ``backup`` to each phase's).
    """

    def __init__(self, budget_s: float, backup: Optional[keras.callbacks.BackupAndRestore] = None,
                 start: Optional[float] = None, margin: float = 0.1, clock=time.monotonic,
                 run_epochs: Optional[int] = None):
        super().__init__()
        if not budget_s > 0:
            raise ValueError(f"time_budget_s must be a positive number of seconds; got {budget_s!r}.")
        self.budget_s = float(budget_s)
        self.backup = backup
        self.start = start
        self.margin = margin
        self.clock = clock
        self.run_epochs = run_epochs
        self.stopped = False
        self.epoch_s = []
        self._last = None

    def on_train_begin(self, logs=None):
        self._last = self.clock()
        if self.start is None:
            self.start = self._last

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.epoch_s.append(now - self._last)
        self._last = now
        last = self.run_epochs if self.run_epochs is not None else self.params.get("epochs", math.inf)
        if self.model.stop_training or epoch + 1 >= last:
            return
        if now - self.start + (1 + self.margin) * self.next_epoch_s() > self.budget_s:
            self.stopped = True
            self.model.stop_training = True
            if self.backup is not None:
                self.backup.delete_checkpoint = False

    def next_epoch_s(self) -> float:
        """Expected length of the next epoch, from the epochs of this call."""
        steady = self.epoch_s[1:] or self.epoch_s
        return max(steady[-3:])


class TrainingCurves(keras.callbacks.Callback):
    """Redraw loss and accuracy curves from the CSV log into a PNG after every epoch."""

    def __init__(self, csv_path, png_path):
        super().__init__()
        self.csv_path = csv_path
        self.png_path = png_path

    def on_epoch_end(self, epoch, logs=None):
        plot_training_curves(self.csv_path, self.png_path)


def read_log(csv_path) -> list:
    """The rows of a Keras ``CSVLogger`` file as dicts of strings (``[]`` when there is none)."""
    if not os.path.isfile(csv_path):
        return []
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def log_value(row: dict, key: str) -> Optional[float]:
    """``row[key]`` as a float; ``None`` where it is missing or not a number (CSVLogger writes
    ``"NA"`` in the ``val_`` columns of a run without validation data)."""
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def plot_training_curves(csv_path, png_path):
    """Plot a Keras CSVLogger file (loss and accuracy, train vs validation) to PNG."""
    rows = read_log(csv_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), dpi=110)
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [log_value(r, prefix + key) for r in rows]
            if any(v is not None for v in values):
                ax.plot(epochs, [math.nan if v is None else v for v in values], style, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, png_path)
