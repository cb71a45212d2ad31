"""The keras-regnet command line."""

import subprocess
import sys

import pytest

from keras_regnet.cli import main as cli
from keras_regnet import published_models


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
    pytest.importorskip("matplotlib")
    out = tmp_path / "w.png"
    assert cli.main(["plot", "RegNetX-200MF", "RegNetY-800MF", "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(tmp_path.glob("*.tmp-*"))


def test_convert_pycls_checkpoint(tmp_path):
    import numpy as np

    import keras_regnet

    pr = pytest.importorskip("pycls_reference")
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
