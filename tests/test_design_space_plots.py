"""Design-space figures: what is drawn is the statistic it claims to show.

Each test reads the artists back from the returned Figure (line data, legend
texts, the shaded patch's extent) and compares them with the statistics of
:mod:`keras_regnet.design_space.analysis`, with scipy, or with pycls 0.1.1.
"""

import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import stats

from keras_regnet.design_space import analysis
from keras_regnet.design_space.plots import (
    plot_width_fit,
    plot_edfs,
    plot_error_vs_parameter,
    plot_error_vs_parameters,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEGEND = re.compile(r"^(?P<name>.+) \(n=(?P<n>\d+), min=(?P<min>-?[\d.]+), mean=(?P<mean>-?[\d.]+)\)$")


def _two_spaces(n_a=60, n_b=45, seed=0):
    rng = np.random.default_rng(seed)
    return {"AnyNetX_A": rng.normal(40, 4, n_a), "RegNetX": rng.normal(36, 2, n_b)}


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _x_extent(patch):
    """(min x, max x) of a patch in data coordinates, for a Rectangle or a Polygon."""
    xs = patch.get_path().transformed(patch.get_patch_transform()).vertices[:, 0]
    return xs.min(), xs.max()


def _good_range_patch(ax):
    (patch,) = [p for p in ax.patches if p.get_label().startswith("good range")]
    return patch


# ---------------------------------------------------------------- EDFs


def test_each_edf_curve_is_its_populations_edf_with_its_stats_in_the_legend():
    spaces = _two_spaces()
    fig = plot_edfs(spaces, title="spaces")
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 2
    for line, (name, errors) in zip(lines, spaces.items()):
        grid, fraction = analysis.edf(errors)
        np.testing.assert_array_equal(line.get_xdata(), grid)
        np.testing.assert_array_equal(line.get_ydata(), fraction)
        assert line.get_drawstyle() == "steps-post"
        assert line.get_ydata()[-1] == 1.0
    for text, (name, errors) in zip(_legend_texts(ax), spaces.items()):
        match = LEGEND.match(text)
        assert match, text
        assert match["name"] == name
        assert int(match["n"]) == len(errors)
        assert float(match["min"]) == pytest.approx(np.min(errors), abs=0.05)
        assert float(match["mean"]) == pytest.approx(np.mean(errors), abs=0.05)
    assert ax.get_title() == "spaces"
    assert ax.get_xlabel() == "error (%)"


def test_ks_distance_of_the_first_two_populations_is_written_on_the_plot():
    spaces = _two_spaces()
    spaces["third"] = np.linspace(0, 100, 7)  # only the first two are compared
    (ax,) = plot_edfs(spaces).axes
    (text,) = ax.texts
    expected = stats.ks_2samp(spaces["AnyNetX_A"], spaces["RegNetX"]).statistic
    assert text.get_text() == f"KS(AnyNetX_A, RegNetX) = {expected:.3f}"
    assert 0.3 < expected < 1  # the two spaces really differ (means 40 vs 36)


def test_one_population_has_no_ks_text():
    (ax,) = plot_edfs({"only": [3.0, 1.0, 2.0]}).axes
    assert len(ax.texts) == 0
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1 / 3, 2 / 3, 1])


def test_normalised_edfs_share_one_set_of_bin_edges():
    # A's complexities fill [0, 1), B's [0, 2]: with 2 bins over the pooled
    # range ([0, 1, 2]) all of A falls in one bin, so A's normalised EDF is
    # its plain EDF.  Bins of A's own range would split A and reweight it.
    rng = np.random.default_rng(1)
    flops_a = np.r_[rng.uniform(0, 0.3, 30), rng.uniform(0.7, 0.99, 10)]  # 30 cheap, 10 dear
    errors_a = 50 - 10 * flops_a + rng.normal(0, 1, 40)  # errors fall with flops
    flops_b = np.r_[0.0, rng.uniform(0, 2, 30), 2.0]
    errors_b = 50 - 10 * flops_b + rng.normal(0, 1, 32)
    spaces = {"A": errors_a, "B": errors_b}
    (ax,) = plot_edfs(spaces, complexity={"A": flops_a, "B": flops_b}, bins=2).axes
    line_a, line_b = ax.get_lines()
    np.testing.assert_allclose(line_a.get_ydata(), analysis.edf(errors_a)[1], rtol=0, atol=1e-12)
    _, own_bins = analysis.normalized_edf(errors_a, flops_a, 2)
    assert np.max(np.abs(own_bins - line_a.get_ydata())) > 0.05  # so the test can tell them apart
    np.testing.assert_allclose(line_b.get_ydata(), analysis.normalized_edf(errors_b, flops_b, [0, 1, 2])[1])
    assert "normalised" in ax.get_ylabel()


def test_normalised_ks_with_a_single_bin_is_the_plain_ks():
    spaces = _two_spaces(seed=3)
    flops = {name: np.full(len(e), 400e6) for name, e in spaces.items()}
    (ax,) = plot_edfs(spaces, complexity=flops, bins=[300e6, 500e6]).axes
    expected = stats.ks_2samp(spaces["AnyNetX_A"], spaces["RegNetX"]).statistic
    assert ax.texts[0].get_text() == f"KS(AnyNetX_A, RegNetX) = {expected:.3f} (normalised)"


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=30),
        min_size=1,
        max_size=3,
    )
)
def test_edf_curves_property(populations):
    spaces = {f"space {i}": errors for i, errors in enumerate(populations)}
    (ax,) = plot_edfs(spaces).axes
    for line, text, errors in zip(ax.get_lines(), _legend_texts(ax), populations):
        ys = line.get_ydata()
        assert np.all(np.diff(ys) > 0) and ys[-1] == 1.0
        np.testing.assert_array_equal(line.get_xdata(), np.unique(errors))
        assert int(LEGEND.match(text)["n"]) == len(errors)


# Each bad-input table is checked in one test: the suite's per-test Keras
# clean-up costs more than the checks themselves.
BAD_EDF_INPUTS = [
    ({"populations": {}}, "populations must be a non-empty mapping"),
    ({"populations": [[1.0, 2.0]]}, "populations must be a non-empty mapping"),
    ({"populations": {"a": []}}, r"populations\['a'\] must be a non-empty"),
    ({"populations": {"a": [1.0, np.nan]}}, r"populations\['a'\] must hold finite numbers"),
    ({"populations": {"a": [1.0, np.inf]}}, r"populations\['a'\] must hold finite numbers"),
    ({"populations": {"a": [1.0]}, "complexity": {"a": [1.0]}}, "complexity and bins go together"),
    ({"populations": {"a": [1.0]}, "bins": 3}, "complexity and bins go together"),
    ({"populations": {"a": [1.0]}, "complexity": {"b": [1.0]}, "bins": 3}, "same spaces"),
    (
        {"populations": {"a": [1.0, 2.0]}, "complexity": {"a": [1.0]}, "bins": 3},
        r"populations\['a'\] and complexity\['a'\] must have one value per model",
    ),
    ({"populations": {"a": [1.0]}, "complexity": {"a": [np.nan]}, "bins": 3}, r"complexity\['a'\]"),
    ({"populations": {"a": [1.0]}, "complexity": {"a": [1.0]}, "bins": 0}, "bins must be a positive integer"),
    ({"populations": {"a": [1.0]}, "complexity": {"a": [1.0]}, "bins": [2, 1]}, "bins must be"),
]


def test_plot_edfs_rejects_bad_input():
    for kwargs, message in BAD_EDF_INPUTS:
        with pytest.raises(ValueError, match=message):
            plot_edfs(**kwargs)


# ---------------------------------------------------------------- error vs. parameter


def _depth_population(n=200, seed=0):
    """Errors lowest around depth 16: the good range must be found there."""
    rng = np.random.default_rng(seed)
    depth = rng.integers(6, 30, n).astype(float)
    errors = 30 + np.abs(depth - 16) + rng.normal(0, 0.5, n)
    return depth, errors


def test_error_vs_parameter_shades_the_bootstrap_good_range_and_marks_the_best():
    depth, errors = _depth_population()
    (ax,) = plot_error_vs_parameter(depth, errors, name="depth").axes
    low, median, high = analysis.good_range(depth, errors)
    assert 13 <= low <= median <= high <= 19  # the range really is where the good models are
    assert _x_extent(_good_range_patch(ax)) == pytest.approx((low, high), abs=1e-12)
    (median_line,) = [line for line in ax.get_lines() if line.get_label().startswith("median")]
    np.testing.assert_array_equal(median_line.get_xdata(), [median, median])
    (scatter,) = ax.collections
    np.testing.assert_array_equal(scatter.get_offsets(), np.c_[depth, errors])
    (best,) = [line for line in ax.get_lines() if line.get_label().startswith("best")]
    i = np.argmin(errors)
    assert (best.get_xdata()[0], best.get_ydata()[0]) == (depth[i], errors[i])
    assert ax.get_xlabel() == "depth" and ax.get_xscale() == "linear"


def test_error_vs_parameter_draws_a_given_good_range_on_a_log_axis():
    w0 = np.array([16.0, 24, 48, 96, 200])
    errors = np.array([40.0, 38, 37, 39, 41])
    (ax,) = plot_error_vs_parameter(w0, errors, name="w0", good_range=(20, 48, 100), log_x=True).axes
    assert _x_extent(_good_range_patch(ax)) == pytest.approx((20, 100))
    assert ax.get_xscale() == "log"


BAD_PARAMETER_INPUTS = [
    (([], []), {"name": "d"}, "values must be a non-empty"),
    (([1.0, 2.0], [1.0]), {"name": "d"}, "values and errors must have one value per model"),
    (([1.0, 2.0], [1.0, np.nan]), {"name": "d"}, "errors must hold finite numbers"),
    (([1.0, np.inf], [1.0, 2.0]), {"name": "d"}, "values must hold finite numbers"),
    (([1.0, 2.0], [1.0, 2.0]), {"name": ""}, "name must be a non-empty string"),
    (([1.0, 2.0], [1.0, 2.0]), {"name": "d", "good_range": (3, 2, 1)}, "good_range must be"),
    (([1.0, 2.0], [1.0, 2.0]), {"name": "d", "good_range": (1, 2)}, "good_range must be"),
    (([0.0, 2.0], [1.0, 2.0]), {"name": "d", "log_x": True}, r"values \(d\) must be positive"),
]


def test_plot_error_vs_parameter_rejects_bad_input():
    for args, kwargs, message in BAD_PARAMETER_INPUTS:
        with pytest.raises(ValueError, match=message):
            plot_error_vs_parameter(*args, **kwargs)


def test_error_vs_parameters_draws_one_panel_per_parameter_with_its_own_good_range():
    depth, errors = _depth_population()
    rng = np.random.default_rng(2)
    table = {
        "depth": depth,
        "w0": rng.choice([16.0, 24, 32, 48, 64], depth.size),
        "wm": rng.uniform(1.5, 3, depth.size),
    }
    fig = plot_error_vs_parameters(table, errors, names=["wm", "depth"], log_x={"wm"})
    assert [ax.get_xlabel() for ax in fig.axes] == ["wm", "depth"]
    assert [ax.get_xscale() for ax in fig.axes] == ["log", "linear"]
    for ax in fig.axes:
        low, _, high = analysis.good_range(table[ax.get_xlabel()], errors)
        assert _x_extent(_good_range_patch(ax)) == pytest.approx((low, high), abs=1e-12)
    assert len(plot_error_vs_parameters(table, errors).axes) == 3


BAD_TABLE_INPUTS = [
    ({}, [1.0], {}, "table must be a non-empty mapping"),
    ({"d": [1.0]}, [1.0], {"names": []}, "names must list at least one"),
    ({"d": [1.0]}, [1.0], {"names": ["w0"]}, r"\['w0'\] are not"),
    ({"d": [1.0, 2.0]}, [1.0], {}, r"table\['d'\] and errors must have one value per model"),
    ({"d": [1.0]}, [np.nan], {}, "errors must hold finite numbers"),
    ({"d": [1.0]}, [1.0], {"log_x": "d"}, "log_x must be a collection of names"),
    ({"d": [-1.0]}, [1.0], {"log_x": ["d"]}, r"table\['d'\] must be positive"),
]


def test_plot_error_vs_parameters_rejects_bad_input():
    for table, errors, kwargs, message in BAD_TABLE_INPUTS:
        with pytest.raises(ValueError, match=message):
            plot_error_vs_parameters(table, errors, **kwargs)


# ---------------------------------------------------------------- block widths

# RegNetX-200MF's published parameters (pycls configs/dds_baselines).
X200MF = SimpleNamespace(w0=24, wa=36.44, wm=2.49, depth=13, e_fit=0.0123)


def test_block_widths_with_a_fit_draws_pycls_linear_and_quantised_widths():
    pycls_regnet = require("pycls.models.regnet")
    ws, _, _, ws_cont = pycls_regnet.generate_regnet(X200MF.wa, X200MF.w0, X200MF.wm, X200MF.depth)
    measured = np.array(ws) + np.arange(len(ws)) % 3  # a network not exactly on the fit
    fig = plot_width_fit(measured, X200MF, title="RegNetX-200MF")
    (ax,) = fig.axes
    data, linear, quantised = ax.get_lines()
    np.testing.assert_array_equal(data.get_xdata(), np.arange(13))
    np.testing.assert_array_equal(data.get_ydata(), measured)
    j = np.arange(13)
    np.testing.assert_allclose(linear.get_ydata(), X200MF.w0 + X200MF.wa * j, rtol=0, atol=1e-9)
    np.testing.assert_allclose(linear.get_ydata(), ws_cont, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(quantised.get_ydata(), ws)  # [24, 56, 152, 368] in stages of 1, 1, 4, 7
    texts = _legend_texts(ax)
    assert any("e_fit=0.0123" in t for t in texts)
    assert ax.get_yscale() == "log" and ax.get_title() == "RegNetX-200MF"


def test_block_widths_use_the_fits_own_quantised_widths_when_it_has_them():
    own = [32, 32, 64, 64, 64, 128]
    fit = SimpleNamespace(w0=30, wa=20.0, wm=2.0, depth=6, e_fit=0.5, block_widths=own)
    (ax,) = plot_width_fit([32, 32, 64, 64, 64, 128], fit).axes
    np.testing.assert_array_equal(ax.get_lines()[2].get_ydata(), own)
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), 30 + 20.0 * np.arange(6))


def test_block_widths_without_a_fit_draws_only_the_widths():
    (ax,) = plot_width_fit([24, 56, 152, 152]).axes
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), [24, 56, 152, 152])


BAD_BLOCK_WIDTH_INPUTS = [
    ([], None, "block_widths must be a non-empty"),
    ([24, np.nan], None, "block_widths must hold finite numbers"),
    ([24, 0], None, "block_widths must be positive"),
    ([24], SimpleNamespace(w0=24, wa=1.0, wm=2.0, depth=1), r"fit must have attributes .* lacks \['e_fit'\]"),
    ([24], SimpleNamespace(w0=24, wa=1.0, wm=1.0, depth=1, e_fit=0.1), "fit.wm must be a finite number > 1"),
    ([24], SimpleNamespace(w0=0, wa=1.0, wm=2.0, depth=1, e_fit=0.1), "fit.w0 must be a finite number > 0"),
    ([24], SimpleNamespace(w0=24, wa=-1.0, wm=2.0, depth=1, e_fit=0.1), "fit.wa must be"),
    ([24], SimpleNamespace(w0=24, wa=1.0, wm=2.0, depth=1.5, e_fit=0.1), "fit.depth must be a positive integer"),
    ([24], SimpleNamespace(w0=24, wa=1.0, wm=2.0, depth=1, e_fit=np.nan), "fit.e_fit must be a finite number"),
]


def test_plot_block_widths_rejects_bad_input():
    for widths, fit, message in BAD_BLOCK_WIDTH_INPUTS:
        with pytest.raises(ValueError, match=message):
            plot_width_fit(widths, fit)


# ---------------------------------------------------------------- saving


def _assert_only_png(directory, name, figure):
    assert os.listdir(directory) == [name]  # no temporary file left beside it
    with open(directory / name, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    with Image.open(directory / name) as image:
        image.verify()
    with Image.open(directory / name) as image:
        width, height = figure.get_size_inches() * figure.dpi
        assert image.size == (round(width), round(height))


def test_every_plot_saves_a_valid_png_atomically(tmp_path):
    depth, errors = _depth_population(n=40)
    cases = {
        "edfs.png": lambda p: plot_edfs(_two_spaces(), p),
        "parameter.png": lambda p: plot_error_vs_parameter(depth, errors, p, name="depth"),
        "parameters.png": lambda p: plot_error_vs_parameters({"depth": depth, "x": errors}, errors, p),
        "widths.png": lambda p: plot_width_fit([24, 56, 152], X200MF, p),
    }
    for name, draw in cases.items():
        directory = tmp_path / name.replace(".png", "")
        figure = draw(str(directory / name))  # the directory does not exist yet
        _assert_only_png(directory, name, figure)


def test_a_failed_save_leaves_the_previous_png_and_no_temporary_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "edfs.png"
    figure = plot_edfs(_two_spaces(), str(path))
    before = path.read_bytes()

    def broken_savefig(self, target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(PNG_SIGNATURE)  # half a file, then the disk fills up
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_edfs({"other": [1.0, 2.0]}, str(path))
    assert path.read_bytes() == before
    _assert_only_png(tmp_path, "edfs.png", figure)
