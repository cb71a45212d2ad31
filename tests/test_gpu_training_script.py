"""benchmarks/gpu_training.py, the lent-GPU throughput script, in --smoke mode on this CPU.

As on the GPU machines: KERAS_BACKEND=jax and TensorFlow unimportable in
every process the script starts (a ``sitecustomize`` on PYTHONPATH installs
a meta-path finder that fails every ``tensorflow`` import).  Checks that the
results JSON holds real, sensible values and that ``report`` renders it.
(The 100-epoch CIFAR-10 run is ``keras-regnet train --time-budget``; its
stop-and-resume is tested in tests/test_time_budget.py.)
"""

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import require  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_training.py")


@pytest.fixture()
def env(tmp_path):
    require("jax")
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
    assert spec["base_lr"] == pytest.approx(0.1 * 8 / 128)  # pycls's rule, from Recipe, for both frameworks
    assert f"lr {spec['base_lr']}" in keras_run["optimizer"]
    table = output[output.index("| framework |"):]
    assert "| keras_regnet (Keras/JAX) | RegNetX-200MF |" in table

    proc, output = run(["report", "--throughput", str(tmp_path / "out" / "gpu_throughput.json")], env, tmp_path)
    assert proc.returncode == 0, output[-4000:]
    assert "### Training throughput (gpu_throughput.json)" in output
    assert f"| {keras_run['images_per_s']:,.0f} |" in output


