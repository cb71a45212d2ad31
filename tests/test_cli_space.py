"""``keras-regnet space sample|sweep|analyze|fit|scale``: what each prints and writes, and bad input refused first."""

import json

import numpy as np
import pytest

from keras_regnet import cli, published_models
from keras_regnet.architecture.complexity import complexity
from keras_regnet.design_space import fit_to_budget, sample, scale_model
from keras_regnet.design_space.sweep import SweepSpec, config_from_record, config_record, empty_results


def test_sample_prints_and_writes_the_sampled_networks(tmp_path, capsys):
    out = tmp_path / "nets.json"
    args = ["space", "sample", "RegNetY", "--n", "4", "--flops", "150e6", "250e6", "--seed", "5", "--output", str(out)]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = sample("RegNetY", 4, 5, flops_range=(150e6, 250e6))
    written = json.loads(out.read_text())
    assert [config_from_record(r["config"]) for r in written["networks"]] == expected
    assert [r["complexity"] for r in written["networks"]] == [complexity(c) for c in expected]
    assert len(lines) == 4 and all(f"{complexity(c)['flops'] / 1e6:9.2f}M" in line for c, line in zip(expected, lines))


def test_fit_regenerates_a_published_model(tmp_path, capsys):
    png = tmp_path / "fit.png"
    assert cli.main(["space", "fit", "--model", "RegNetX-3.2GF", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    cfg = published_models()["RegNetX-3.2GF"].config
    assert f"depth={cfg.depth} w0={cfg.w0}" in out and "e_fit=0.0000" in out and "widths equal" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("method", ["compound", "tinynet"])
def test_scale_prints_the_scaled_network_and_its_exact_flops(method, capsys):
    assert cli.main(["space", "scale", "RegNetY-800MF", "--flops", "200e6", "--method", method]) == 0
    out = capsys.readouterr().out
    cfg = published_models()["RegNetY-800MF"].config
    if method == "compound":
        scaled = scale_model(cfg, 200e6 / complexity(cfg)["flops"])
    else:
        scaled = fit_to_budget(cfg, 200e6)
        assert scaled.flops <= 200e6
    assert f"exact flops {scaled.flops:,}" in out and f"resolution {scaled.resolution}" in out
    assert f"widths {list(scaled.config.widths)}" in out


def _fake_sweep(path, space, errors, seed):
    spec = SweepSpec(space, n=len(errors), seed=seed, flops_range=(2e6, 4e6))
    results = empty_results(spec)
    configs = sample(space, len(errors), seed, flops_range=(2e6, 4e6), resolution=32, stem_stride=1, num_classes=10)
    for i, (cfg, error) in enumerate(zip(configs, errors)):
        results["trials"].append({"id": i, "config": config_record(cfg), "complexity": complexity(cfg, 32, 10),
                                  "epoch_errors": [error], "error": error, "wall_s": 1.0})
    path.write_text(json.dumps(results))
    return str(path)


def test_analyze_writes_edfs_ks_and_good_ranges(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = _fake_sweep(tmp_path / "a.json", "AnyNetX_A", list(rng.uniform(40, 80, 30).round(2)), 1)
    r = _fake_sweep(tmp_path / "r.json", "RegNetX", list(rng.uniform(30, 50, 30).round(2)), 2)
    out = tmp_path / "analysis"
    assert cli.main(["space", "analyze", a, r, "--out", str(out), "--normalize-bins", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    errors = {k: np.array([t["error"] for t in json.load(open(p))["trials"]]) for k, p in (("AnyNetX_A", a), ("RegNetX", r))}
    from scipy import stats

    assert summary["ks"]["AnyNetX_A vs RegNetX"] == pytest.approx(stats.ks_2samp(errors["AnyNetX_A"], errors["RegNetX"]).statistic)
    assert summary["spaces"]["RegNetX"]["min_error"] == pytest.approx(errors["RegNetX"].min())
    assert summary["spaces"]["AnyNetX_A"]["expected_best_of_k"]["1"] == pytest.approx(errors["AnyNetX_A"].mean())
    assert set(summary["spaces"]["RegNetX"]["good_ranges"]) == {"depth", "w0", "wa", "wm", "group_width", "flops"}
    for name in ("edf.png", "edf_normalized.png", "AnyNetX_A_parameters.png", "RegNetX_parameters.png", "summary.md"):
        assert (out / name).stat().st_size > 0
    assert "| RegNetX | 30 |" in capsys.readouterr().out


@pytest.mark.parametrize("args, fragment", [
    (["space", "sample", "AnyNetX_Q"], "space must be one of AnyNetX_A"),
    (["space", "sample", "AnyNetX_A", "--flops", "2e6", "1e6"], "flops_range must be None or a non-empty band"),
    (["space", "sample", "AnyNetX_A", "--flops", "1", "2"], "No AnyNetX_A network has flops in flops_range"),
    (["space", "sample", "RegNetX", "--n", "0"], "n must be a positive integer"),
    (["space", "sweep", "AnyNetX_A", "--n", "2", "--epochs", "0", "--out", "OUT"], "epochs must be a positive integer"),
    (["space", "sweep", "AnyNetX_A", "AnyNetX_A", "--n", "2", "--out", "OUT"], "give each space once; repeated: AnyNetX_A"),
    (["space", "sweep", "AnyNetX_A", "--n", "2", "--flops", "1", "2", "--out", "OUT"], "No AnyNetX_A network has flops"),
    (["space", "analyze", "MISSING.json", "--out", "OUT"], "MISSING.json"),
    (["space", "fit", "--widths", "24", "0", "56"], "block_widths"),
    (["space", "fit", "--model", "RegNetQ-1GF"], "Unknown RegNet model name"),
    (["space", "scale", "RegNetY-800MF", "--flops", "0"], "--flops must be a number of flops > 0"),
])
def test_bad_input_is_refused_before_any_work(args, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        status = cli.main(args)
    except SystemExit as e:  # argparse's parser.error
        status = e.code
    assert status == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "OUT").exists() or not any((tmp_path / "OUT").rglob("*.json"))
