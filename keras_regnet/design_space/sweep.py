"""Sweeps: train networks sampled from a design space, in parallel on Dask, resumably.

A sweep is the paper's experiment: draw ``n`` networks of a space within a
complexity band (:func:`~keras_regnet.design_space.spaces.sample`), train
each briefly with the recipe (:func:`keras_regnet.training.train`), and
collect config, complexity, per-epoch errors and wall time in one JSON file.

Why Dask (``dask.distributed``): it runs on one machine with no set-up
(a ``LocalCluster`` of worker processes) and on a cluster unchanged (give
the scheduler's address); it is pure Python and small to install, and its
futures are all a sweep needs.  Ray would also do, at a far larger install.

Resuming: the results file is rewritten atomically after every finished
trial and is the one record of what is done.  Running the same sweep again
skips finished trials; a trial cut off mid-run is trained again from its
last epoch backup (``train``'s own resume) and recorded once, when it
finishes.  Nothing is read back with pickle: results are JSON, configs are
rebuilt field by field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import socket
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from keras_regnet.architecture.complexity import complexity
from keras_regnet.architecture.config import AnyNetConfig, RegNetConfig, check_int
from keras_regnet.atomic import write_text
from keras_regnet.design_space.spaces import SPACES, sample

RESULTS_FORMAT = "keras_regnet.sweep"
RESULTS_VERSION = 1
CONFIG_TYPES = {"AnyNetConfig": AnyNetConfig, "RegNetConfig": RegNetConfig}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """What a sweep samples and how each network is trained.

    Args:
        space: a design space (``SPACES``).
        n: networks to sample and train.
        seed: sampling seed; trial ``i`` also trains with seed ``seed * 100003 + i``.
        flops_range, params_range, acts_range: complexity bands ``(low, high)``
            at ``resolution`` (``None``: free).
        resolution: training image size; the complexity is counted there.
            ``<= 64`` trains with the CIFAR stem (stride 1) and augmentation.
        data: what :func:`keras_regnet.training.train` accepts by name
            (``"embedded"``, a CIFAR-10 JPEG ``.npz``, an image folder, a
            TensorFlow Datasets name).
        train_images, validation_images: use only this many images of each
            split, the classes in turn (:func:`balanced_order`; in-memory
            sources: ``embedded`` and ``.npz``).
        epochs, batch_size, base_lr, warmup_epochs, weight_decay,
        precise_bn_images: the recipe (:class:`keras_regnet.training.Recipe`);
            ``base_lr=None`` is pycls's 0.1 x batch / 128.
        num_classes: classes of ``data`` (for the head in the complexity).
    """

    space: str
    n: int
    seed: int = 0
    flops_range: Optional[Tuple[float, float]] = None
    params_range: Optional[Tuple[float, float]] = None
    acts_range: Optional[Tuple[float, float]] = None
    resolution: int = 32
    data: str = "embedded"
    train_images: Optional[int] = None
    validation_images: Optional[int] = None
    epochs: int = 5
    batch_size: int = 128
    base_lr: Optional[float] = None
    warmup_epochs: int = 0
    weight_decay: float = 5e-5
    precise_bn_images: int = 0
    num_classes: int = 10

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}; got space={self.space!r}.")
        check_int("n", self.n)
        check_int("seed", self.seed, minimum=0)
        check_int("resolution", self.resolution, minimum=32)
        check_int("num_classes", self.num_classes, minimum=2)
        for name in ("train_images", "validation_images"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"data must be a data set name or path (see keras_regnet.training.train); got data={self.data!r}.")
        for name in ("flops_range", "params_range", "acts_range"):
            band = getattr(self, name)
            if band is not None:
                object.__setattr__(self, name, tuple(band))
        # Checked here, not by building the Recipe: that would import Keras on the client.
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        check_int("precise_bn_images", self.precise_bn_images, minimum=0)
        for name, value, low in (("base_lr", self.base_lr, 0.0), ("weight_decay", self.weight_decay, None)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if (value is not None or name != "base_lr") and not (ok and (value > low if low is not None else value >= 0)):
                allowed = "None or a number > 0" if name == "base_lr" else "a number >= 0"
                raise ValueError(f"{name} must be {allowed}; got {name}={value!r}.")

    @property
    def small_images(self) -> bool:
        return self.resolution <= 64

    def recipe(self):
        """The :class:`keras_regnet.training.Recipe` every trial trains with."""
        from keras_regnet.training.recipe import Recipe

        return Recipe(
            epochs=self.epochs, batch_size=self.batch_size, base_lr=self.base_lr, warmup_epochs=self.warmup_epochs,
            weight_decay=self.weight_decay, precise_bn_images=self.precise_bn_images, image_size=self.resolution,
        )

    def to_record(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_record(cls, record: dict) -> "SweepSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(record) - fields
        if unknown:
            raise ValueError(f"sweep spec has unknown fields {sorted(unknown)}.")
        return cls(**record)


@dataclasses.dataclass(frozen=True)
class Trial:
    """One network of a sweep: its index, config and training seed."""

    id: int
    config: Union[AnyNetConfig, RegNetConfig]
    seed: int


def plan(spec: SweepSpec) -> List[Trial]:
    """The sweep's trials: ``spec.n`` distinct networks sampled in the bands, in a reproducible order."""
    configs = sample(
        spec.space, spec.n, spec.seed, spec.flops_range, spec.params_range, spec.acts_range, spec.resolution,
        num_classes=spec.num_classes, stem_stride=1 if spec.small_images else 2,
    )
    return [Trial(i, cfg, spec.seed * 100003 + i) for i, cfg in enumerate(configs)]


# ------------------------------------------------------------------ records


def config_record(config: Union[AnyNetConfig, RegNetConfig]) -> dict:
    """A JSON-ready record of a config: its type and fields."""
    record = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    return {"type": type(config).__name__, **record}


def config_from_record(record: dict) -> Union[AnyNetConfig, RegNetConfig]:
    """The config a :func:`config_record` describes, rebuilt (and checked) field by field."""
    if not isinstance(record, dict) or record.get("type") not in CONFIG_TYPES:
        raise ValueError(f"a config record must be a dict with type in {sorted(CONFIG_TYPES)}; got {record!r:.200}.")
    cls = CONFIG_TYPES[record["type"]]
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in record.items() if k != "type"}
    if set(values) - fields:
        raise ValueError(f"{record['type']} record has unknown fields {sorted(set(values) - fields)}.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def empty_results(spec: SweepSpec) -> dict:
    return {"format": RESULTS_FORMAT, "version": RESULTS_VERSION, "spec": spec.to_record(), "trials": []}


def load_results(path: str) -> dict:
    """A sweep results file, read as JSON and checked (format, version, spec, one record per trial id)."""
    from keras_regnet.errors import InvalidFileError, reading

    with reading(path):
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        raise InvalidFileError(path, f"is not a keras_regnet sweep results file (format {RESULTS_FORMAT!r}).")
    if results.get("version") != RESULTS_VERSION:
        raise InvalidFileError(path, f"has version {results.get('version')!r}; this keras_regnet reads {RESULTS_VERSION}.")
    try:
        spec = SweepSpec.from_record(results["spec"])
        ids = [check_trial_record(t, spec.n) for t in results["trials"]]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InvalidFileError(path, f"has a malformed spec or trial: {e}") from None
    if len(ids) != len(set(ids)):
        raise InvalidFileError(path, "records a trial more than once.")
    return results


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_trial_record(trial: dict, n: int) -> int:
    """Check one trial record of a results file (types and ranges of every field the package reads); its id."""
    if not isinstance(trial, dict):
        raise ValueError(f"a trial record must be an object; got {type(trial).__name__}")
    trial_id = trial["id"]
    if isinstance(trial_id, bool) or not isinstance(trial_id, int) or not 0 <= trial_id < n:
        raise ValueError(f"trial id must be an integer in [0, {n}); got {trial_id!r}")
    config_from_record(trial["config"])
    if trial["error"] is not None and not (_is_number(trial["error"]) and 0 <= trial["error"] <= 100):
        raise ValueError(f"trial {trial_id}: error must be null or a number in [0, 100]; got {trial['error']!r}")
    errors = trial["epoch_errors"]
    if not isinstance(errors, list) or not all(e is None or _is_number(e) for e in errors):
        raise ValueError(f"trial {trial_id}: epoch_errors must be a list of numbers")
    if not (isinstance(trial["complexity"], dict) and all(_is_number(trial["complexity"][k]) for k in ("flops", "params", "acts"))):
        raise ValueError(f"trial {trial_id}: complexity must hold numbers flops, params and acts")
    if not _is_number(trial["wall_s"]) or trial["wall_s"] < 0:
        raise ValueError(f"trial {trial_id}: wall_s must be a number >= 0; got {trial['wall_s']!r}")
    return trial_id


def trials_dir(results_path: str) -> str:
    """Where the trials' training runs (checkpoints, logs) live: beside the results file."""
    return os.path.splitext(results_path)[0] + "_trials"


# ------------------------------------------------------------------ one trial (runs on a worker)


@dataclasses.dataclass(frozen=True)
class TrialTask:
    """What a worker needs for one trial: plain data only, so it travels to any Dask worker."""

    trial_id: int
    config: dict
    seed: int
    spec: dict
    output_dir: str


def run_trial(task: TrialTask) -> dict:
    """Train one trial's network with the sweep's recipe; its result record.

    Resumes from the trial's own backup in ``task.output_dir`` if an earlier
    run was cut off; a trial whose training finished (``results.json``
    complete) is read back, not trained again.  A network whose loss becomes
    NaN is recorded with ``status="diverged"`` and ``error=None`` (it is a
    result about that network, and must not stop the sweep).  Imports Keras
    here, on the worker.
    """
    import keras

    from keras_regnet.training.callbacks import TrainingDiverged

    spec, config = SweepSpec.from_record(task.spec), config_from_record(task.config)
    status = "complete" if _finished(task.output_dir) else None
    if status is None:
        _forget_unresumable_log(task.output_dir)
        start = time.monotonic()
        try:
            _train_trial(task, spec, config)
            status = "complete"
        except TrainingDiverged:
            status = "diverged"
        finally:
            add_wall_time(task.output_dir, time.monotonic() - start)
            keras.backend.clear_session()
    errors, top5 = logged_errors(task.output_dir)
    return {
        "id": task.trial_id,
        "config": task.config,
        "seed": task.seed,
        "status": status,
        "complexity": complexity(config, spec.resolution, spec.num_classes),
        "epoch_errors": errors,
        "epoch_top5_errors": top5,
        "error": errors[-1] if errors and status == "complete" else None,
        "wall_s": round(wall_time(task.output_dir), 3),
        "backend": keras.backend.backend(),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def _train_trial(task: TrialTask, spec: SweepSpec, config) -> dict:
    from keras_regnet.training.loop import train

    train_data, validation_data = trial_data(spec)
    return train(
        config, data=train_data, validation_data=validation_data, output_dir=task.output_dir, recipe=spec.recipe(),
        small_images=spec.small_images, seed=task.seed, verbose=0,
    )


def _finished(output_dir: str) -> bool:
    path = os.path.join(output_dir, "results.json")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f).get("complete") is True
        except (ValueError, AttributeError):
            return False


def _forget_unresumable_log(output_dir: str) -> None:
    """Without a backup, training starts again at epoch 0: drop the log of an earlier start so it is not appended to."""
    if not os.path.isdir(os.path.join(output_dir, "backup")):
        for name in ("log.csv", "results.json"):
            if os.path.isfile(os.path.join(output_dir, name)):
                os.remove(os.path.join(output_dir, name))


def logged_errors(output_dir: str) -> Tuple[List[Optional[float]], List[Optional[float]]]:
    """Top-1 and top-5 validation errors (%) per epoch from a run's ``log.csv``, the last row of each epoch."""
    from keras_regnet.training.callbacks import log_value, read_log

    by_epoch = {}
    for row in read_log(os.path.join(output_dir, "log.csv")):
        epoch = log_value(row, "epoch")
        if epoch is not None:
            by_epoch[int(epoch)] = row
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    return [_error(log_value(r, "val_accuracy")) for r in rows], [_error(log_value(r, "val_top5_accuracy")) for r in rows]


def _error(accuracy: Optional[float]) -> Optional[float]:
    return None if accuracy is None or math.isnan(accuracy) else round(100.0 * (1.0 - accuracy), 4)


def wall_time(output_dir: str) -> float:
    """The trial's training time so far, kept in ``wall_s.txt`` (0 before its first run ends)."""
    path = os.path.join(output_dir, "wall_s.txt")
    if not os.path.isfile(path):
        return 0.0
    with open(path, encoding="utf-8") as f:
        try:
            return float(f.read())
        except ValueError:
            return 0.0


def add_wall_time(output_dir: str, seconds: float) -> float:
    """Add ``seconds`` to the trial's training time in ``wall_s.txt``; the total.

    Each run of the trial adds its time when it ends, also when it fails; a
    run killed outright (SIGKILL) adds nothing.
    """
    total = wall_time(output_dir) + seconds
    os.makedirs(output_dir, exist_ok=True)
    write_text(os.path.join(output_dir, "wall_s.txt"), f"{total:.3f}")
    return round(total, 3)


_DATA_CACHE: Dict[tuple, tuple] = {}


def balanced_order(labels, seed: int = 0):
    """Indices of ``labels`` in a seeded order that takes the classes in turn.

    Any prefix holds every class as evenly as the labels allow, so a subset
    ``[:n]`` has all the classes even where a source is sorted by class (the
    embedded subset is), and the same subset on every worker.
    """
    labels = np.asarray(labels)
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    rank = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        members = shuffled[labels[shuffled] == c]
        rank[members] = np.arange(len(members))
    return shuffled[np.lexsort((labels[shuffled], rank[shuffled]))]


def trial_data(spec: SweepSpec):
    """``(train, validation)`` for :func:`~keras_regnet.training.train`: arrays cut to the spec's sizes, or the name.

    Decoded once per worker process and kept for its later trials.
    """
    if spec.train_images is None and spec.validation_images is None:
        return spec.data, None
    key = (spec.data, spec.train_images, spec.validation_images)
    if key not in _DATA_CACHE:
        from keras_regnet.data import open_source

        source = open_source(spec.data)
        splits = []
        for examples, limit in ((source.train, spec.train_images), (source.validation, spec.validation_images)):
            if examples is None or examples.images is None:
                raise ValueError(
                    f"train_images/validation_images need an in-memory source with both splits ('embedded' or a "
                    f"CIFAR-10 .npz); data={spec.data!r} is not one."
                )
            order = balanced_order(examples.labels)[:limit]
            splits.append((examples.images[order], examples.labels[order]))
        _DATA_CACHE[key] = tuple(splits)
    return _DATA_CACHE[key]


# ------------------------------------------------------------------ the sweep (runs on the client)


def run_sweep(
    spec: SweepSpec,
    results_path: str,
    *,
    scheduler: Optional[str] = None,
    workers: Optional[int] = None,
    progress: bool = True,
    keep_checkpoints: bool = False,
) -> dict:
    """Run (or resume) a sweep; the results dict, also in ``results_path``.

    Args:
        spec: the sweep.
        results_path: the JSON results file.  If it exists it must hold the
            same sweep: its finished trials are kept and not run again.
        scheduler: address of a running Dask scheduler (``"tcp://host:8786"``)
            to run on a cluster; its workers need keras_regnet, the data at
            the same path, and (for resuming a trial mid-run) the trials
            folder on shared storage.  ``None``: a local cluster of ``workers``
            processes on 127.0.0.1, closed at the end.
        workers: local worker processes (default: the CPU count, at most the
            trials left); each uses CPU count / ``workers`` threads.
        progress: show a progress bar over trials.
        keep_checkpoints: keep each trial's ``.keras`` checkpoints and backup
            (default: only its log and results, to save disk).

    Returns:
        ``{"format", "version", "spec", "trials": [...]}``, trials ordered by
        id, each with ``config``, ``complexity``, ``epoch_errors`` (top-1
        error in % after each epoch), ``error`` (the last), ``wall_s``, ...

    Raises:
        ValueError: bad arguments, or ``results_path`` holds another sweep,
            found before any training starts.

    Dask starts local workers as new processes: a script that calls this
    needs the ``if __name__ == "__main__":`` guard.
    """
    return run_sweeps([(spec, results_path)], scheduler=scheduler, workers=workers, progress=progress,
                      keep_checkpoints=keep_checkpoints)[0]


def run_sweeps(sweeps, *, scheduler=None, workers=None, progress=True, keep_checkpoints=False) -> List[dict]:
    """Run (or resume) several sweeps together on one Dask cluster, their trials interleaved.

    ``sweeps`` is a sequence of ``(SweepSpec, results_path)``; the other
    arguments are :func:`run_sweep`'s.  Trials are submitted round-robin
    over the sweeps, so that a run cut short has covered every sweep alike.

    Returns:
        One results dict per sweep, in order.
    """
    if workers is not None:
        check_int("workers", workers)
        if scheduler is not None:
            raise ValueError("workers is for a local cluster; with scheduler= the cluster's workers run the trials.")
    sweeps = list(sweeps)
    paths = [os.path.abspath(os.fspath(path)) for _, path in sweeps]
    if len(set(paths)) != len(paths):
        raise ValueError("each sweep needs its own results_path.")
    states = [_SweepState(spec, path) for spec, path in sweeps]
    tasks = _interleave([s.tasks() for s in states])
    if tasks:
        with _client(scheduler, workers or min(os.cpu_count() or 1, len(tasks))) as client:
            _collect(client, tasks, states, progress, keep_checkpoints)
    for state in states:
        state.save()
    return [s.results for s in states]


class _SweepState:
    """One sweep's results, its trials left to run, and where they are written."""

    def __init__(self, spec: SweepSpec, path: str):
        # Absolute paths: workers on other machines (or in other folders) must find the same files.
        self.spec, self.path = spec, os.path.abspath(os.fspath(path))
        self.results = _results_to_continue(spec, self.path)
        self.trials = plan(spec)
        for trial in self.results["trials"]:
            if config_from_record(trial["config"]) != self.trials[trial["id"]].config:
                raise ValueError(f"{path}: trial {trial['id']} is not the network this sweep samples for it.")
        check_data(spec)

    def tasks(self) -> List[Tuple["_SweepState", TrialTask]]:
        done = {t["id"] for t in self.results["trials"]}
        spec = self.spec.to_record()
        if os.path.exists(self.spec.data):
            spec["data"] = os.path.abspath(self.spec.data)
        return [
            (self, TrialTask(t.id, config_record(t.config), t.seed, spec, self.trial_dir(t.id)))
            for t in self.trials if t.id not in done
        ]

    def trial_dir(self, trial_id: int) -> str:
        return os.path.join(trials_dir(self.path), f"{trial_id:05d}")

    def record(self, result: dict) -> None:
        """Add a finished trial (once) and rewrite the results file atomically."""
        if result["id"] not in {t["id"] for t in self.results["trials"]}:
            self.results["trials"] = sorted(self.results["trials"] + [result], key=lambda t: t["id"])
            self.save()

    def save(self) -> None:
        write_text(self.path, json.dumps(self.results, indent=1))


def _interleave(lists):
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out


def check_data(spec: SweepSpec) -> None:
    """Check, on the client before any work, what can be known of ``spec.data``: it exists, its classes, the limits.

    ``embedded`` and CIFAR-10 ``.npz`` files (whose ``classes`` array is read
    without pickle) and image folders (one subfolder per class) are checked;
    a TensorFlow Datasets name is checked by the first trial.
    """
    data, limits = spec.data, spec.train_images is not None or spec.validation_images is not None
    if data == "embedded":
        classes = 10
    elif data.endswith(".npz"):
        if not os.path.isfile(data):
            raise ValueError(f"data={data!r}: no such .npz file.")
        from keras_regnet.safe_io import load_npz

        classes = len(load_npz(data, ["classes"])["classes"])
    elif os.path.isdir(data):
        classes = sum(os.path.isdir(os.path.join(data, d)) for d in os.listdir(data))
    else:
        classes = None
    if limits and not (data == "embedded" or data.endswith(".npz")):
        raise ValueError(f"train_images/validation_images need 'embedded' or a CIFAR-10 .npz as data; got data={data!r}.")
    for name in ("train_images", "validation_images"):
        if getattr(spec, name) is not None and getattr(spec, name) < spec.num_classes:
            raise ValueError(f"{name}={getattr(spec, name)} is fewer than the {spec.num_classes} classes; give at least one image per class.")
    if classes is not None and classes != spec.num_classes:
        raise ValueError(f"num_classes={spec.num_classes} but data={data!r} has {classes} classes; give num_classes={classes}.")


def _results_to_continue(spec: SweepSpec, results_path: str) -> dict:
    if not isinstance(spec, SweepSpec):
        raise ValueError(f"spec must be a SweepSpec; got {type(spec).__name__}.")
    if not isinstance(results_path, (str, os.PathLike)) or not os.fspath(results_path).endswith(".json"):
        raise ValueError(f"results_path must be a path ending in .json; got results_path={results_path!r}.")
    if not os.path.exists(results_path):
        parent = os.path.dirname(os.path.abspath(results_path))
        os.makedirs(parent, exist_ok=True)
        return empty_results(spec)
    results = load_results(results_path)
    if results["spec"] != spec.to_record():
        raise ValueError(
            f"results_path={results_path!r} holds another sweep ({results['spec']}); give a new path to start "
            "this one, or the same settings to continue that one."
        )
    return results


class _client:
    """A Dask client: on the given scheduler, or on a local cluster of worker processes on 127.0.0.1."""

    def __init__(self, scheduler: Optional[str], workers: int):
        self.scheduler, self.workers, self.cluster = scheduler, workers, None

    def __enter__(self):
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            self.client = Client(self.scheduler)
            return self.client
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        # Keras/TensorFlow size their thread pools from the CPU count: split the CPUs between workers.
        env = {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": str(threads),
               "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.cluster = LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0", env=env,
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(self.workers)  # so the first trials spread over all workers
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _collect(client, tasks, states, progress, keep_checkpoints):
    from distributed import as_completed

    futures = client.map(run_trial, [task for _, task in tasks], pure=False)
    owner = {future.key: state for future, (state, _) in zip(futures, tasks)}
    total = sum(len(s.trials) for s in states)
    finished = lambda: sum(len(s.results["trials"]) for s in states)  # noqa: E731
    bar = _progress_bar(total, finished()) if progress else None
    for future in as_completed(futures):
        state, result = owner[future.key], future.result()
        state.record(result)
        if not keep_checkpoints:
            _drop_checkpoints(state.trial_dir(result["id"]))
        if bar is not None:
            errors = [t["error"] for s in states for t in s.results["trials"] if t["error"] is not None]
            bar.update(finished(), [("best_error", min(errors) if errors else math.nan)], finalize=False)
    if bar is not None:
        bar.update(finished(), finalize=True)


def _progress_bar(total: int, done: int):
    import keras

    bar = keras.utils.Progbar(total, unit_name="trial", stateful_metrics=["best_error"])
    bar.update(done, finalize=False)
    return bar


def _drop_checkpoints(trial_dir: str) -> None:
    for name in ("best.keras", "last.keras"):
        path = os.path.join(trial_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    for name in ("backup", "tensorboard"):
        shutil.rmtree(os.path.join(trial_dir, name), ignore_errors=True)


def completed(results: dict, ids: Optional[Sequence[int]] = None) -> List[dict]:
    """The trials of ``results`` that finished with an error value (optionally only ``ids``)."""
    return [t for t in results["trials"] if t["error"] is not None and (ids is None or t["id"] in ids)]
