"""benchmarks/gpu_training.py, the lent-GPU experiment script, in --smoke mode on this CPU.

As on the GPU machines: KERAS_BACKEND=jax and TensorFlow unimportable in
every process the script starts (a ``sitecustomize`` on PYTHONPATH installs
a meta-path finder that fails every ``tensorflow`` import).  Checks that the
results JSON holds real, sensible values, and that the CIFAR-10 run stops,
resumes with the same command and then only reports.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_training.py")


@pytest.fixture()
def env(tmp_path):
    pytest.importorskip("jax")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import no_tensorflow\n")  # tests/no_tensorflow.py, in every process
    out = tmp_path / "out"
    return dict(
        os.environ, KERAS_BACKEND="jax", OUT=str(out),
        PYTHONPATH=os.pathsep.join([str(site), os.path.join(ROOT, "tests"), ROOT]),
        TF_CPP_MIN_LOG_LEVEL="2",
    )


def run(args, env, cwd):
    proc = subprocess.run(
        [sys.executable, SCRIPT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    return proc, proc.stdout + proc.stderr


def cifar_like_npz(path):
    """5,640 real CIFAR-10 JPEGs in the layout of cifar10_train_jpeg.npz (the embedded 5,000, then 640 again)."""
    from importlib import resources

    with resources.files("keras_regnet").joinpath("data/cifar10_subset.npz").open("rb") as f:
        d = np.load(f)
        jpeg, offsets, labels, classes = d["jpeg"], d["offsets"], d["labels"], d["classes"]
    idx = np.concatenate([np.arange(len(labels)), np.arange(640)])
    chunks = [jpeg[offsets[i] : offsets[i + 1]] for i in idx]
    np.savez(
        path, train_jpeg=np.concatenate(chunks),
        train_offsets=np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64),
        train_labels=labels[idx].astype(np.int64), classes=classes,
    )
    return str(path)


def test_throughput_smoke(tmp_path, env):
    proc, output = run(["throughput", "--smoke"], env, tmp_path)
    assert proc.returncode == 0, output[-4000:]
    report = json.loads((tmp_path / "out" / "gpu_throughput.json").read_text())  # $OUT is the default
    spec = report["spec"]
    assert (spec["model"], spec["timm_model"], spec["dtype"]) == ("RegNetX-200MF", "regnetx_002", "mixed_bfloat16")
    keras_run, *torch_runs = report["runs"]
    assert keras_run["status"] == "ok", keras_run
    assert keras_run["images_per_s"] > 0 and keras_run["images_per_s_min"] <= keras_run["images_per_s"]
    assert len(keras_run["window_s"]) == spec["windows"] and all(t > 0 for t in keras_run["window_s"])
    assert keras_run["compute_dtype"] == "bfloat16" and keras_run["platform"] == "cpu"
    assert keras_run["params_trainable"] == 2684792  # RegNetX-200MF, 1000 classes: pycls's count
    assert math.isfinite(keras_run["loss_last"]) and keras_run["loss_last"] < keras_run["loss_first"]
    assert keras_run["versions"]["keras"] and keras_run["tensorflow_imported"] is False
    assert [r["mode"] for r in torch_runs] == ["eager"]
    torch_run = torch_runs[0]
    if torch_run["status"] == "ok":  # torch and timm installed: timed on the CPU
        assert torch_run["images_per_s"] > 0 and torch_run["params_trainable"] == 2684792
        assert torch_run["tensorflow_imported"] is False
    else:  # skipped, and says why
        assert torch_run["status"] == "skipped" and any(w in torch_run["reason"] for w in ("torch", "timm", "CUDA"))
    table = output[output.index("| framework |"):]
    assert "| keras_regnet (Keras/JAX) | RegNetX-200MF |" in table


def test_cifar_smoke_stops_resumes_and_reports(tmp_path, env):
    data = cifar_like_npz(tmp_path / "cifar.npz")
    args = ["cifar100", "--smoke", "--data", data, "--output-dir", str(tmp_path / "run")]

    proc, output = run([*args, "--stop-after-epochs", "1"], env, tmp_path)
    assert proc.returncode == 10, output[-4000:]  # incomplete: run again
    assert "starting at epoch 0 of 2" in output and "STATUS: incomplete (1/2 epochs)" in output
    first = json.loads((tmp_path / "out" / "gpu_cifar10.json").read_text())
    assert (first["epochs_done"], first["done"], first["calls"]) == (1, False, 1)
    assert first["call_records"][0]["stopped_for_budget"] and first["call_records"][0]["epochs_this_call"] == 1

    proc, output = run(args, env, tmp_path)  # the same command again
    assert proc.returncode == 0, output[-4000:]
    assert "resuming after epoch 1 of 2" in output and "STATUS: done" in output
    report = json.loads((tmp_path / "out" / "gpu_cifar10.json").read_text())
    assert (report["epochs_done"], report["epochs"], report["done"], report["calls"]) == (2, 2, True, 2)
    assert (report["num_train"], report["num_validation"], report["steps_per_epoch"]) == (640, 5000, 10)
    final = report["final"]
    assert final["epoch"] == 1  # 0-based: the second epoch, continued, not restarted
    for key in ("accuracy", "val_accuracy", "val_top5_accuracy"):
        assert 0.0 <= final[key] <= 1.0
    assert final["val_top5_accuracy"] >= final["val_accuracy"] and math.isfinite(final["loss"])
    assert report["images_per_s_overall"] > 0 and report["wall_s_total"] > 0
    assert report["device"] == "cpu" and report["settings"]["mixed_precision"] == "mixed_bfloat16"
    last_call = report["call_records"][1]
    assert last_call["child_rc"] == 0 and last_call["train_result"]["tensorflow_imported"] is False
    assert last_call["train_result"]["epochs_run_this_call"] == 1
    for name in ("log.csv", "curves.png", "train.log.tail"):
        assert (tmp_path / "out" / name).is_file(), name

    proc, output = run(args, env, tmp_path)  # once done, another call only reports
    assert proc.returncode == 0 and "nothing to train" in output and "STATUS: done" in output
    assert json.loads((tmp_path / "out" / "gpu_cifar10.json").read_text())["calls"] == 2
