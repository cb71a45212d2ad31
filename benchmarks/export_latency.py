"""CPU latency of RegNetY-800MF in each export format, in one run.

    python benchmarks/export_latency.py [--batches 1 32] [--rounds 20] [--json out.json]

Exports one RegNetY-800MF (random weights; numerics do not change speed)
with :mod:`keras_regnet.export` and times, at 224x224 float32:

* Keras (TensorFlow backend), ``predict_on_batch`` on the model itself;
* the SavedModel's ``serving_default`` signature (``tf.saved_model.load``),
  what TF Serving runs;
* TFLite float32, float16 weights and dynamic-range int8 (the TF Lite
  interpreter with its default XNNPACK delegate, one thread per core);
* ONNX Runtime (CPU execution provider, default threads).

Medians over round-robin rounds (``benchmarks/timing.py``); ratios are
against Keras measured in the same run.  Also checks each format's output
against Keras (max relative error) so a fast wrong answer cannot hide.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402


def _tflite_runner(path, batch):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=path, num_threads=os.cpu_count())
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], [batch, 224, 224, 3])
    interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]["index"]

    def run(x):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return run


def contenders(model, workdir, batch):
    import onnxruntime as ort
    import tensorflow as tf

    from keras_regnet import export as ex

    out = {"Keras predict_on_batch": model.predict_on_batch}
    serving = tf.saved_model.load(ex.export_saved_model(model, os.path.join(workdir, "saved_model"), version=1, overwrite=True))
    signature = serving.signatures["serving_default"]
    out["SavedModel serving_default"] = lambda x: signature(images=tf.constant(x))["predictions"].numpy()
    for quantization in (None, "float16", "dynamic_int8"):
        path = os.path.join(workdir, f"model_{quantization or 'float32'}.tflite")
        if not os.path.exists(path):
            ex.export_tflite(model, path, quantization=quantization)
        out[f"TFLite {quantization or 'float32'}"] = _tflite_runner(path, batch)
    onnx_path = os.path.join(workdir, "model.onnx")
    if not os.path.exists(onnx_path):
        ex.export_onnx(model, onnx_path)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out["ONNX Runtime"] = lambda x: session.run(None, {name: x})[0]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    import keras_regnet

    keras.utils.set_random_seed(0)
    model = keras_regnet.get_model("RegNetY-800MF")
    results, sizes = {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        for batch in args.batches:
            x = np.random.default_rng(batch).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
            runners = contenders(model, workdir, batch)
            reference = np.asarray(model.predict_on_batch(x))
            errors = {k: float(np.max(np.abs(np.asarray(f(x)) - reference)) / np.max(np.abs(reference))) for k, f in runners.items()}
            seconds = median_seconds(runners, x, args.rounds)
            results[batch] = {k: {"ms": 1000 * s, "images_per_s": batch / s, "max_rel_err_vs_keras": errors[k]} for k, s in seconds.items()}
            base = seconds["Keras predict_on_batch"]
            print(f"\nRegNetY-800MF, batch {batch}, 224x224 float32 input, median of {args.rounds} rounds, {os.cpu_count()} CPU cores")
            print("| format | latency (ms) | images/s | speed vs Keras | max rel. error vs Keras |")
            print("|---|---:|---:|---:|---:|")
            for k, s in seconds.items():
                print(f"| {k} | {1000 * s:.1f} | {batch / s:.1f} | {base / s:.2f}x | {errors[k]:.1e} |")
        sizes = {f: os.path.getsize(os.path.join(workdir, f)) for f in sorted(os.listdir(workdir)) if "." in f}
        print("\nfile sizes (MB):", {f: round(n / 1e6, 1) for f, n in sizes.items()})
    if args.json:
        import onnxruntime

        with open(args.json, "w") as f:
            json.dump(
                {
                    "model": "RegNetY-800MF",
                    "rounds": args.rounds,
                    "results_by_batch": results,
                    "file_bytes": sizes,
                    "machine": {"cpus": os.cpu_count(), "processor": platform.processor()},
                    "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "onnxruntime": onnxruntime.__version__},
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
