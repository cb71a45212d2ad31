"""Training throughput on a GPU: keras_regnet on Keras/JAX against timm on PyTorch, images/s.

``throughput``: training images/s at 224x224 of keras_regnet RegNetY-800MF on
Keras/JAX (``keras_regnet.training.compile_model``: pycls's SGD, momentum
0.9, Nesterov, coupled weight decay, learning rate by
``keras_regnet.training.linear_scaled_lr``) against timm ``regnety_008`` in
PyTorch (AMP in the same dtype, channels_last, SGD Nesterov; eager and
``torch.compile``), same batch (128 = pycls's 1024 / 8 GPUs), same call.
Synthetic random data already on the device; warm-up steps excluded; the
median images/s over timed windows, each closed by ``jax.block_until_ready``
/ ``torch.cuda.synchronize``.  Each framework runs in its own child process,
one after the other, so neither's allocator or libraries affect the other.
Writes ``gpu_throughput.json`` (rewritten after each contender) and prints a
Markdown table last.  ``report`` turns such JSON files into Markdown.

Keras runs on JAX (``KERAS_BACKEND=jax``, forced here) and TensorFlow is
never imported: every process this script starts blocks it first
(:mod:`keras_regnet.tf_free`), as the lent GPU machines have JAX,
PyTorch, timm and torchvision but no TensorFlow and no Keras.

``--out``: where the JSON goes; default ``$OUT`` when set (the device
machine's folder that comes back), else ``./gpu_results``.  ``--smoke``
checks the script on a CPU (RegNetX-200MF against timm ``regnetx_002`` at 32
px, batch 8, a few steps); ``tests/test_gpu_training_script.py`` runs it.
Without ``--smoke``, a framework that finds no GPU (or a missing torch/timm)
is skipped and the JSON and table say why.

On a lent GPU machine (the ``run`` tool; see /work/.library/device/README.md)
------------------------------------------------------------------------------

Once, here in the repository root: Keras and the two of its dependencies the
machine lacks (namex, pure Python; optree, built for CPython 3.12) travel as
wheels (numpy, h5py, ml-dtypes, rich, absl-py, packaging, Pillow and
matplotlib are installed there, per /work/.library/device/KINDS.md), and the
CIFAR-10 file is copied into a carried folder (``../shared`` does not
travel; ``carry`` takes git-ignored paths only)::

    mkdir -p .git/info && printf '/.whl/\\n/.data/\\n' >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \\
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \\
        -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
    mkdir -p .data && cp ../shared/data/cifar10_train_jpeg.npz .data/

The repository (about 2 MB), the wheels (2.9 MB) and the npz (46.8 MB) stay
under the 64 MiB a call may carry.  Every call below starts with the same
set-up (``timeout_s=600``, ``carry=[".whl", ".data"]``)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; export KERAS_BACKEND=jax PYTHONUNBUFFERED=1; nvidia-smi

1. Throughput (XLA compile, torch eager, torch.compile: a few minutes;
   contenders that would start after ``--budget-minutes`` 9 are skipped)::

       python3 benchmarks/gpu_training.py throughput

2. The recipe's 100-epoch CIFAR-10 run (RegNetX-200MF, small-image variant:
   stride-1 stem, pad/crop/flip + PCA lighting; 45,000 training / 5,000
   held-out images of the npz; batch 128, so LR 0.1 and 5 warm-up epochs by
   pycls's rules; mixed_bfloat16) is the package's own command, with a time
   budget per call; each call stops after the epoch that would otherwise
   overrun it, keeping the backup, and ``results.json`` says ``"complete"``
   and ``"epochs_done"``.  Repeat the same command until it says complete::

       python3 -m keras_regnet.cli train --model RegNetX-200MF --data .data/cifar10_train_jpeg.npz \\
           --epochs 100 --batch-size 128 --image-size 32 --mixed-precision mixed_bfloat16 \\
           --strategy none --output-dir runs/gpu_cifar10 --time-budget 510; \\
           cp runs/gpu_cifar10/results.json runs/gpu_cifar10/log.csv runs/gpu_cifar10/curves.png $OUT/

The run folder (backup, checkpoints, log) lives on the device machine's
disk, kept only while the machine stays warm (30 s after a call): make the
next call straight away, with no other tool call between, and check the
reply's ``lease.warm``.  If the machine went back, the next call starts the
run over (the backup of RegNetX-200MF with its momentum, about 19 MB, with
the npz and the wheels would pass the carry limit).  The session has 30
device-minutes: a start costs 1-2, each call here at most about 10.  Copy
each call's files out of ``files_at`` before the next call, which empties
``$OUT``.

From JSON to docs/results.md (here, after the calls)::

    python benchmarks/gpu_training.py report --throughput FILES_AT/gpu_throughput.json > /tmp/results_body.md

then write docs/results.md from that output and the CIFAR run's
``results.json``/``log.csv`` (device, versions, dtype and batch of each
number), keep the JSON files beside the other benchmark results
(``benchmarks/results/``), say which call each number came from, and keep
numbers from different device kinds apart.
"""

from __future__ import annotations

import argparse
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
THROUGHPUT_JSON = "gpu_throughput.json"
PRECISIONS = ("mixed_bfloat16", "mixed_float16", "float32")
os.environ["KERAS_BACKEND"] = "jax"  # before anything can import keras
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # keras_regnet from this checkout


# ``import keras_regnet`` starts no framework (its names load on first use),
# so the PyTorch child loads only PyTorch; TensorFlow is blocked before
# anything can import it.
from keras_regnet import atomic, tf_free  # noqa: E402

tf_free.block_tensorflow()


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


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic.write_text(path, json.dumps(obj, indent=2, default=str))


# Children lead their own process group (killpg ends a child with what it started, e.g.
# torch.compile's workers) but stay in this session: the run tool ends every process of the
# session when a command returns, except new sessions, which would run on.
OWN_GROUP = dict(process_group=0) if sys.version_info >= (3, 11) else dict(preexec_fn=os.setpgrp)


def child_env():
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


def stop(proc, grace=10):
    """End a child we started, with its process group."""
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


def run_worker(python, kind, spec, result_path, timeout, log_path=None):
    """Run ``python SCRIPT _worker KIND`` with ``spec``; its JSON result, or a failure record."""
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
        stop(proc, grace=5)
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


def git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def host_info():
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "nvidia_smi": nvidia_smi(),
        "git_commit": git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


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
    from keras_regnet.training.recipe import linear_scaled_lr

    smoke = args.smoke
    model = args.model or ("RegNetX-200MF" if smoke else "RegNetY-800MF")
    batch = args.batch or (8 if smoke else 128)
    return dict(
        model=model,
        timm_model=args.timm_model or timm_name(model),
        image_size=args.image_size or (32 if smoke else 224),
        batch=batch,
        base_lr=linear_scaled_lr(batch),  # pycls's rule, for both frameworks
        dtype=args.dtype,
        warmup_steps=args.warmup_steps if args.warmup_steps is not None else (2 if smoke else 15),
        steps_per_window=args.steps_per_window or (2 if smoke else 20),
        windows=args.windows or (3 if smoke else 10),
        allow_cpu=bool(smoke or args.allow_cpu),
        smoke=smoke,
    )


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
    for r in report["runs"]:
        if r.get("status") == "ok":
            lines.append(
                f"| {r['framework']} | {r.get('model_name', '')} | {r['mode']} | {r.get('device', '')} | "
                f"{r['images_per_s']:,.0f} | {r['images_per_s_min']:,.0f}-{r['images_per_s_max']:,.0f} | "
                f"{r['ms_per_step']:.2f} | ok |"
            )
        else:
            reason = str(r.get("reason", "")).replace("|", "/")
            lines.append(f"| {r['framework']} | | {r['mode']} | | | | | {r.get('status')}: {reason} |")
    return "\n".join(lines + ratio_lines(report["runs"]) + version_lines(report["runs"]))


def ratio_lines(runs):
    """Keras/JAX (median of its runs) over each timm run, as Markdown list lines."""
    keras_ok = [r["images_per_s"] for r in runs if r.get("status") == "ok" and r["framework"].startswith("keras")]
    torch_ok = [r for r in runs if r.get("status") == "ok" and r["framework"].startswith("timm")]
    if not (keras_ok and torch_ok):
        return []
    base = statistics.median(keras_ok)
    return [""] + [
        f"- Keras/JAX (median of its runs) / timm {r['mode']} (repeat {r['repeat'] + 1}): {base / r['images_per_s']:.2f}x"
        for r in torch_ok
    ]


def version_lines(runs):
    versions = {}
    for r in runs:
        versions.update(r.get("versions", {}))
    return ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))] if versions else []


def worker_keras_throughput(spec):
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
    stats, loss_first, loss_last, warmup_s = time_keras_steps(model, jax, x_host, y_host, spec)
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
        tensorflow_imported=tf_free.tensorflow_imported(),
    )


def time_keras_steps(model, jax, x_host, y_host, spec):
    """Warm-up, then timed windows of fit's own jitted train step; ``(stats, loss_first, loss_last, warmup_s)``."""
    import itertools

    # On the default device, uncommitted like fit's own batches (committed arrays would recompile).
    batches = itertools.repeat((jax.device_put(x_host), jax.device_put(y_host)))
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
        run_window, lambda: jax.block_until_ready((carry["logs"], carry["state"])), spec["windows"], spec["batch"],
        spec["steps_per_window"],
    )
    return stats, loss_first, float(carry["logs"]["loss"]), warmup_s


def torch_unavailable(spec):
    """Why PyTorch cannot be timed here (a skip record), or None."""
    try:
        import timm  # noqa: F401
        import torch
    except ImportError as e:
        return {"status": "skipped", "reason": f"torch or timm is not installed ({e})"}
    cuda = torch.cuda.is_available()
    if not cuda and not spec["allow_cpu"]:
        return {"status": "skipped", "reason": "CUDA is not available to PyTorch; use --allow-cpu to time it anyway"}
    if spec["torch_mode"] == "compile" and not cuda:
        return {"status": "skipped", "reason": "torch.compile is timed on CUDA only"}
    return None


def worker_torch_throughput(spec):
    skip = torch_unavailable(spec)
    if skip:
        return skip
    import timm
    import torch

    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    amp = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16, "float32": None}[spec["dtype"]]
    t0 = time.perf_counter()
    model = timm.create_model(spec["timm_model"], num_classes=1000).to(dev).to(memory_format=torch.channels_last)
    model.train()
    step = torch_train_step(torch, model, spec, dev, amp)

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

    stats = timed_windows(run_window, sync, spec["windows"], spec["batch"], spec["steps_per_window"])
    loss_last = float(last["loss"].detach())
    return dict(
        stats,
        **loss_status(loss_last),
        **torch_description(torch, timm, spec, model, dev, amp),
        first_step_s=first_step_s,
        warmup_s=warmup_s,
        loss_first=loss_first,
        loss_last=loss_last,
    )


def torch_train_step(torch, model, spec, dev, amp):
    """One SGD step of ``model`` on a fixed random batch (AMP in ``amp``, channels_last); returns the loss."""
    b, s = spec["batch"], spec["image_size"]
    opt = torch.optim.SGD(model.parameters(), lr=spec["base_lr"], momentum=0.9, nesterov=True, weight_decay=5e-5)
    scaler = torch.amp.GradScaler(dev.type) if amp is torch.float16 else None
    criterion = torch.nn.CrossEntropyLoss()
    net = torch.compile(model) if spec["torch_mode"] == "compile" else model
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

    return step


def torch_description(torch, timm, spec, model, dev, amp):
    import torchvision  # version only; timm needs it anyway

    cuda = dev.type == "cuda"
    return dict(
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
        peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        input="float32 normalised NCHW in channels_last, already on the device",
        versions={
            "torch": torch.__version__,
            "timm": timm.__version__,
            "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
        },
        tensorflow_imported=tf_free.tensorflow_imported(),
    )


# ------------------------------------------------------------------ report and entry points


def cmd_report(args):
    parts = []
    for path in args.throughput or []:
        with open(path) as f:
            report = json.load(f)
        parts.append(f"### Training throughput ({os.path.basename(path)})\n\n{throughput_markdown(report)}\n"
                     f"\nHost: {json.dumps(report['host'].get('nvidia_smi'))}, git {report['host'].get('git_commit')}")
    print("\n\n".join(parts) + "\n")
    return 0


def exit_with_parent():
    """Exit when the parent process is gone (re-parented), e.g. killed at the run tool's limit."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def worker_main(kind, spec_json, result_path):
    exit_with_parent()
    spec = json.loads(spec_json)
    result = {"keras": worker_keras_throughput, "torch": worker_torch_throughput}[kind](spec)
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
    r = sub.add_parser("report", help="Markdown from the JSON files (for docs/results.md)")
    r.add_argument("--throughput", nargs="*", help="gpu_throughput.json files")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        return worker_main(*argv[1:4])
    args = build_parser().parse_args(argv)
    return {"throughput": cmd_throughput, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
