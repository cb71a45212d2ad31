"""GPU training experiments for a lent H100/H200: throughput against timm, and a 100-epoch CIFAR-10 run.

Keras runs on JAX (``KERAS_BACKEND=jax``, forced here) and TensorFlow is never
imported: every process this script starts installs an import blocker for
``tensorflow`` first, and the data path is :mod:`keras_regnet.numpy_pipeline`
(the lent GPU machines have JAX, PyTorch, timm and torchvision, but no
TensorFlow and no Keras).

Subcommands::

    throughput   training images/s at 224x224: keras_regnet RegNetY-800MF on
                 Keras/JAX (keras_regnet.training.compile_model: pycls's SGD,
                 momentum 0.9, Nesterov, coupled weight decay) against timm
                 ``regnety_008`` in PyTorch (AMP in the same dtype,
                 channels_last, SGD Nesterov; eager and torch.compile), same
                 batch (128 = pycls's 1024 / 8 GPUs), same call.  Synthetic
                 random data already on the device; warm-up steps excluded;
                 the median images/s over timed windows, each window closed
                 by ``jax.block_until_ready`` / ``torch.cuda.synchronize``.
                 Each framework runs in its own child process, one after the
                 other, so neither's allocator or libraries affect the other.
                 Writes ``gpu_throughput.json``; prints a Markdown table last.
    cifar100     the recipe's 100-epoch CIFAR-10 run (the name says 100
                 epochs; the data is CIFAR-10): RegNetX-200MF, small-image
                 variant (stride-1 stem, pad/crop/flip + PCA lighting, as
                 ``keras-regnet train`` does at 32x32), 45,000 training /
                 5,000 held-out validation images of
                 ``cifar10_train_jpeg.npz``, batch 128, LR 0.1 (0.1 x
                 batch/128), 5 warm-up epochs, mixed_bfloat16, through
                 ``keras_regnet.training.train`` (resumable).  Each call
                 trains until its time budget (``--budget-minutes``, 8.5)
                 would be passed, stops right after an epoch's backup, and
                 exits 10 ("run the same command again"); once all epochs
                 are in ``OUTPUT_DIR/log.csv`` it exits 0 and a further call
                 only reports.  Writes ``gpu_cifar10.json`` (accuracy, wall
                 time, images/s), ``log.csv`` and ``curves.png``.
    report       turns those JSON files into Markdown (for docs/results.md).

``--out`` (both experiments): where the JSON goes; default ``$OUT`` when set
(the device machine's folder that comes back), else ``./gpu_results``.
``--smoke`` shrinks everything to check the script itself, CPU is fine
(throughput: RegNetX-200MF against timm ``regnetx_002`` at 32 px, batch 8,
a few steps; cifar100: a 4-block RegNet, 2 epochs on a random 5,640-image
slice of the npz): ``tests/test_gpu_training_script.py`` runs it.  Without ``--smoke``, a
framework that finds no GPU (or a missing torch/timm) is skipped and the
JSON and table say why.

On a lent GPU machine (the ``run`` tool; see /work/.library/device/README.md)
------------------------------------------------------------------------------

Once, here in the repository root: Keras and the two of its dependencies the
machine lacks (namex, pure Python; optree, built for CPython 3.12) travel as
wheels (everything else Keras and keras_regnet need, numpy, h5py, ml-dtypes,
rich, absl-py, packaging, Pillow, matplotlib, is installed there, per
/work/.library/device/KINDS.md), and the dataset is copied into a carried
folder (``../shared`` does not travel; ``carry`` takes git-ignored paths
only: ``/.whl/`` is in .gitignore, ``.data`` needs the exclude line)::

    mkdir -p .git/info && printf '/.whl/\\n/.data/\\n' >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \\
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \\
        -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
    mkdir -p .data && cp ../shared/data/cifar10_train_jpeg.npz .data/

What travels: the repository (about 2 MB), the wheels (2.9 MB) and the npz
(46.8 MB), about 52 MB of the 64 MiB allowed.  Then, as ``run`` calls
(``timeout_s=600``; ``carry=[".whl", ".data"]`` in every call)::

    # 1. throughput (not measured yet; guessed 3-5 minutes: XLA compile, torch
    #    eager, torch.compile; contenders that would start after
    #    --budget-minutes 9 are skipped, and the JSON is rewritten after each)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; export KERAS_BACKEND=jax PYTHONUNBUFFERED=1; nvidia-smi; python3 benchmarks/gpu_training.py throughput

    # 2. CIFAR-10, 100 epochs: the same command again, at once, while it
    #    prints "STATUS: incomplete" (exit 10), until "STATUS: done" (exit 0)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; export KERAS_BACKEND=jax PYTHONUNBUFFERED=1; python3 benchmarks/gpu_training.py cifar100 --data .data/cifar10_train_jpeg.npz --output-dir runs/gpu_cifar10

The training state (``runs/gpu_cifar10``: the BackupAndRestore backup,
checkpoints, log) lives on the device machine's disk, which is kept only
while the machine stays warm: 30 s after a call.  So make the next call
straight away, with no other tool call between, and check the reply's
``lease.warm``.  If the machine went back anyway, the next call finds no
state, says "starting at epoch 0", and starts over; the state cannot travel
instead: the backup of RegNetX-200MF with its momentum is about 19 MB, and
with the npz and the wheels it would pass the 64 MiB carry limit.  Budget:
the session has 30 device-minutes; a start costs 1-2, the throughput call
perhaps 3-5, and each CIFAR call at most about 9 (the script stops at
``--budget-minutes`` 8.5; the pip install and start-up come on top).  How
many CIFAR calls 100 epochs take is not known yet: each call prints every
epoch's time and, at the end, a projection of the calls still needed.  The
settings (epochs, batch, ...) of a run cannot change between its calls (the
script refuses); a shorter run needs another ``--output-dir``.  Each call's
``$OUT`` holds this call's JSON (plus ``throughput_workers.log``, or
``log.csv``, ``curves.png`` and ``train.log.tail`` for CIFAR); the reply's
``files_at`` has them here; copy them out before the next call, which
empties ``$OUT``.  Print order puts the Markdown table and the STATUS line
last, inside the reply's output_tail.

From JSON to docs/results.md (here, after the calls)::

    python benchmarks/gpu_training.py report --throughput FILES_AT/gpu_throughput.json \\
        --cifar FILES_AT2/gpu_cifar10.json > /tmp/results_body.md

then write docs/results.md from that output (it holds the device, versions,
dtype and batch of each number), and keep the JSON files beside the other
benchmark results (``benchmarks/results/``); say which call each number came
from and keep numbers from different device kinds apart.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.abspath(__file__)
os.environ["KERAS_BACKEND"] = "jax"  # before anything can import keras

EXIT_DONE, EXIT_INCOMPLETE, EXIT_DIVERGED = 0, 10, 3
THROUGHPUT_JSON, CIFAR_JSON = "gpu_throughput.json", "gpu_cifar10.json"
PRECISIONS = ("mixed_bfloat16", "mixed_float16", "float32")


class _NoTensorFlow:
    """A meta-path finder that makes every tensorflow import fail (as on the GPU machines)."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"{name} is blocked: benchmarks/gpu_training.py must not need TensorFlow")
        return None


def block_tensorflow():
    """Make every ``import tensorflow`` in this process fail (installed first thing in every process)."""
    if sys.modules.get("tensorflow") is not None:
        raise RuntimeError("tensorflow was imported before benchmarks/gpu_training.py could block it")
    if not any(type(f).__name__ == "_NoTensorFlow" for f in sys.meta_path):
        sys.meta_path.insert(0, _NoTensorFlow())


def tensorflow_looks_uninstalled():
    """For PyTorch: ``sys.modules["tensorflow"] = None``.

    Imports fail as with the finder, and ``importlib.util.find_spec`` answers
    None as where TensorFlow is not installed: torch._dynamo probes for it
    that way (on ``import timm``), and the finder's exception would break
    that probe.  Not for Keras: it takes a ``"tensorflow" in sys.modules``
    entry for a loaded TensorFlow.
    """
    block_tensorflow()
    sys.modules["tensorflow"] = None


def tensorflow_imported():
    return any(sys.modules.get(m) is not None for m in list(sys.modules) if m.split(".")[0] == "tensorflow")


block_tensorflow()
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # keras_regnet from this checkout


# ------------------------------------------------------------------ helpers


def default_out():
    return os.environ.get("OUT") or os.path.join(os.getcwd(), "gpu_results")


def timm_name(model: str) -> str:
    """pycls/keras_regnet name -> timm name: RegNetY-800MF -> regnety_008, RegNetX-1.6GF -> regnetx_016."""
    m = re.fullmatch(r"regnet([xy])[-_]?(\d+(?:[._]\d+)?)(mf|gf)", model.lower())
    if not m:
        raise ValueError(f"no timm name known for model={model!r}; pass --timm-model")
    value = float(m.group(2).replace("_", "."))
    hundreds_mf = value / 100 if m.group(3) == "mf" else value * 10
    return f"regnet{m.group(1)}_{int(round(hundreds_mf)):03d}"


# Children lead their own process group (killpg ends a child with what it started) but stay in
# this session: the run tool ends every process of the session when a command returns or is
# killed, except new sessions, which would run on, e.g. a training child writing the run folder
# under the next call.  Each child also exits when its parent is gone (worker_main's watchdog).
OWN_GROUP = dict(process_group=0) if sys.version_info >= (3, 11) else dict(preexec_fn=os.setpgrp)


def child_env():
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_worker(python, kind, spec, result_path, timeout, log_path=None):
    """Run ``python SCRIPT _worker KIND`` with ``spec``; its JSON result, or a failure record.

    The child leads its own process group (:data:`OWN_GROUP`), so that a
    timeout also ends what it started (torch.compile's compile workers).
    """
    if os.path.exists(result_path):
        os.remove(result_path)
    cmd = [python, SCRIPT, "_worker", kind, json.dumps(spec), result_path]
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                **OWN_GROUP)
    except OSError as e:
        return {"status": "skipped", "reason": f"interpreter {python!r} could not start ({e.strerror})"}
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        _stop(proc, grace=5)
        out, _ = proc.communicate()
        rc = f"timeout after {timeout:.0f} s"
    wall = time.perf_counter() - start
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"\n===== {kind} ({python}) rc={rc} wall={wall:.1f}s\n{out}")
    if rc == 0 and os.path.exists(result_path):
        with open(result_path) as f:
            result = json.load(f)
        result["process_wall_s"] = wall
        return result
    return {"status": "failed", "reason": f"exit status {rc}", "output_tail": (out or "")[-3000:], "process_wall_s": wall}


def nvidia_smi():
    """Read-only GPU description (no settings are touched), or None."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    fields = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw"
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"query": fields, "rows": out.splitlines()} if out else None


def host_info():
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "nvidia_smi": nvidia_smi(),
        "git_commit": _git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
    os.replace(tmp, path)


def timed_windows(run_window, sync, windows, batch, steps_per_window):
    """Images/s over ``windows`` calls of ``run_window()``, each fenced by ``sync()`` (median, min, max)."""
    seconds = []
    for _ in range(windows):
        sync()
        start = time.perf_counter()
        run_window()
        sync()
        seconds.append(time.perf_counter() - start)
    rates = [batch * steps_per_window / s for s in seconds]
    return {
        "images_per_s": statistics.median(rates),
        "images_per_s_min": min(rates),
        "images_per_s_max": max(rates),
        "ms_per_step": 1000 * batch / statistics.median(rates),
        "window_s": seconds,
    }


def loss_status(loss_last):
    """``ok`` unless the last training loss is not finite."""
    finite = math.isfinite(loss_last)
    return {"status": "ok" if finite else "failed", "reason": None if finite else f"loss {loss_last}"}


# ------------------------------------------------------------------ throughput


def throughput_spec(args):
    smoke = args.smoke
    model = args.model or ("RegNetX-200MF" if smoke else "RegNetY-800MF")
    spec = dict(
        model=model,
        timm_model=args.timm_model or timm_name(model),
        image_size=args.image_size or (32 if smoke else 224),
        batch=args.batch or (8 if smoke else 128),
        dtype=args.dtype,
        warmup_steps=args.warmup_steps if args.warmup_steps is not None else (2 if smoke else 15),
        steps_per_window=args.steps_per_window or (2 if smoke else 20),
        windows=args.windows or (3 if smoke else 10),
        allow_cpu=bool(smoke or args.allow_cpu),
        smoke=smoke,
    )
    spec["base_lr"] = 0.1 * spec["batch"] / 128
    return spec


def cmd_throughput(args):
    import tempfile

    out = args.out or default_out()
    os.makedirs(out, exist_ok=True)
    spec = throughput_spec(args)
    modes = [m for m in (args.torch_modes or ("eager" if args.smoke else "eager,compile")).split(",") if m]
    log_path = os.path.join(out, "throughput_workers.log")
    path = os.path.join(out, THROUGHPUT_JSON)
    scratch = tempfile.mkdtemp(prefix="gpu_training_")
    deadline = time.perf_counter() + args.budget_minutes * 60
    report = {"experiment": "training throughput", "spec": spec, "host": host_info(), "runs": []}
    contenders = [("keras", sys.executable, None)] + [("torch", args.torch_python, m) for m in modes]
    for repeat in range(args.repeats):
        for kind, python, mode in contenders:
            record = dict(framework="keras_regnet (Keras/JAX)" if kind == "keras" else "timm (PyTorch)",
                          mode=mode or "jit (XLA)", repeat=repeat)
            left = deadline - time.perf_counter()
            if left < 30:
                res = {"status": "skipped", "reason": f"--budget-minutes {args.budget_minutes} spent"}
            else:
                res = run_worker(python, kind, dict(spec, torch_mode=mode), os.path.join(scratch, f"{kind}.json"),
                                 min(args.worker_timeout, left), log_path)
            report["runs"].append(dict(res, **record))
            write_json(path, report)  # after every contender: a call cut short keeps what it measured
            rate = f"{res['images_per_s']:,.0f} images/s" if res.get("status") == "ok" else res.get("status")
            print(f"[repeat {repeat + 1}/{args.repeats}] {record['framework']} {record['mode']}: {rate} "
                  f"({res.get('process_wall_s', 0):.0f} s)", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nJSON: {path}\n")
    print(throughput_markdown(report))
    ok = any(r.get("status") == "ok" for r in report["runs"] if r["framework"].startswith("keras"))
    return 0 if ok else 1


def throughput_markdown(report):
    spec = report["spec"]
    lines = [
        f"Training throughput, {spec['image_size']}x{spec['image_size']}, batch {spec['batch']}, "
        f"{spec['dtype']}, synthetic data on the device; median over {spec['windows']} windows of "
        f"{spec['steps_per_window']} steps after {spec['warmup_steps']} warm-up steps.",
        "",
        "| framework | model | mode | device | images/s (median) | min-max | ms/step | status |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    keras_ok = [r["images_per_s"] for r in report["runs"] if r.get("status") == "ok" and r["framework"].startswith("keras")]
    base = statistics.median(keras_ok) if keras_ok else None
    for r in report["runs"]:
        if r.get("status") == "ok":
            model = r.get("model_name", "")
            lines.append(
                f"| {r['framework']} | {model} | {r['mode']} | {r.get('device', '')} | "
                f"{r['images_per_s']:,.0f} | {r['images_per_s_min']:,.0f}-{r['images_per_s_max']:,.0f} | "
                f"{r['ms_per_step']:.2f} | ok |"
            )
        else:
            reason = str(r.get("reason", "")).replace("|", "/")
            lines.append(f"| {r['framework']} | | {r['mode']} | | | | | {r.get('status')}: {reason} |")
    torch_ok = [r for r in report["runs"] if r.get("status") == "ok" and r["framework"].startswith("timm")]
    if base and torch_ok:
        lines.append("")
        for r in torch_ok:
            lines.append(f"- Keras/JAX (median of its runs) / timm {r['mode']} (repeat {r['repeat'] + 1}): "
                         f"{base / r['images_per_s']:.2f}x")
    versions = {}
    for r in report["runs"]:
        versions.update(r.get("versions", {}))
    if versions:
        lines.append("")
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    return "\n".join(lines)


def worker_keras_throughput(spec):
    import itertools

    import jax
    import keras
    import numpy as np

    from keras_regnet import get_model
    from keras_regnet.training import Recipe, compile_model

    device = jax.devices()[0]
    if device.platform == "cpu" and not spec["allow_cpu"]:
        return {"status": "skipped", "reason": "JAX sees no GPU (only CPU); use --allow-cpu to time it anyway"}
    b, s = spec["batch"], spec["image_size"]
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(spec["dtype"])
    t0 = time.perf_counter()
    model = get_model(spec["model"], input_shape=(s, s, 3), classes=1000, weights=None)
    recipe = Recipe.for_model(spec["model"], batch_size=b, base_lr=spec["base_lr"], image_size=max(s, 32))
    compile_model(model, recipe, steps_per_epoch=1251)  # 1.28M / 1024: the schedule's value does not matter here
    rng = np.random.default_rng(0)
    x_host = rng.uniform(0, 255, (b, s, s, 3)).astype("float32")  # RGB in [0, 255], normalised inside the model
    y_host = np.eye(1000, dtype="float32")[rng.integers(0, 1000, b)]
    # One fit step builds the optimizer and metric variables and compiles the train function.
    model.fit(x_host, y_host, batch_size=b, epochs=1, verbose=0, shuffle=False)
    first_fit_s = time.perf_counter() - t0
    # On the default device, uncommitted like fit's own batches (committed arrays would recompile).
    x, y = jax.device_put(x_host), jax.device_put(y_host)
    batches = itertools.repeat((x, y))
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    step = model.train_function  # fit's jitted step (state donated), called as fit calls it
    t0 = time.perf_counter()
    logs = None
    for _ in range(spec["warmup_steps"]):
        logs, state = step(state, batches)
    jax.block_until_ready(state)
    warmup_s = time.perf_counter() - t0
    loss_first = float(logs["loss"]) if spec["warmup_steps"] else None
    carry = {"logs": logs, "state": state}

    def run_window():
        for _ in range(spec["steps_per_window"]):
            carry["logs"], carry["state"] = step(carry["state"], batches)

    stats = timed_windows(
        run_window, lambda: jax.block_until_ready((carry["logs"], carry["state"])), spec["windows"], b, spec["steps_per_window"]
    )
    loss_last = float(carry["logs"]["loss"])
    import jaxlib

    return dict(
        stats,
        **loss_status(loss_last),
        model_name=spec["model"],
        params_trainable=int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        device=getattr(device, "device_kind", str(device)),
        platform=device.platform,
        dtype_policy=spec["dtype"],
        compute_dtype=next(l for l in model.layers if isinstance(l, keras.layers.Conv2D)).compute_dtype,
        optimizer=type(model.optimizer).__name__ + f" (momentum {recipe.momentum}, nesterov {recipe.nesterov}, "
        f"l2 {recipe.weight_decay}, lr {recipe.lr})",
        first_fit_s=first_fit_s,
        warmup_s=warmup_s,
        loss_first=loss_first,
        loss_last=loss_last,
        input="float32 RGB in [0, 255] (normalised inside the model), already on the device",
        versions={"keras": keras.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__},
        tensorflow_imported=tensorflow_imported(),
    )


def worker_torch_throughput(spec):
    tensorflow_looks_uninstalled()
    try:
        import torch
    except ImportError as e:
        return {"status": "skipped", "reason": f"torch is not installed ({e})"}
    try:
        import timm
    except ImportError as e:
        return {"status": "skipped", "reason": f"timm is not installed ({e})"}
    cuda = torch.cuda.is_available()
    if not cuda and not spec["allow_cpu"]:
        return {"status": "skipped", "reason": "CUDA is not available to PyTorch; use --allow-cpu to time it anyway"}
    dev = torch.device("cuda" if cuda else "cpu")
    mode = spec["torch_mode"]
    if mode == "compile" and not cuda:
        return {"status": "skipped", "reason": "torch.compile is timed on CUDA only"}
    b, s = spec["batch"], spec["image_size"]
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    amp = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16, "float32": None}[spec["dtype"]]
    t0 = time.perf_counter()
    model = timm.create_model(spec["timm_model"], num_classes=1000).to(dev).to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=spec["base_lr"], momentum=0.9, nesterov=True, weight_decay=5e-5)
    scaler = torch.amp.GradScaler(dev.type) if amp is torch.float16 else None
    criterion = torch.nn.CrossEntropyLoss()
    net = torch.compile(model) if mode == "compile" else model
    x = torch.randn(b, 3, s, s, device=dev).contiguous(memory_format=torch.channels_last)  # normalised input
    y = torch.randint(0, 1000, (b,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = criterion(net(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss

    def sync():
        if cuda:
            torch.cuda.synchronize()

    loss = step()  # first step: cudnn autotune / torch.compile
    sync()
    first_step_s = time.perf_counter() - t0
    loss_first = float(loss.detach())
    t0 = time.perf_counter()
    for _ in range(spec["warmup_steps"]):
        loss = step()
    sync()
    warmup_s = time.perf_counter() - t0
    last = {"loss": loss}

    def run_window():
        for _ in range(spec["steps_per_window"]):
            last["loss"] = step()

    stats = timed_windows(run_window, sync, spec["windows"], b, spec["steps_per_window"])
    loss_last = float(last["loss"].detach())
    import torchvision  # noqa: F401  (version only; timm needs it anyway)

    return dict(
        stats,
        **loss_status(loss_last),
        model_name=f"timm {spec['timm_model']}",
        params_trainable=int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        device=torch.cuda.get_device_name(0) if cuda else "cpu",
        platform=dev.type,
        dtype_policy=spec["dtype"],
        amp=str(amp) if amp is not None else "off",
        memory_format="channels_last",
        cudnn_benchmark=True,
        tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
        tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
        optimizer=f"torch.optim.SGD (momentum 0.9, nesterov True, weight_decay 5e-05, lr {spec['base_lr']})",
        first_step_s=first_step_s,
        warmup_s=warmup_s,
        loss_first=loss_first,
        loss_last=loss_last,
        peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        input="float32 normalised NCHW in channels_last, already on the device",
        versions={
            "torch": torch.__version__,
            "timm": timm.__version__,
            "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
        },
        tensorflow_imported=tensorflow_imported(),
    )


# ------------------------------------------------------------------ CIFAR-10, 100 epochs


# --smoke trains this small RegNet: XLA's CPU grouped convolutions make RegNetX-200MF take
# about 40 s an epoch on 2 cores with the 5,000 validation images (same as tests/jax_train_worker.py).
SMOKE_MODEL = "smoke-tiny"
SMOKE_CONFIG = dict(depth=4, w0=24, wa=24.0, wm=2.5, group_width=8)


def cifar_settings(args):
    smoke = args.smoke
    batch = args.batch_size or (64 if smoke else 128)
    return dict(
        model=args.model or (SMOKE_MODEL if smoke else "RegNetX-200MF"),
        small_images=True,
        image_size=32,
        epochs=args.epochs or (2 if smoke else 100),
        batch_size=batch,
        base_lr=args.lr if args.lr is not None else 0.1 * batch / 128,
        warmup_epochs=args.warmup_epochs if args.warmup_epochs is not None else (1 if smoke else 5),
        weight_decay=args.weight_decay,
        mixed_precision=args.mixed_precision,
        steps_per_execution=args.steps_per_execution,
        smoke=smoke,
    )


def smoke_subset(src, dst, n_train=640, n_val=5000, seed=0):
    """A random (class-mixed) ``n_val + n_train``-image subset of a CIFAR-10 JPEG npz, same layout.

    ``load_cifar10_jpeg_npz`` holds out 5,000 images for validation, so a
    smaller file would not load; the source file is sorted by class.
    """
    import numpy as np

    d = np.load(src)
    jpeg, offsets, labels = d["train_jpeg"], d["train_offsets"], d["train_labels"]
    if len(labels) < n_val + n_train:
        raise ValueError(f"{src} holds {len(labels)} images; --smoke needs at least {n_val + n_train}")
    idx = np.sort(np.random.default_rng(seed).choice(len(labels), n_val + n_train, replace=False))
    chunks = [jpeg[offsets[i] : offsets[i + 1]] for i in idx]
    new_offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(offsets.dtype)
    np.savez(dst, train_jpeg=np.concatenate(chunks), train_offsets=new_offsets, train_labels=labels[idx],
             classes=d["classes"])
    return dst


def read_log(path):
    """Rows of ``log.csv`` by epoch (0-based), floats; a repeated epoch keeps its last row."""
    rows = {}
    if not os.path.exists(path):
        return rows
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                rows[int(row["epoch"])] = {k: float(v) for k, v in row.items() if v not in (None, "")}
            except (KeyError, ValueError):
                continue
    return rows


def epochs_done(rows):
    """Epochs finished: the last logged epoch + 1.

    Not the row count: a run killed between an epoch's backup and its log row
    resumes after that epoch, leaving a gap; counting rows would then never
    reach ``epochs`` and the next call would train again from scratch (the
    backup is deleted when training ends).
    """
    return max(rows) + 1 if rows else 0


def _stop(proc, grace=10):
    """End the training child we started (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def cmd_cifar(args):
    out = args.out or default_out()
    os.makedirs(out, exist_ok=True)
    run_dir = os.path.abspath(args.output_dir)
    os.makedirs(run_dir, exist_ok=True)
    settings = cifar_settings(args)
    if not os.path.exists(args.data):
        print(f"gpu_training: --data {args.data!r} does not exist (copy the npz into a carried folder)", file=sys.stderr)
        return 2
    data = os.path.abspath(args.data)
    if args.smoke:
        data = smoke_subset(data, os.path.join(run_dir, "smoke_subset.npz"))
    settings["data"] = data
    settings["data_bytes"] = os.path.getsize(data)
    import numpy as np

    # keras_regnet.datasets.load_cifar10_jpeg_npz holds out 5,000 for validation.
    settings["num_validation"] = 5000
    settings["num_train"] = int(len(np.load(data)["train_labels"])) - 5000

    progress_path = os.path.join(run_dir, "gpu_progress.json")
    progress = {"settings": settings, "calls": []}
    if os.path.exists(progress_path):
        with open(progress_path) as f:
            progress = json.load(f)
        old = {k: v for k, v in progress["settings"].items() if k != "data"}
        new = {k: v for k, v in settings.items() if k != "data"}
        if old != new:
            print(f"gpu_training: {run_dir} holds a run with other settings:\n  {old}\nnot\n  {new}\n"
                  "use another --output-dir", file=sys.stderr)
            return 2
    log_csv = os.path.join(run_dir, "log.csv")
    epochs = settings["epochs"]
    rows = read_log(log_csv)
    done_before = epochs_done(rows)
    call = None
    if done_before >= epochs:
        print(f"all {epochs} epochs are already in {log_csv}: nothing to train", flush=True)
    else:
        print(("resuming after epoch %d of %d" % (done_before, epochs)) if done_before
              else f"starting at epoch 0 of {epochs} (no previous state in {run_dir})", flush=True)
        call = train_call(args, settings, run_dir, log_csv, epochs, done_before)
        progress["calls"].append(call)
        write_json(progress_path, progress)
        rows = read_log(log_csv)
    report = cifar_report(settings, progress, rows, run_dir)
    report["budget_minutes_per_call"] = args.budget_minutes
    path = os.path.join(out, CIFAR_JSON)
    write_json(path, report)
    for name in ("log.csv", "curves.png"):
        if os.path.exists(os.path.join(run_dir, name)):
            shutil.copy(os.path.join(run_dir, name), os.path.join(out, name))
    train_log = os.path.join(run_dir, "train.log")
    if os.path.exists(train_log):
        with open(train_log, errors="replace") as f:
            tail = f.read()[-20000:]
        with open(os.path.join(out, "train.log.tail"), "w") as f:
            f.write(tail)
    print(f"\nJSON: {path}\n")
    print(cifar_markdown(report))
    if call and call["diverged"]:
        print("STATUS: diverged (see train.log)")
        return EXIT_DIVERGED
    if report["done"]:
        print("STATUS: done")
        return EXIT_DONE
    if call and call["child_rc"] not in (0, None) and not call["stopped_for_budget"]:
        with open(train_log, errors="replace") as f:
            print(f.read()[-4000:])
        print(f"STATUS: failed (training exited with {call['child_rc']}; see {train_log})")
        return 1
    print(f"STATUS: incomplete ({report['epochs_done']}/{epochs} epochs): run the same command again")
    return EXIT_INCOMPLETE


def train_call(args, settings, run_dir, log_csv, epochs, done_before):
    """One training child under the time budget; returns this call's record."""
    budget = args.budget_minutes * 60
    result_path = os.path.join(run_dir, ".train_result.json")
    for stale in (result_path, result_path + ".env"):
        if os.path.exists(stale):
            os.remove(stale)
    log = open(os.path.join(run_dir, "train.log"), "a")
    log.write(f"\n===== call at {time.strftime('%Y-%m-%d %H:%M:%S')}, after epoch {done_before}\n")
    log.flush()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, "_worker", "cifar", json.dumps(dict(settings, run_dir=run_dir, result_path=result_path)),
         result_path],
        env=child_env(), stdout=log, stderr=subprocess.STDOUT, **OWN_GROUP,
    )
    seen = len(read_log(log_csv))
    epoch_ends = []  # seconds since the child started, when each epoch's row appeared
    stopped, reason = False, None
    try:
        while proc.poll() is None:
            time.sleep(0.25)
            now = time.perf_counter() - start
            rows = read_log(log_csv)
            if len(rows) > seen:
                for e in sorted(rows)[seen:]:
                    epoch_ends.append(now)
                    r = rows[e]
                    print(f"epoch {e + 1}/{epochs}: loss {r.get('loss', float('nan')):.4f} "
                          f"acc {r.get('accuracy', float('nan')):.4f} val_acc {r.get('val_accuracy', float('nan')):.4f} "
                          f"({now:.1f} s into this call)", flush=True)
                seen = len(rows)
                if epochs_done(rows) >= epochs:
                    continue  # the last epoch: let train() finish and write its results
                steady = [b - a for a, b in zip(epoch_ends, epoch_ends[1:])]
                next_epoch = max(steady[-3:]) if steady else epoch_ends[0] * 0.5
                stop_here = args.stop_after_epochs and len(epoch_ends) >= args.stop_after_epochs
                if stop_here or now + 1.15 * next_epoch + 15 > budget:
                    # The epoch's backup is written before its log row (callback order in
                    # train()); let last.keras/curves.png land too, then stop.
                    _wait_for_files(run_dir, start + now, timeout=10)
                    stopped, reason = True, ("--stop-after-epochs" if stop_here else "time budget")
                    _stop(proc)
                    break
            if now > budget:
                stopped, reason = True, "time budget (hard stop, mid-epoch)"
                _stop(proc)
                break
    finally:
        _stop(proc)
        log.close()
    wall = time.perf_counter() - start
    rows = read_log(log_csv)
    epoch_ends += [wall] * max(0, len(rows) - seen)  # rows written just before the child exited
    train_result = worker_env = None
    if os.path.exists(result_path):
        with open(result_path) as f:
            train_result = json.load(f)
    if os.path.exists(result_path + ".env"):
        with open(result_path + ".env") as f:
            worker_env = json.load(f)
    steady = [b - a for a, b in zip(epoch_ends, epoch_ends[1:])]
    return {
        "started_after_epoch": done_before,
        "epochs_this_call": len(epoch_ends),
        "wall_s": wall,
        "first_epoch_end_s": epoch_ends[0] if epoch_ends else None,  # data decode + compile + epoch
        "steady_epoch_s": steady,
        "child_rc": proc.returncode if not stopped else None,
        "stopped_for_budget": stopped,
        "stop_reason": reason,
        "diverged": proc.returncode == EXIT_DIVERGED and not stopped,
        "worker_env": worker_env,
        "train_result": train_result,
    }


def _wait_for_files(run_dir, since_perf, timeout):
    """Wait (at most ``timeout`` s) until last.keras and curves.png are newer than ``since_perf`` (perf_counter)."""
    since = time.time() - (time.perf_counter() - since_perf)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        paths = [os.path.join(run_dir, n) for n in ("last.keras", "curves.png")]
        if all(os.path.exists(p) and os.path.getmtime(p) >= since - 1 for p in paths):
            time.sleep(0.5)
            return
        time.sleep(0.2)


def cifar_report(settings, progress, rows, run_dir):
    epochs = settings["epochs"]
    calls = progress["calls"]
    steady = [s for c in calls for s in c["steady_epoch_s"]]
    num_train, num_val = settings["num_train"], settings["num_validation"]
    versions = device = None
    for c in calls:
        env = c.get("worker_env") or {}
        versions, device = env.get("versions", versions), env.get("device", device)
    steps = num_train // settings["batch_size"]
    last = rows[max(rows)] if rows else {}
    best_epoch = max(rows, key=lambda e: rows[e].get("val_accuracy", -1)) if rows else None
    total_wall = sum(c["wall_s"] for c in calls)
    epoch_s = statistics.median(steady) if steady else None
    remaining = max(0, epochs - epochs_done(rows))
    return {
        "experiment": "CIFAR-10, RegNetX-200MF small-image variant, keras_regnet.training.train on JAX",
        "settings": settings,
        "num_train": num_train,
        "num_validation": num_val,
        "steps_per_epoch": steps,
        "epochs": epochs,
        "epochs_done": epochs_done(rows),
        "done": epochs_done(rows) >= epochs,
        "final": last,
        "best_val_accuracy": rows[best_epoch]["val_accuracy"] if best_epoch is not None else None,
        "best_epoch": best_epoch + 1 if best_epoch is not None else None,
        "calls": len(calls),
        "wall_s_total": total_wall,
        "epoch_s_median": epoch_s,
        # End to end: host augmentation + training steps + validation + checkpoints, per epoch.
        "images_per_s_steady": num_train / epoch_s if epoch_s else None,
        # Everything of every call: process start, decode, XLA compile, all epochs.
        "images_per_s_overall": (sum(c["epochs_this_call"] for c in calls) * steps * settings["batch_size"] / total_wall)
        if total_wall else None,
        "projected_remaining_s": remaining * epoch_s if epoch_s else None,
        "device": device,
        "versions": versions,
        "host": host_info(),
        "run_dir": run_dir,
        "call_records": calls,
    }


def cifar_markdown(report):
    s = report["settings"]
    f = report["final"] or {}

    def num(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    lines = [
        f"CIFAR-10, {s['model']} small-image variant (stride-1 stem), {report['num_train']:,} train / "
        f"{report['num_validation']:,} held-out validation, batch {s['batch_size']}, LR {s['base_lr']}, "
        f"{s['mixed_precision']}, {s['epochs']} epochs; device {report.get('device') or '?'}",
        "",
        "| epochs done | val top-1 (last) | val top-5 (last) | best val top-1 (epoch) | train top-1 (last) | "
        "s/epoch (median) | images/s (steady, end to end) | images/s (overall) | wall s (all calls) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {report['epochs_done']}/{report['epochs']} | {num(f.get('val_accuracy'), '.4f')} | "
        f"{num(f.get('val_top5_accuracy'), '.4f')} | {num(report['best_val_accuracy'], '.4f')} "
        f"({report['best_epoch'] or '-'}) | {num(f.get('accuracy'), '.4f')} | {num(report['epoch_s_median'], '.2f')} | "
        f"{num(report['images_per_s_steady'], ',.0f')} | {num(report['images_per_s_overall'], ',.0f')} | "
        f"{num(report['wall_s_total'], ',.0f')} |",
    ]
    if not report["done"] and report["projected_remaining_s"]:
        per_call = report.get("budget_minutes_per_call", 8.5)
        lines.append("")
        lines.append(f"Projected: {report['projected_remaining_s']:.0f} s of training left, about "
                     f"{math.ceil(report['projected_remaining_s'] / (per_call * 60))} more call(s) of {per_call} minutes.")
    return "\n".join(lines)


def worker_cifar(spec):
    import jax
    import jaxlib
    import keras

    from keras_regnet.training.callbacks import TrainingDiverged
    from keras_regnet.training import Recipe, train

    device = jax.devices()[0]
    env = dict(
        device=getattr(device, "device_kind", str(device)),
        platform=device.platform,
        versions={"keras": keras.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__},
    )
    write_json(spec["result_path"] + ".env", env)
    from keras_regnet import RegNetConfig

    recipe = Recipe(
        epochs=spec["epochs"], batch_size=spec["batch_size"], base_lr=spec["base_lr"], image_size=spec["image_size"],
        warmup_epochs=spec["warmup_epochs"], weight_decay=spec["weight_decay"],
    )
    model = RegNetConfig(**SMOKE_CONFIG) if spec["model"] == SMOKE_MODEL else spec["model"]
    try:
        results = train(
            model, data=spec["data"], output_dir=spec["run_dir"], recipe=recipe, small_images=True,
            mixed_precision=spec["mixed_precision"], steps_per_execution=spec["steps_per_execution"],
            strategy="none", verbose=2,
        )
    except TrainingDiverged as e:
        print(f"gpu_training: {e}", flush=True)
        sys.exit(EXIT_DIVERGED)
    results.update(env, tensorflow_imported=tensorflow_imported())
    return results


# ------------------------------------------------------------------ report


def cmd_report(args):
    parts = []
    for path in args.throughput or []:
        with open(path) as f:
            report = json.load(f)
        parts.append(f"### Training throughput ({os.path.basename(path)})\n\n{throughput_markdown(report)}\n"
                     f"\nHost: {json.dumps(report['host'].get('nvidia_smi'))}, git {report['host'].get('git_commit')}")
    for path in args.cifar or []:
        with open(path) as f:
            report = json.load(f)
        parts.append(f"### CIFAR-10 run ({os.path.basename(path)})\n\n{cifar_markdown(report)}\n"
                     f"\nVersions: {report.get('versions')}, git {report['host'].get('git_commit')}")
    text = "\n\n".join(parts) + "\n"
    print(text)
    return 0


# ------------------------------------------------------------------ entry points


def _exit_with_parent():
    """Exit when the parent process is gone (re-parented), e.g. killed at the run tool's limit."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)  # a training child dies as under kill -9: BackupAndRestore resumes it

    threading.Thread(target=watch, daemon=True).start()


def worker_main(kind, spec_json, result_path):
    _exit_with_parent()
    spec = json.loads(spec_json)
    fn = {"keras": worker_keras_throughput, "torch": worker_torch_throughput, "cifar": worker_cifar}[kind]
    result = fn(spec)
    write_json(result_path, result)
    return 0


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("throughput", help="training images/s: keras_regnet on Keras/JAX vs timm on PyTorch")
    t.add_argument("--model", help="keras_regnet model (default RegNetY-800MF; smoke: RegNetX-200MF)")
    t.add_argument("--timm-model", help="timm model (default: the same RegNet, e.g. regnety_008)")
    t.add_argument("--image-size", type=int, help="default 224 (smoke: 32)")
    t.add_argument("--batch", type=int, help="per-GPU batch (default 128 = pycls's 1024 / 8; smoke: 8)")
    t.add_argument("--dtype", choices=PRECISIONS, default="mixed_bfloat16",
                   help="Keras dtype policy; PyTorch uses AMP in the same dtype (float32: no AMP)")
    t.add_argument("--warmup-steps", type=int, help="untimed steps after the first (default 15)")
    t.add_argument("--steps-per-window", type=int, help="steps per timed window (default 20)")
    t.add_argument("--windows", type=int, help="timed windows; the median is reported (default 10)")
    t.add_argument("--repeats", type=int, default=1, help="run every contender this many times, alternating")
    t.add_argument("--torch-modes", help="comma list of eager,compile (default both; smoke: eager)")
    t.add_argument("--torch-python", default=sys.executable, help="interpreter with torch + timm (default this one)")
    t.add_argument("--allow-cpu", action="store_true", help="time on CPU when there is no GPU")
    t.add_argument("--worker-timeout", type=float, default=420, help="seconds per child process")
    t.add_argument("--budget-minutes", type=float, default=9.0,
                   help="skip contenders that would start after this (the run tool allows 10 minutes a call)")
    t.add_argument("--out", help="results folder (default $OUT, else ./gpu_results)")
    t.add_argument("--smoke", action="store_true", help="tiny sizes, CPU allowed: checks the script")

    c = sub.add_parser("cifar100", help="100-epoch CIFAR-10 run of RegNetX-200MF (small images), resumable")
    c.add_argument("--data", required=True, help="cifar10_train_jpeg.npz (carried to the device in .data/)")
    c.add_argument("--output-dir", required=True, help="run folder: backup, checkpoints, log.csv (keep it between calls)")
    c.add_argument("--model", help=f"published model (default RegNetX-200MF; smoke: {SMOKE_MODEL}, a 4-block RegNet)")
    c.add_argument("--epochs", type=int, help="default 100 (smoke: 2)")
    c.add_argument("--batch-size", type=int, help="default 128 (smoke: 64)")
    c.add_argument("--lr", type=float, help="base LR (default 0.1 x batch / 128)")
    c.add_argument("--warmup-epochs", type=int, help="default 5 (smoke: 1)")
    c.add_argument("--weight-decay", type=float, default=5e-5)
    c.add_argument("--mixed-precision", choices=PRECISIONS, default="mixed_bfloat16")
    c.add_argument("--steps-per-execution", type=int, default=1)
    c.add_argument("--budget-minutes", type=float, default=8.5,
                   help="stop after the last epoch that ends within this time (the run tool allows 10 minutes)")
    c.add_argument("--stop-after-epochs", type=int, help="stop this call after N epochs (tests resuming)")
    c.add_argument("--out", help="results folder (default $OUT, else ./gpu_results)")
    c.add_argument("--smoke", action="store_true", help="5,640-image slice, 2 epochs, batch 64: checks the script")

    r = sub.add_parser("report", help="Markdown from the JSON files (for docs/results.md)")
    r.add_argument("--throughput", nargs="*", help="gpu_throughput.json files")
    r.add_argument("--cifar", nargs="*", help="gpu_cifar10.json files")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        return worker_main(*argv[1:4])
    args = build_parser().parse_args(argv)
    return {"throughput": cmd_throughput, "cifar100": cmd_cifar, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
