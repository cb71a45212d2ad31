"""train(time_budget_s=...): a run stops cleanly after an epoch and the same call continues it."""

import csv
import json
import warnings

import keras
import numpy as np
import pytest

from keras_regnet import RegNetConfig
from keras_regnet.training import Recipe, TimeBudget, train
from keras_regnet.training.distribute import BackupAndRestore


class FakeClock:
    """A clock that moves only when told: each epoch "takes" ``epoch_s`` seconds."""

    def __init__(self, epoch_s):
        self.now = 0.0
        self.epoch_s = epoch_s

    def __call__(self):
        return self.now


class AdvanceClock(keras.callbacks.Callback):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_epoch_end(self, epoch, logs=None):
        self.clock.now += self.clock.epoch_s


def fit_with_budget(tmp_path, budget_s, epochs=6, epoch_s=10.0):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    clock = FakeClock(epoch_s)
    backup = BackupAndRestore(str(tmp_path / "backup"))
    budget = TimeBudget(budget_s, backup=backup, clock=clock)
    history = model.fit(np.zeros((8, 3), "float32"), np.zeros((8, 2), "float32"), epochs=epochs, verbose=0,
                        callbacks=[backup, AdvanceClock(clock), budget])
    return history, budget


def test_budget_stops_before_the_epoch_that_would_overrun_it(tmp_path):
    # Epochs of 10 s, 10% margin: after epoch 2 (20 s) the next would end at 31 s <= 35 s;
    # after epoch 3 (30 s) at 41 s > 35 s, so training stops there and keeps its backup.
    history, budget = fit_with_budget(tmp_path, budget_s=35)
    assert history.epoch == [0, 1, 2] and budget.stopped
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 3
    # A run whose every epoch fits is not stopped, and Keras deletes its backup at the end.
    history, budget = fit_with_budget(tmp_path / "b", budget_s=1000)
    assert history.epoch == list(range(6)) and not budget.stopped
    assert not (tmp_path / "b" / "backup").exists()
    # The last epoch is never cut, even when the budget is already spent.
    history, budget = fit_with_budget(tmp_path / "c", budget_s=5, epochs=1)
    assert history.epoch == [0] and not budget.stopped


def test_bad_budget_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"time_budget_s must be None or a positive number of seconds; got 0"):
        train(output_dir=str(tmp_path), recipe=Recipe(epochs=1, batch_size=64, image_size=32), time_budget_s=0)


def test_stopped_run_resumes_with_the_same_call(tmp_path):
    # A 4-block RegNet on the embedded CIFAR-10 subset keeps this quick on a CPU.
    config = RegNetConfig(depth=4, w0=24, wa=24.0, wm=2.5, group_width=8)
    recipe = Recipe(epochs=3, batch_size=64, image_size=32, warmup_epochs=1)
    # A budget already spent when the first epoch ends: exactly one epoch (at least one runs per call).
    first = train(config, output_dir=str(tmp_path), recipe=recipe, verbose=0, time_budget_s=0.01)
    assert (first["complete"], first["epochs_done"], first["epochs_run_this_call"]) == (False, 1, 1)
    assert first["stopped_for_time_budget"] and first["time_budget_s"] == 0.01
    assert json.loads((tmp_path / "results.json").read_text())["complete"] is False
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    for name in ("last.keras", "best.keras", "log.csv", "curves.png"):
        assert (tmp_path / name).is_file(), name

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = train(config, output_dir=str(tmp_path), recipe=recipe, verbose=0, time_budget_s=3600)
    # fit is told the pipeline shuffles (tf.data here), so Keras has nothing to ignore.
    assert not [w for w in caught if "shuffle" in str(w.message)]
    assert (second["complete"], second["epochs_done"], second["epochs_run_this_call"]) == (True, 3, 2)
    assert not second["stopped_for_time_budget"] and not (tmp_path / "backup").exists()
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # continued, not restarted
    assert second["final"]["val_accuracy"] == pytest.approx(float(rows[-1]["val_accuracy"]))


def test_a_resumed_run_keeps_the_best_checkpoint_of_earlier_calls(tmp_path):
    from keras_regnet.training.callbacks import AtomicCheckpoints

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 3), "float32"), np.full((8, 2), 5.0, "float32")  # val_loss far above 0.5
    (tmp_path / "log.csv").write_text("epoch,loss,val_loss\n0,0.6,0.5\n")
    for log_csv, kept in ((str(tmp_path / "log.csv"), True), (None, False)):
        (tmp_path / "best.keras").write_text("best of an earlier call")
        model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0,
                  callbacks=[AtomicCheckpoints(str(tmp_path), monitor="val_loss", mode="min", log_csv=log_csv)])
        assert ((tmp_path / "best.keras").read_bytes() == b"best of an earlier call") is kept
        assert (tmp_path / "last.keras").stat().st_size > 1000
