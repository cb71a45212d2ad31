"""Fitting the RegNet parameterisation to per-block widths: the 24 published models, generator outputs, e_fit."""

import math

import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_regnet.architecture.complexity import complexity
from keras_regnet.architecture.config import AnyNetConfig, RegNetConfig
from keras_regnet.architecture.zoo import published_models
from keras_regnet.design_space.fitting import (
    WM_RANGE,
    RegNetFit,
    block_widths_of,
    fit_error,
    fit_regnet,
    linear_error,
)

pycls_regnet = require("pycls.models.regnet")


def pycls_widths(w0, wa, wm, depth):
    """pycls 0.1.1's own per-block widths (generate_regnet)."""
    return tuple(pycls_regnet.generate_regnet(wa, w0, wm, depth)[0])


# ----------------------------------------------------------- the published models


def test_fit_regenerates_every_published_model():
    for model in published_models().values():
        cfg = model.config
        fit = fit_regnet(cfg.block_widths)
        assert fit.depth == cfg.depth and fit.w0 == cfg.w0, model.name  # block 0 is always w0 wide
        assert fit.block_widths == cfg.block_widths == pycls_widths(fit.w0, fit.wa, fit.wm, fit.depth), model.name
        assert fit.e_fit == 0.0 == fit_error(cfg.block_widths, cfg.w0, cfg.wa, cfg.wm)
        # Of all exact parameters the fit's continuous widths are the closest: at least as close as the published.
        assert fit.e_linear <= linear_error(cfg.block_widths, cfg.w0, cfg.wa) + 1e-12, model.name
        assert WM_RANGE[0] <= fit.wm <= WM_RANGE[1]
        # The fitted RegNet is the published network: same stages (pycls's table), same complexity.
        fitted = fit.to_config(cfg.group_width, cfg.bottleneck_ratio, cfg.se_ratio)
        assert (fitted.stage_depths, fitted.stage_widths) == (model.stage_depths, model.stage_widths), model.name
        assert complexity(fitted)["flops"] == model.flops, model.name


def test_fit_of_group_adjusted_widths_beats_published_parameters():
    """Widths no RegNet need generate (the published stages after the group adjustment): the grid search.

    The published parameters are one point of the searched grid's space; the
    search should do at least as well on ``e_fit`` (the adjusted widths of
    RegNetY-200MF/400MF/600MF are generated exactly).
    """
    for model in published_models().values():
        cfg = model.config
        widths = [w for d, w in zip(model.stage_depths, model.stage_widths) for _ in range(d)]
        fit = fit_regnet(widths)
        published = fit_error(widths, cfg.w0, cfg.wa, cfg.wm)
        assert fit.e_fit <= published + 1e-12, model.name
        assert fit.e_fit == pytest.approx(fit_error(widths, fit.w0, fit.wa, fit.wm), abs=1e-15)
        assert fit.e_linear == pytest.approx(linear_error(widths, fit.w0, fit.wa), abs=1e-12)


def test_widths_no_regnet_generates_get_the_least_possible_error():
    # Generated widths never decrease, so for (64, 32): |log(w'_0/64)| + |log(w'_1/32)| >= log 2, with equality
    # for w'_0 = w'_1 in [32, 64]: the least e_fit is log(2) / 2.
    fit = fit_regnet([64, 32])
    assert fit.e_fit == pytest.approx(math.log(2) / 2, rel=1e-12)
    assert fit.block_widths[0] == fit.block_widths[1]
    # A single block of width 3: the nearest width a RegNet has is 8.
    assert fit_regnet([3]).e_fit == pytest.approx(math.log(8 / 3), rel=1e-12)


# ----------------------------------------------------------- any generator output


@settings(max_examples=150, deadline=None)
@given(
    w0=st.integers(1, 32).map(lambda k: 8 * k),
    wa=st.floats(8, 256),
    wm=st.one_of(st.floats(1.5, 3.0), st.sampled_from([1.5, 3.0])),
    depth=st.integers(12, 28),
)
def test_fit_regenerates_generator_output(w0, wa, wm, depth):
    widths = pycls_widths(w0, wa, wm, depth)
    fit = fit_regnet(widths)
    assert fit.block_widths == widths == pycls_widths(fit.w0, fit.wa, fit.wm, fit.depth)
    assert fit.e_fit == 0.0
    assert fit.e_linear <= linear_error(widths, w0, wa) + 1e-12


def test_linear_widths_the_quantisation_keeps_fit_with_zero_error():
    # Equal widths: wa = 0, u_j = w_j.  Two blocks (w0, 2 w0): wa = w0 and wm = 2 give u_j = w_j.
    for widths in ([40], [64] * 10, [8, 16], [48, 96]):
        fit = fit_regnet(widths)
        assert fit.block_widths == tuple(widths)
        assert fit.e_fit == 0.0
        assert fit.e_linear == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_allclose(fit.continuous_widths, widths, rtol=1e-9)
    assert fit_regnet([64] * 10).wa == 0.0


# ----------------------------------------------------------- the two errors


def test_fit_error_is_the_mean_absolute_log_ratio_of_generated_to_given_widths():
    # (w0, wa, wm) = (24, 36.44, 2.49) generates 24, 56, 152 for three blocks (u = 24, 60.44, 96.88).
    assert pycls_widths(24, 36.44, 2.49, 3) == (24, 56, 152)
    assert fit_error([24, 56, 56], 24, 36.44, 2.49) == pytest.approx(math.log(152 / 56) / 3, rel=1e-12)
    assert fit_error([24, 56, 152], 24, 36.44, 2.49) == 0.0
    assert fit_error((48, 56, 152), 24, 36.44, 2.49) == pytest.approx(math.log(2) / 3, rel=1e-12)


def test_linear_error_is_the_mean_absolute_log_ratio_to_the_continuous_widths():
    # u = 24, 56, 88 for wa = 32.
    assert linear_error([24, 56, 56], 24, 32) == pytest.approx(math.log(88 / 56) / 3, rel=1e-12)
    assert linear_error([24, 56, 88], 24, 32) == pytest.approx(0.0, abs=1e-15)
    assert linear_error([32, 56, 88], 24, 32) == pytest.approx(math.log(32 / 24) / 3, rel=1e-12)


def test_fit_properties():
    fit = RegNetFit(depth=4, w0=24, wa=36.44, wm=2.49, e_fit=0.0, e_linear=0.0)
    np.testing.assert_allclose(fit.continuous_widths, [24, 60.44, 96.88, 133.32])
    assert fit.block_widths == pycls_widths(24, 36.44, 2.49, 4)
    cfg = fit.to_config(8, se_ratio=0.25, stem_width=16, stem_stride=1)
    assert cfg == RegNetConfig(depth=4, w0=24, wa=36.44, wm=2.49, group_width=8, se_ratio=0.25, stem_width=16,
                               stem_stride=1)


def test_numpy_input_and_block_widths_of():
    cfg = published_models()["RegNetY-800MF"].config
    assert block_widths_of(cfg) == cfg.block_widths
    assert fit_regnet(np.array(cfg.block_widths)) == fit_regnet(list(cfg.block_widths))
    anynet = AnyNetConfig((1, 2, 3), (32, 64, 160), (1, 1, 1), (16, 16, 16))
    assert block_widths_of(anynet) == (32, 64, 64, 160, 160, 160)


# ----------------------------------------------------------- bad input


BAD_WIDTHS = [
    ([], "block_widths must be a non-empty sequence"),
    ("abc", "block_widths must be a non-empty sequence"),
    (np.ones((2, 2), int), "block_widths must be a non-empty sequence"),
    ([8, 0], r"block_widths\[1\] must be a positive integer"),
    ([8, 16.0], r"block_widths\[1\] must be a positive integer"),
    ([True], r"block_widths\[0\] must be a positive integer"),
]


def test_bad_widths():
    for widths, message in BAD_WIDTHS:
        with pytest.raises(ValueError, match=message):
            fit_regnet(widths)
        with pytest.raises(ValueError, match=message):
            fit_error(widths, 8, 8.0, 2.0)


def test_bad_wm_range():
    for wm_range in [(1.0, 2.0), (3.0, 2.0), (1.5,), (1.5, math.inf), "ab", (True, 2)]:
        with pytest.raises(ValueError, match="wm_range must be a pair"):
            fit_regnet([8, 16], wm_range=wm_range)


def test_bad_parameters():
    with pytest.raises(ValueError, match="w0 must be a positive multiple of 8"):
        fit_error([24, 56], 12, 8.0, 2.0)
    with pytest.raises(ValueError, match="wa must be >= 0"):
        linear_error([24, 56], 24, -1.0)
    with pytest.raises(ValueError, match="wm must be > 1"):
        fit_error([24, 56], 24, 8.0, 1.0)
    with pytest.raises(ValueError, match="config must be a RegNetConfig or an AnyNetConfig"):
        block_widths_of("RegNetY-800MF")
    with pytest.raises(ValueError, match="group_width must be a positive integer"):
        fit_regnet([24, 56]).to_config(group_width=0)
