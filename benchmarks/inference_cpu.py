"""CPU inference throughput of RegNetY-800MF against peers, in one run.

    python benchmarks/inference_cpu.py [--batch 32] [--rounds 10] [--json out.json]

Measures images/s of ``predict_on_batch`` at 224x224, float32, TensorFlow
backend, for:

* keras_regnet, the model exactly as ``get_model`` returns it (default path);
* keras_regnet with Keras's stock grouped convolution (per-op XLA), to show
  what ``GroupedConv2D`` buys;
* keras_regnet with ``jit_compile=True`` (XLA over the whole forward);
* ``tf_keras.applications.RegNetY008`` and ``kimm.models.RegNetY008`` (same
  architecture), when installed (``pip install -e .[bench]``);
* pycls's RegNetY-800MF in PyTorch (channels_last, ``torch.inference_mode``),
  when torch and pycls are installed.

Every contender runs one batch per round, round-robin, so machine drift hits
all alike; the median over rounds is reported.  Also times building
RegNetY-32GF.  Ratios are against tf-keras measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402


def _contenders(batch):
    import keras

    import keras_regnet
    from keras_regnet.architecture.layers import grouped_conv_kernel_scope

    out = {}
    out["keras_regnet (default)"] = keras_regnet.get_model("RegNetY-800MF").predict_on_batch

    # Keras's stock dispatch: grouped convs each compiled with XLA on CPU.
    # The kernel is fixed when predict_on_batch is traced, so trace inside.
    stock = keras_regnet.get_model("RegNetY-800MF", name="stock_grouped_conv")
    with grouped_conv_kernel_scope("keras"):
        stock.predict_on_batch(np.zeros((batch, 224, 224, 3), "float32"))
    out["keras_regnet (Keras stock grouped conv)"] = stock.predict_on_batch

    xla = keras_regnet.get_model("RegNetY-800MF", name="xla")
    xla.jit_compile = True
    out["keras_regnet (jit_compile=True)"] = xla.predict_on_batch

    try:
        import tf_keras

        out["tf_keras.applications.RegNetY008"] = tf_keras.applications.RegNetY008(weights=None).predict_on_batch
    except ImportError:
        print("tf-keras not installed: skipped", file=sys.stderr)
    try:
        import kimm

        out["kimm.models.RegNetY008"] = kimm.models.RegNetY008(weights=None).predict_on_batch
    except ImportError:
        print("kimm not installed: skipped", file=sys.stderr)
    try:
        out["pycls (PyTorch, channels_last)"] = _pycls_predict()
    except ImportError:
        print("torch/pycls not installed: skipped", file=sys.stderr)
    del keras
    return out


def _pycls_predict():
    import torch
    from pycls.core.config import cfg
    from pycls.models.regnet import RegNet

    from keras_regnet.architecture.zoo import lookup

    c = lookup("RegNetY-800MF").config
    cfg.REGNET.DEPTH, cfg.REGNET.W0, cfg.REGNET.WA, cfg.REGNET.WM = c.depth, c.w0, c.wa, c.wm
    cfg.REGNET.GROUP_W, cfg.REGNET.SE_ON, cfg.REGNET.SE_R = c.group_width, True, c.se_ratio
    model = RegNet().eval().to(memory_format=torch.channels_last)

    def predict(x):
        with torch.inference_mode():
            t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            return model(t).numpy()

    return predict


def build_time(name="RegNetY-32GF", repeats=2):
    import keras

    import keras_regnet

    times = []
    for _ in range(repeats):
        keras.backend.clear_session()
        t = time.perf_counter()
        keras_regnet.get_model(name)
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args(argv)

    x = np.random.default_rng(0).uniform(0, 255, (args.batch, 224, 224, 3)).astype("float32")
    seconds = median_seconds(_contenders(args.batch), x, args.rounds)
    ips = {k: args.batch / v for k, v in seconds.items()}
    base = ips.get("tf_keras.applications.RegNetY008")
    print(f"RegNetY-800MF, batch {args.batch}, 224x224 float32, median of {args.rounds} rounds")
    print("| contender | images/s | vs tf-keras |")
    print("|---|---:|---:|")
    for k, v in ips.items():
        print(f"| {k} | {v:.1f} | {v / base:.2f}x |" if base else f"| {k} | {v:.1f} | - |")
    build_s = build_time()
    print(f"Build time of RegNetY-32GF (get_model, best of 2): {build_s:.2f} s")
    if args.json:
        import keras
        import tensorflow as tf

        with open(args.json, "w") as f:
            json.dump(
                {
                    "images_per_s": ips,
                    "build_s_regnety32gf": build_s,
                    "batch": args.batch,
                    "rounds": args.rounds,
                    "machine": {"cpus": os.cpu_count(), "processor": platform.processor()},
                    "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
