"""CPU training throughput: keras_regnet (``model.fit``) against pycls's model in PyTorch.

The model step only: forward, backward and optimizer update on one in-memory
synthetic batch repeated (no input pipeline), the recipe's optimizer on both
sides (``compile_model``'s ``TorchSGD``; pycls's ``construct_optimizer``).
Model: RegNetX-200MF with the stride-1 stem (pycls ``res_stem_cifar``), 32x32
inputs, 10 classes, batch 128 -- the configuration of docs/results.md.  Each
contender runs in its own fresh process, the contenders alternate for
``--rounds`` rounds, and the median images/s of each is reported with the
ratios to pycls's, all from the same run.

    python benchmarks/training_cpu.py --rounds 3 --threads 2

Contenders: ``keras-fp32`` and ``keras-bf16`` (TensorFlow backend, the
package's defaults, ``mixed_bfloat16``), ``pycls-fp32`` (PyTorch eager,
NCHW, as pycls trains).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

CONTENDERS = ("keras-fp32", "keras-bf16", "pycls-fp32")
BATCH, SIZE, CLASSES = 128, 32, 10


def keras_images_per_s(policy: str, steps: int) -> float:
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_regnet.architecture.models import RegNet
    from keras_regnet.architecture.zoo import lookup
    from keras_regnet.training import Recipe, compile_model

    keras.mixed_precision.set_global_policy(policy)
    config = dataclasses.replace(lookup("RegNetX-200MF").config, stem_stride=1)
    model = RegNet(config, input_shape=(SIZE, SIZE, 3), classes=CLASSES)
    compile_model(model, Recipe(epochs=100, batch_size=BATCH, image_size=SIZE), steps_per_epoch=steps)
    rng = np.random.default_rng(0)
    batch = (rng.uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype("float32"),
             np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, BATCH)])
    data = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)  # compile and warm up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * BATCH / (time.perf_counter() - start)


def pycls_images_per_s(steps: int) -> float:
    import torch
    import pycls.core.builders as builders
    import pycls.core.optimizer as optim
    from pycls.core.config import cfg

    cfg.MODEL.TYPE, cfg.MODEL.NUM_CLASSES = "regnet", CLASSES
    cfg.REGNET.STEM_TYPE, cfg.REGNET.STEM_W = "res_stem_cifar", 32
    cfg.REGNET.DEPTH, cfg.REGNET.W0, cfg.REGNET.WA, cfg.REGNET.WM, cfg.REGNET.GROUP_W = 13, 24, 36.44, 2.49, 8
    cfg.OPTIM.BASE_LR, cfg.OPTIM.MOMENTUM, cfg.OPTIM.NESTEROV, cfg.OPTIM.WEIGHT_DECAY = 0.1, 0.9, True, 5e-5
    model = builders.build_model().train()
    optimizer = optim.construct_optimizer(model)
    loss_fun = torch.nn.CrossEntropyLoss()
    x, y = torch.randn(BATCH, 3, SIZE, SIZE), torch.randint(0, CLASSES, (BATCH,))

    def step():
        loss = loss_fun(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - start)


def measure(contender: str, steps: int) -> float:
    if contender == "pycls-fp32":
        return pycls_images_per_s(steps)
    return keras_images_per_s({"keras-fp32": "float32", "keras-bf16": "mixed_bfloat16"}[contender], steps)


def run_fresh(contender: str, steps: int, threads: int) -> float:
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
           "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import training_cpu as t; " \
           f"import torch; torch.set_num_threads({threads}); print(t.measure({contender!r}, {steps}))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    args = p.parse_args(argv)
    results = {c: [] for c in args.contenders}
    for round_ in range(args.rounds):
        for contender in args.contenders:
            results[contender].append(run_fresh(contender, args.steps, args.threads))
            print(f"round {round_ + 1}: {contender} {results[contender][-1]:.1f} img/s", flush=True)
    medians = {c: statistics.median(v) for c, v in results.items()}
    reference = medians.get("pycls-fp32")
    print("| contender | images/s (median) | vs pycls fp32 |\n|---|---:|---:|")
    for c, v in medians.items():
        print(f"| {c} | {v:.1f} | {v / reference:.2f}x |" if reference else f"| {c} | {v:.1f} | |")
    print(json.dumps({"rounds": results, "median": medians, "threads": args.threads, "steps": args.steps}))
    return medians


if __name__ == "__main__":
    main()
