"""Training callbacks: backups at epoch ends, atomic checkpoints, curves as a picture, a clear stop on NaN."""

from __future__ import annotations

import csv
import math
import os

import keras

from keras_regnet.atomic import atomic_path
from keras_regnet.architecture.plotting import save_figure


def _atomic_save(model, path):
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` that also backs up at every epoch end.

    With an integer ``save_freq`` (mid-epoch backups) Keras 3.15 saves only
    every ``save_freq`` batches, so the last backup of an epoch still says
    "in epoch N" and a run killed just after epoch N ended repeats all of it.
    Backing up at the epoch end as well records "epoch N done".
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # "epoch" already saved in super()
            self._save_model()


class AtomicCheckpoints(keras.callbacks.Callback):
    """``last.keras`` after every epoch and ``best.keras`` on a new best ``monitor``.

    Each file is written to a temporary name and renamed into place, so a run
    killed mid-write never leaves a truncated checkpoint behind.
    """

    def __init__(self, directory, monitor="val_accuracy", mode="max"):
        super().__init__()
        self.directory = directory
        self.monitor = monitor
        self.sign = 1 if mode == "max" else -1
        self.best = -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        _atomic_save(self.model, os.path.join(self.directory, "last.keras"))
        value = logs.get(self.monitor)
        if value is not None and self.sign * value > self.best:
            self.best = self.sign * value
            _atomic_save(self.model, os.path.join(self.directory, "best.keras"))


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


class TrainingCurves(keras.callbacks.Callback):
    """Redraw loss and accuracy curves from the CSV log into a PNG after every epoch."""

    def __init__(self, csv_path, png_path):
        super().__init__()
        self.csv_path = csv_path
        self.png_path = png_path

    def on_epoch_end(self, epoch, logs=None):
        plot_training_curves(self.csv_path, self.png_path)


def plot_training_curves(csv_path, png_path):
    """Plot a Keras CSVLogger file (loss and accuracy, train vs validation) to PNG."""
    if not os.path.isfile(csv_path):
        return None
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), dpi=110)
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in rows[0]:
                ax.plot(epochs, [float(r[prefix + key]) for r in rows], style, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, png_path)
