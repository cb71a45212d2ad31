"""Sweeps on Dask: 2 local workers on 127.0.0.1, resuming after a kill, records, bad input, hostile files.

The trials are tiny (the embedded CIFAR-10 subset cut to 64 training and 32
validation images, one epoch, networks of 2-4 MFLOPs), so these tests
are about the machinery: what is trained where, what is recorded, and
that a killed sweep continues with every trial recorded exactly once.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import require

from keras_regnet.architecture.complexity import complexity
from keras_regnet.design_space import sweep
from keras_regnet.design_space.sweep import SweepSpec, config_from_record, config_record, load_results, plan, run_sweeps
from keras_regnet.errors import InvalidFileError

require("distributed")

TINY = dict(flops_range=(2e6, 4e6), data="embedded", train_images=64, validation_images=32, epochs=1,
            batch_size=32, seed=3)


def _check_trial(trial, spec):
    config = config_from_record(trial["config"])
    assert trial["complexity"] == complexity(config, spec.resolution, spec.num_classes)
    low, high = spec.flops_range
    assert low <= trial["complexity"]["flops"] <= high
    assert len(trial["epoch_errors"]) == spec.epochs
    assert all(0.0 <= e <= 100.0 for e in trial["epoch_errors"])
    assert trial["error"] == trial["epoch_errors"][-1]
    assert trial["status"] == "complete"
    assert trial["wall_s"] > 0


def test_two_local_workers_train_every_trial_once(tmp_path):
    specs = [SweepSpec("AnyNetX_E", n=2, **TINY), SweepSpec("RegNetX", n=2, **TINY)]
    paths = [str(tmp_path / "e.json"), str(tmp_path / "r.json")]
    results = run_sweeps(list(zip(specs, paths)), workers=2, progress=False)
    workers = set()
    for spec, path, res in zip(specs, paths, results):
        assert load_results(path) == res
        assert [t["id"] for t in res["trials"]] == [0, 1]
        # The trials are the planned networks, trained with the planned seeds.
        assert [config_from_record(t["config"]) for t in res["trials"]] == [t.config for t in plan(spec)]
        assert [t["seed"] for t in res["trials"]] == [t.seed for t in plan(spec)]
        for trial in res["trials"]:
            _check_trial(trial, spec)
            workers.add(trial["worker"])
        # Only the log and results stay of a finished trial (checkpoints dropped).
        assert sorted(os.listdir(os.path.join(sweep.trials_dir(path), "00000"))) == [
            "curves.png", "log.csv", "results.json", "wall_s.txt"]
    assert len(workers) == 2, workers  # two worker processes shared the four trials
    # A finished sweep run again trains nothing and changes nothing.
    before = [open(p).read() for p in paths]
    again = run_sweeps(list(zip(specs, paths)), workers=2, progress=False)
    assert again == results and [open(p).read() for p in paths] == before


def _sweep_command(out, n):
    return [sys.executable, "-m", "keras_regnet.cli", "space", "sweep", "AnyNetX_C", "--n", str(n),
            "--flops", str(TINY["flops_range"][0]), str(TINY["flops_range"][1]), "--seed", str(TINY["seed"]),
            "--data", "embedded", "--train-images", "64", "--validation-images", "32", "--epochs", "2",
            "--batch-size", "32", "--workers", "1", "--out", str(out), "--no-progress"]


def test_a_killed_sweep_continues_and_records_each_trial_once(tmp_path):
    out, n = tmp_path / "sweep", 3
    path = out / "AnyNetX_C.json"
    proc = subprocess.Popen(_sweep_command(out, n), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        # Kill the whole process group (client, scheduler, worker) once one trial is recorded
        # and the next has started training.
        while time.monotonic() < deadline:
            done = load_results(str(path))["trials"] if path.exists() else []
            if done and (out / "AnyNetX_C_trials" / f"{done[-1]['id'] + 1:05d}" / "log.csv").exists():
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    first = load_results(str(path))
    assert 1 <= len(first["trials"]) < n
    subprocess.run(_sweep_command(out, n), check=True, timeout=900, capture_output=True)
    final = load_results(str(path))
    assert [t["id"] for t in final["trials"]] == list(range(n))
    # Trials finished before the kill are kept as they were, not trained again.
    kept = {t["id"]: t for t in final["trials"]}
    assert all(kept[t["id"]] == t for t in first["trials"])
    spec = SweepSpec.from_record(final["spec"])
    for trial in final["trials"]:
        _check_trial(trial, spec)


def test_another_sweep_in_the_same_file_is_refused_before_any_work(tmp_path):
    path = tmp_path / "s.json"
    spec = SweepSpec("AnyNetX_A", n=1, **TINY)
    path.write_text(json.dumps(sweep.empty_results(spec)))
    other = SweepSpec("AnyNetX_A", n=2, **TINY)
    with pytest.raises(ValueError, match="holds another sweep"):
        run_sweeps([(other, str(path))], workers=1)
    with pytest.raises(ValueError, match="its own results_path"):
        run_sweeps([(spec, str(path)), (other, str(path))], workers=1)
    with pytest.raises(ValueError, match="must be a path ending in .json"):
        sweep.run_sweep(spec, str(tmp_path / "s.txt"))
    assert not (tmp_path / "s_trials").exists() or not os.listdir(tmp_path / "s_trials")


@pytest.mark.parametrize("field, value, message", [
    ("space", "AnyNetX_Z", "space must be one of"),
    ("n", 0, "n must be a positive integer"),
    ("resolution", 16, r"resolution must be an integer >= 32"),
    ("epochs", 1.5, "epochs must be a positive integer"),
    ("base_lr", -0.1, "base_lr must be None or a number > 0"),
    ("train_images", 0, "train_images must be a positive integer"),
    ("data", "", "data must be a data set name or path"),
])
def test_bad_sweep_specs_name_the_field(field, value, message):
    kwargs = {**TINY, "space": "RegNetX", "n": 2}
    kwargs[field] = value
    with pytest.raises(ValueError, match=message):
        SweepSpec(**kwargs)


def test_an_empty_band_fails_before_any_worker_starts(tmp_path):
    spec = SweepSpec("AnyNetX_A", n=1, **{**TINY, "flops_range": (1.0, 2.0)})
    with pytest.raises(ValueError, match="No AnyNetX_A network has flops"):
        run_sweeps([(spec, str(tmp_path / "s.json"))], workers=1)


def test_config_records_round_trip_and_are_checked():
    for spec in (SweepSpec("AnyNetX_B", n=3, **TINY), SweepSpec("RegNetY", n=3, **TINY)):
        for trial in plan(spec):
            assert config_from_record(json.loads(json.dumps(config_record(trial.config)))) == trial.config
    record = config_record(plan(SweepSpec("AnyNetX_A", n=1, **TINY))[0].config)
    with pytest.raises(ValueError, match="type in"):
        config_from_record({**record, "type": "os.system"})
    with pytest.raises(ValueError, match="unknown fields"):
        config_from_record({**record, "__reduce__": "x"})
    with pytest.raises(ValueError, match="must be"):
        config_from_record({**record, "depths": [0, 1, 1, 1]})


def test_hostile_results_files_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "ran"
    spec = SweepSpec("AnyNetX_A", n=1, **TINY)
    good = sweep.empty_results(spec)
    record = config_record(plan(spec)[0].config)
    trial = {"id": 0, "config": record, "error": 50.0, "epoch_errors": [50.0],
             "complexity": {"flops": 1, "params": 1, "acts": 1}, "wall_s": 1.0}
    import pickle

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    hostile = {
        "pickle.json": pickle.dumps(Payload()),
        "not-json.json": b"\x00\xff not json",
        "other-format.json": json.dumps({**good, "format": "something"}).encode(),
        "future-version.json": json.dumps({**good, "version": 99}).encode(),
        "duplicate-trial.json": json.dumps({**good, "trials": [trial, trial]}).encode(),
        "code-in-config.json": json.dumps({**good, "trials": [{**trial, "config": {**record, "type": "eval"}}]}).encode(),
        "bad-spec.json": json.dumps({**good, "spec": {**good["spec"], "exec": "print(1)"}}).encode(),
        "id-out-of-range.json": json.dumps({**good, "trials": [{**trial, "id": 5}]}).encode(),
        "id-not-an-int.json": json.dumps({**good, "trials": [{**trial, "id": [0]}]}).encode(),
        "error-a-string.json": json.dumps({**good, "trials": [{**trial, "error": "50"}]}).encode(),
        "no-wall-time.json": json.dumps({**good, "trials": [{k: v for k, v in trial.items() if k != "wall_s"}]}).encode(),
        "flops-a-list.json": json.dumps({**good, "trials": [{**trial, "complexity": {"flops": [1], "params": 1, "acts": 1}}]}).encode(),
    }
    for name, data in hostile.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InvalidFileError):
            load_results(str(path))
        with pytest.raises((InvalidFileError, ValueError)):
            run_sweeps([(spec, str(path))], workers=1)
    assert not marker.exists()


def test_completed_drops_trials_without_an_error():
    results = {"trials": [{"id": 0, "error": 12.5}, {"id": 1, "error": None}, {"id": 2, "error": 40.0}]}
    assert [t["id"] for t in sweep.completed(results)] == [0, 2]
    assert [t["id"] for t in sweep.completed(results, ids=[2])] == [2]
    assert np.isclose(sum(t["error"] for t in sweep.completed(results)), 52.5)


def _no_cluster(monkeypatch):
    """Make starting a Dask cluster (or client) fail loudly: bad input must be refused before."""
    distributed = require("distributed")

    def refuse(*args, **kwargs):
        raise AssertionError("a Dask cluster was started")

    monkeypatch.setattr(distributed, "LocalCluster", refuse)
    monkeypatch.setattr(distributed, "Client", refuse)


def test_bad_data_is_refused_before_any_cluster_starts(tmp_path, monkeypatch):
    _no_cluster(monkeypatch)
    folder = tmp_path / "images"
    for name in ("cat", "dog", "eel"):
        (folder / name).mkdir(parents=True)
    cases = [
        ({"data": str(tmp_path / "missing.npz")}, "no such .npz file"),
        ({"data": str(folder), "train_images": None, "validation_images": None}, r"num_classes=10 but data=.* has 3 classes"),
        ({"data": str(folder), "num_classes": 3}, "train_images/validation_images need 'embedded' or a CIFAR-10 .npz"),
    ]
    for i, (change, message) in enumerate(cases):
        spec = SweepSpec("RegNetX", n=1, **{**TINY, **change})
        with pytest.raises(ValueError, match=message):
            run_sweeps([(spec, str(tmp_path / f"s{i}.json"))], workers=1)
    spec = SweepSpec("RegNetX", n=1, **{**TINY, "flops_range": (1.0, 2.0)})
    with pytest.raises(ValueError, match="No RegNet|network"):
        run_sweeps([(spec, str(tmp_path / "band.json"))], workers=1)
    with pytest.raises(ValueError, match="workers is for a local cluster"):
        run_sweeps([(SweepSpec("RegNetX", n=1, **TINY), str(tmp_path / "w.json"))], workers=2, scheduler="tcp://127.0.0.1:1")


def test_a_recorded_trial_that_is_not_the_planned_network_is_refused(tmp_path, monkeypatch):
    _no_cluster(monkeypatch)
    spec = SweepSpec("AnyNetX_A", n=2, **TINY)
    other = plan(SweepSpec("AnyNetX_A", n=2, **{**TINY, "seed": 4}))[0].config
    results = sweep.empty_results(spec)
    results["trials"] = [{"id": 0, "config": config_record(other), "error": 50.0, "epoch_errors": [50.0],
                          "complexity": complexity(other, 32, 10), "wall_s": 1.0}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError, match="trial 0 is not the network this sweep samples"):
        run_sweeps([(spec, str(path))], workers=1)


def _task(spec, trial, out):
    return sweep.TrialTask(trial.id, config_record(trial.config), trial.seed, spec.to_record(), str(out))


def test_a_trial_is_trained_once_and_read_back_after_it_finished(tmp_path):
    spec = SweepSpec("RegNetX", n=1, **{**TINY, "epochs": 2})
    task = _task(spec, plan(spec)[0], tmp_path / "trial")
    first = sweep.run_trial(task)
    _check_trial(first, spec)
    log = (tmp_path / "trial" / "log.csv").read_text()
    # Killed after training ended but before the client recorded it: running it again trains nothing.
    again = sweep.run_trial(task)
    assert (tmp_path / "trial" / "log.csv").read_text() == log
    assert {k: v for k, v in again.items() if k != "worker"} == {k: v for k, v in first.items() if k != "worker"}
    # A start without a backup (it was deleted at the end of training) begins a fresh log, not an appended one.
    (tmp_path / "trial" / "results.json").unlink()
    third = sweep.run_trial(task)
    assert len(third["epoch_errors"]) == spec.epochs
    assert third["wall_s"] > first["wall_s"]


def test_a_diverging_network_is_recorded_and_does_not_stop_the_sweep(tmp_path):
    spec = SweepSpec("RegNetX", n=1, **{**TINY, "base_lr": 1e30, "epochs": 2})
    record = sweep.run_trial(_task(spec, plan(spec)[0], tmp_path / "trial"))
    assert record["status"] == "diverged" and record["error"] is None
    assert sweep.completed({"trials": [record]}) == []


def test_the_progress_bar_counts_trials(tmp_path, capsys):
    spec = SweepSpec("RegNetX", n=1, **TINY)
    run_sweeps([(spec, str(tmp_path / "s.json"))], workers=1, progress=True)
    out = capsys.readouterr().out
    assert "1/1" in out and "best_error:" in out


def test_subsets_take_the_classes_in_turn():
    # The embedded subset is sorted by class: its first 64 images are all of class 0.
    labels = np.repeat(np.arange(10), 50)
    order = sweep.balanced_order(labels)
    assert sorted(order) == list(range(500))
    for n in (10, 64, 137, 500):
        counts = np.bincount(labels[order[:n]], minlength=10)
        assert counts.max() - counts.min() <= 1, (n, counts)
    assert list(order) == list(sweep.balanced_order(labels))  # the same subset on every worker
    assert list(order) != list(sweep.balanced_order(labels, seed=1))
