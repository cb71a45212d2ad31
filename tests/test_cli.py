"""The keras-regnet command line: its commands, and that it starts quietly and quickly."""

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import require

from keras_regnet import cli, published_models


def test_complexity_of_published_model(capsys):
    assert cli.main(["complexity", "RegNetY-800MF"]) == 0
    out = capsys.readouterr().out
    pub = published_models()["RegNetY-800MF"]
    assert f"flops {pub.flops:,}" in out and f"params {pub.params:,}" in out and f"acts {pub.acts:,}" in out


def test_complexity_of_custom_config(capsys):
    args = ["complexity", "--depth", "13", "--w0", "24", "--wa", "36.44", "--wm", "2.49", "--group-width", "8"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "widths [24, 56, 152, 368]" in out and "params 2,684,792" in out  # = RegNetX-200MF


def test_bad_inputs_are_clear(capsys):
    assert cli.main(["complexity", "RegNetZ-1GF"]) == 2
    assert "Unknown RegNet model name='RegNetZ-1GF'" in capsys.readouterr().err
    assert cli.main(["complexity", "--depth", "13", "--w0", "20", "--wa", "3", "--wm", "2", "--group-width", "8"]) == 2
    assert "w0 must be a positive multiple of 8; got w0=20" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["complexity", "--depth", "13"])


def test_zoo_table_and_markdown(tmp_path):
    md = tmp_path / "zoo.md"
    proc = subprocess.run(
        [sys.executable, "-m", "keras_regnet.cli", "zoo", "--markdown", str(md)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "24/24 models equal pycls's published numbers." in proc.stdout
    text = md.read_text()
    assert text.count("| yes |") == 24 and "| RegNetY-32GF |" in text


def test_summary(capsys):
    assert cli.main(["summary", "RegNetX-200MF", "--resolution", "64"]) == 0
    assert "s4_b7_out" in capsys.readouterr().out


def test_plot_writes_png(tmp_path):
    require("matplotlib")
    out = tmp_path / "w.png"
    assert cli.main(["plot", "RegNetX-200MF", "RegNetY-800MF", "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(tmp_path.glob("*.tmp-*"))


def test_convert_pycls_checkpoint(tmp_path):
    import numpy as np

    import keras_regnet

    pr = require("pycls_reference")
    torch_model = pr.pycls_model(published_models()["RegNetY-200MF"].config, seed=2)
    src = tmp_path / "y200.pyth"
    pr.torch.save({"model_state": torch_model.state_dict()}, src, _use_new_zipfile_serialization=False)
    dst = tmp_path / "y200.weights.h5"
    assert cli.main(["convert", str(src), str(dst), "--model", "RegNetY-200MF"]) == 0
    model = keras_regnet.RegNetY200MF(weights=str(dst), classifier_activation=None)
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(model.predict_on_batch(x), pr.pycls_logits(torch_model, x), rtol=1e-4, atol=1e-4)
    assert cli.main(["convert", str(src), str(tmp_path / "out.h5"), "--model", "RegNetY-200MF"]) == 2
    assert cli.main(["convert", str(src), str(tmp_path / "x.weights.h5"), "--model", "RegNetX-200MF"]) == 2


def test_zoo_table_is_the_published_check():
    from keras_regnet.architecture.published import compare_with_published, format_markdown
    from keras_regnet.cli.main import format_zoo_markdown, zoo_table  # the old names still import

    assert zoo_table is compare_with_published and format_zoo_markdown is format_markdown
    rows = compare_with_published()
    assert [r["name"] for r in rows] == list(published_models()) and all(r["matches"] for r in rows)
    x200 = rows[0]
    assert (x200["flops"], x200["params"], x200["acts"]) == (199_040_872, 2_684_792, 2_164_056)
    assert x200["stage_widths"] == (24, 56, 152, 368) and "keras_params" not in x200
    assert format_markdown(rows).splitlines()[2] == (
        "| RegNetX-200MF | [1, 1, 4, 7] | [24, 56, 152, 368] | [8, 8, 8, 8] | 0.199 | 2,684,792 | 2,164,056 | 31.09 | yes |"
    )


class FakeTrain:
    """Stands in for training.train: records each call's arguments, raises ``raising`` if set."""

    def __init__(self):
        self.calls, self.raising, self.results = [], None, {}

    def __call__(self, model, **kwargs):
        self.calls.append(dict(kwargs, model=model))
        if self.raising is not None:
            raise self.raising
        return {"model": model, "final": {"val_accuracy": 0.25, "val_top5_accuracy": 0.75}, **self.results}


@pytest.fixture
def fake_train(monkeypatch):
    import keras_regnet.training

    fake = FakeTrain()
    monkeypatch.setattr(keras_regnet.training, "train", fake)  # what the train command calls
    return fake


def test_train_options_reach_train(fake_train, capsys):
    assert cli.main(["train", "--time-budget", "90", "--output-dir", "out"]) == 0
    call = fake_train.calls[-1]
    assert call["time_budget_s"] == 90.0 and call["output_dir"] == "out" and call["data"] == "embedded"
    recipe = call["recipe"]
    # The embedded default: 15 epochs of batch 64 at 32x32, and pycls's learning rate scaled to
    # that batch by the recipe's rule (0.8 at 1024 -> 0.05).
    assert (recipe.epochs, recipe.batch_size, recipe.image_size, recipe.warmup_epochs) == (15, 64, 32, 2)
    assert recipe.lr == pytest.approx(0.05)
    assert "validation accuracy 0.2500 (top-5 0.7500)" in capsys.readouterr().out

    assert cli.main(["train", "--batch-size", "32", "--optimizer", "adamw", "--ema", "0.999"]) == 0
    recipe = fake_train.calls[-1]["recipe"]
    assert recipe.lr == pytest.approx(0.025) and recipe.optimizer == "adamw" and recipe.ema_decay == 0.999
    assert fake_train.calls[-1]["time_budget_s"] is None
    assert cli.main(["train", "--data", "imagenet2012", "--lr", "0.3"]) == 0
    recipe = fake_train.calls[-1]["recipe"]
    assert (recipe.epochs, recipe.batch_size, recipe.image_size, recipe.lr) == (100, 1024, 224, 0.3)


def test_train_says_how_to_continue_a_run_stopped_by_its_time_budget(fake_train, capsys):
    fake_train.results = {"complete": False, "epochs_done": 4, "recipe": {"epochs": 15}}
    assert cli.main(["train", "--time-budget", "60"]) == 0
    assert "after 4 of 15 epochs; run the same command again to continue" in capsys.readouterr().out
    fake_train.results = {"complete": True, "epochs_done": 15, "recipe": {"epochs": 15}}
    assert cli.main(["train", "--time-budget", "60"]) == 0
    assert "run the same command again" not in capsys.readouterr().out


def test_train_exit_statuses(fake_train, capsys):
    from keras_regnet.training import TrainingDiverged

    fake_train.raising = TrainingDiverged("training diverged: loss is nan at epoch 3")
    assert cli.main(["train"]) == 3
    assert capsys.readouterr().err == "keras-regnet: training diverged: loss is nan at epoch 3\n"
    fake_train.raising = KeyboardInterrupt()
    assert cli.main(["train"]) == 130
    assert capsys.readouterr().err == "keras-regnet: interrupted\n"
    fake_train.raising = RuntimeError("out of memory")
    assert cli.main(["train"]) == 1
    assert "keras-regnet: error: out of memory (RuntimeError; run again" in capsys.readouterr().err


# --help and the commands that need no model must not start Keras (several seconds with TensorFlow).
LOADED = """
import sys
from keras_regnet.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print({m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules} or "none")
"""


@pytest.mark.parametrize(
    "args", [["--help"], ["train", "--help"], ["export", "-h"], ["zoo", "--help"], ["complexity", "RegNetX-200MF"]]
)
def test_help_starts_no_backend(args, tmp_path):
    proc = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "keras-regnet" in proc.stdout or "RegNetX-200MF" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "none", proc.stdout.splitlines()[-1]


# A line of a native (absl / TensorFlow C++) log, e.g. "I0000 00:00:1795465877.517785   24221
# cudart_stub.cc:31] Could not find cuda drivers ...", or absl's banner and TensorFlow's CPU notice.
NATIVE_LOG = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]|absl::InitializeLog|rebuild TensorFlow")


def native_log_lines(text):
    return [line for line in text.splitlines() if NATIVE_LOG.search(line)]


def run_quietly(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, **kwargs)


def test_native_start_up_lines_are_hidden_unless_verbose():
    script = shutil.which("keras-regnet")
    assert script, "the keras-regnet console script is not installed (pip install -e .)"
    # What TensorFlow prints on this machine when imported and asked for its devices.
    reference = run_quietly([sys.executable, "-c", "import tensorflow as tf; tf.config.list_physical_devices()"])
    printed = native_log_lines(reference.stderr)

    quiet = run_quietly([script, "summary", "RegNetX-200MF", "--resolution", "32"])
    assert quiet.returncode == 0 and "s4_b7_out" in quiet.stdout, quiet.stderr[-3000:]
    assert native_log_lines(quiet.stderr) == [], quiet.stderr[-3000:]
    complexity = run_quietly([script, "complexity", "RegNetX-200MF"])
    assert complexity.returncode == 0 and complexity.stderr == ""

    verbose = run_quietly([script, "summary", "RegNetX-200MF", "--resolution", "32", "--verbose"])
    assert verbose.returncode == 0 and "s4_b7_out" in verbose.stdout
    # The same messages (time stamps and thread ids aside); building the model may add more.
    shown = {line.split("]", 1)[-1] for line in native_log_lines(verbose.stderr)}
    assert {line.split("]", 1)[-1] for line in printed} <= shown, verbose.stderr[-3000:]


QUIET_BLOCK = """
import os, sys, warnings
from keras_regnet.cli.quiet import native_stderr_silenced

with native_stderr_silenced():
    os.write(2, b"native line\\n")
    print("python line", file=sys.stderr)
    warnings.warn("python warning")
os.write(2, b"native after\\n")
raise SystemExit("our error")
"""


def test_silencing_native_output_keeps_python_output():
    proc = subprocess.run([sys.executable, "-c", QUIET_BLOCK], capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line not in native_log_lines(proc.stderr)]
    assert "native line" not in lines and lines[0] == "python line" and "UserWarning: python warning" in lines[1]
    assert lines[-2:] == ["native after", "our error"] and proc.returncode == 1
