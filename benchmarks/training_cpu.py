"""CPU speed of the model step: keras_regnet in Keras against pycls's model in PyTorch.

Training (default): forward, backward and optimizer update on one in-memory
synthetic batch repeated (no input pipeline), the recipe's optimizer on both
sides (``compile_model``'s ``TorchSGD``; pycls's ``construct_optimizer``).
Model: RegNetX-200MF with the stride-1 stem (pycls ``res_stem_cifar``),
32x32 inputs, 10 classes, batch 128 -- the configuration of docs/results.md.
Keras runs ``model.fit`` exactly as users get it; a callback times the steps
after ``--warmup`` steps up to the end of training (the few seconds Keras
spends closing an infinite ``tf.data`` iterator after training are not a
model step and are left out).

Inference (``--task inference``): RegNetY-800MF, batch 32 at 224x224,
``predict_on_batch`` against pycls's model under ``torch.inference_mode``.

Each contender runs in its own fresh process, contenders alternate for
``--rounds`` rounds, and the median images/s of each is reported with its
ratio to pycls fp32 and to keras-tf-fp32, and the same ratios round by round
(the JSON also records the CPU's AVX-512/bf16/AMX flags), all from the same run::

    python benchmarks/training_cpu.py --rounds 5 --json benchmarks/results/training_cpu.json
    python benchmarks/training_cpu.py --task inference --rounds 5

Contenders (``--contenders`` picks some): ``keras-tf-fp32`` (the default),
``keras-tf-bf16`` (``mixed_bfloat16``), ``keras-tf-xla`` (``jit_compile=True``),
``keras-jax-fp32`` and ``keras-jax-bf16`` (``KERAS_BACKEND=jax``), and
``pycls-fp32`` / ``pycls-bf16`` (PyTorch eager, channels_last; bf16 under
``torch.autocast``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time

KERAS = {  # name -> (Keras backend, dtype policy, jit_compile)
    "keras-tf-fp32": ("tensorflow", "float32", False),
    "keras-tf-bf16": ("tensorflow", "mixed_bfloat16", False),
    "keras-tf-xla": ("tensorflow", "float32", True),
    "keras-jax-fp32": ("jax", "float32", None),
    "keras-jax-bf16": ("jax", "mixed_bfloat16", None),
}
PYCLS = {"pycls-fp32": None, "pycls-bf16": "bfloat16"}
CONTENDERS = (*KERAS, *PYCLS)
TASKS = {  # task -> (model, input size, classes, batch, stem stride)
    "training": ("RegNetX-200MF", 32, 10, 128, 1),
    "inference": ("RegNetY-800MF", 224, 1000, 32, 2),
}


def synthetic_batch(size, classes, batch):
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    return images, np.eye(classes, dtype="float32")[rng.integers(0, classes, batch)]


def keras_model(task, policy):
    import keras

    from keras_regnet.architecture.models import RegNet
    from keras_regnet.architecture.zoo import lookup

    name, size, classes, _, stem_stride = TASKS[task]
    keras.mixed_precision.set_global_policy(policy)
    config = dataclasses.replace(lookup(name).config, stem_stride=stem_stride)
    return RegNet(config, input_shape=(size, size, 3), classes=classes)


class TimedSteps:
    """A Keras callback timing from the end of step ``warmup`` to the end of training.

    Reading the loss waits for the step's computation (JAX dispatches asynchronously).
    """

    def __new__(cls, warmup):
        import keras

        class Callback(keras.callbacks.Callback):
            seconds = None

            def on_train_batch_end(self, batch, logs=None):
                if batch == warmup - 1:
                    float(logs["loss"])
                    self.start = time.perf_counter()

            def on_train_end(self, logs=None):
                float(logs["loss"])
                self.seconds = time.perf_counter() - self.start

        return Callback()


def keras_training(contender, steps, warmup):
    import numpy as np

    from keras_regnet.training import Recipe, compile_model

    backend, policy, jit = KERAS[contender]
    _, size, classes, batch, _ = TASKS["training"]
    model = keras_model("training", policy)
    compile_model(model, Recipe(epochs=100, batch_size=batch, image_size=size), steps_per_epoch=steps)
    if jit is not None:
        model.jit_compile = jit
    x, y = synthetic_batch(size, classes, batch)
    timer = TimedSteps(warmup)
    if backend == "tensorflow":
        import tensorflow as tf

        data = tf.data.Dataset.from_tensors((x, y)).repeat()
        model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[timer])
    else:  # no TensorFlow needed: the same batch, tiled
        reps = warmup + steps
        model.fit(np.tile(x, (reps, 1, 1, 1)), np.tile(y, (reps, 1)), batch_size=batch, shuffle=False,
                  epochs=1, verbose=0, callbacks=[timer])
    return steps * batch / timer.seconds


def keras_inference(contender, steps, warmup):
    backend, policy, jit = KERAS[contender]
    _, size, classes, batch, _ = TASKS["inference"]
    model = keras_model("inference", policy)
    if jit is not None:
        model.jit_compile = jit
    x, _ = synthetic_batch(size, classes, batch)
    for _ in range(warmup):
        model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    return steps * batch / (time.perf_counter() - start)


def pycls_model(task):
    import pycls.core.builders as builders
    from pycls.core.config import cfg

    from keras_regnet.architecture.zoo import lookup

    name, _, classes, _, stem_stride = TASKS[task]
    config = lookup(name).config
    cfg.MODEL.TYPE, cfg.MODEL.NUM_CLASSES = "regnet", classes
    cfg.REGNET.STEM_TYPE = "res_stem_cifar" if stem_stride == 1 else "simple_stem_in"
    cfg.REGNET.STEM_W = config.stem_width
    cfg.REGNET.DEPTH, cfg.REGNET.W0, cfg.REGNET.WA, cfg.REGNET.WM = config.depth, config.w0, config.wa, config.wm
    cfg.REGNET.GROUP_W, cfg.REGNET.SE_ON = config.group_width, bool(config.se_ratio)
    cfg.OPTIM.BASE_LR, cfg.OPTIM.MOMENTUM, cfg.OPTIM.NESTEROV, cfg.OPTIM.WEIGHT_DECAY = 0.1, 0.9, True, 5e-5
    return builders.build_model()


def pycls_run(contender, task, steps, warmup):
    import contextlib

    import torch
    import pycls.core.optimizer as optim

    _, size, classes, batch, _ = TASKS[task]
    model = pycls_model(task).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,))
    dtype = PYCLS[contender]
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype else contextlib.nullcontext
    if task == "training":
        model.train()
        optimizer, loss_fun = optim.construct_optimizer(model), torch.nn.CrossEntropyLoss()

        def step():
            with autocast():
                loss = loss_fun(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode(), autocast():
                model(x)

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def measure(contender, task, steps, warmup):
    """Images/s of ``contender`` on ``task`` in this process."""
    if contender in PYCLS:
        return pycls_run(contender, task, steps, warmup)
    run = keras_training if task == "training" else keras_inference
    return run(contender, steps, warmup)


def run_fresh(contender, task, steps, warmup, threads=None):
    """Images/s measured in a new Python process; each library's own thread defaults unless ``threads``."""
    backend = KERAS[contender][0] if contender in KERAS else "tensorflow"
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    setup = f"import torch; torch.set_num_threads({threads}); " if contender in PYCLS and threads else ""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); {setup}"
            f"import training_cpu as t; print(t.measure({contender!r}, {task!r}, {steps}, {warmup}))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{contender} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


REFERENCES = ("pycls-fp32", "keras-tf-fp32")


def per_round_ratios(results):
    """Each contender's images/s over each reference's, round by round (same round, same machine state)."""
    return {
        name: {ref: [a / b for a, b in zip(values, results[ref])] for ref in REFERENCES if ref in results}
        for name, values in results.items()
    }


def table(medians, ratios):
    """Markdown: median images/s, the ratio of medians and the per-round ratios (:func:`per_round_ratios`)."""
    lines = [
        "| contender | images/s (median) | vs pycls fp32 | vs keras-tf-fp32 "
        "| per round vs pycls fp32 | per round vs keras-tf-fp32 |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, value in medians.items():
        of_medians = [f"{value / medians[ref]:.2f}x" if ref in medians else "" for ref in REFERENCES]
        rounds = [", ".join(f"{r:.2f}" for r in ratios[name].get(ref, [])) if ref != name else "" for ref in REFERENCES]
        lines.append(f"| {name} | {value:.1f} | {of_medians[0]} | {of_medians[1]} | {rounds[0]} | {rounds[1]} |")
    return "\n".join(lines)


def cpu_flags():
    """The CPU features that decide which bf16 kernels run (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if flag in flags]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=tuple(TASKS), default="training")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=30, help="timed steps per contender and round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing, compilation)")
    p.add_argument("--threads", type=int, help="intra-op threads for every library (default: each library's own)")
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    p.add_argument("--json", help="write the per-round results here")
    args = p.parse_args(argv)
    results = {c: [] for c in args.contenders}
    for round_ in range(args.rounds):
        for contender in args.contenders:
            results[contender].append(run_fresh(contender, args.task, args.steps, args.warmup, args.threads))
            print(f"round {round_ + 1}: {contender} {results[contender][-1]:.1f} img/s", flush=True)
    medians = {c: statistics.median(v) for c, v in results.items()}
    ratios = per_round_ratios(results)
    print(table(medians, ratios))
    record = {"task": args.task, "model": TASKS[args.task], "rounds": results, "median": medians,
              "per_round_ratio": ratios, "threads": args.threads, "steps": args.steps,
              "warmup": args.warmup, "machine": platform.processor() or platform.machine(),
              "cpu_flags": cpu_flags(), "python": platform.python_version()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return medians


if __name__ == "__main__":
    main()
