"""Model scaling: pycls's compound scaling rule (exponents, rounding, flops) and the TinyNet-style budget fit."""

import dataclasses
import math

import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_regnet.architecture.complexity import complexity
from keras_regnet.architecture.config import (
    AnyNetConfig,
    adjust_block_compatibility,
    anynet_from_regnet,
)
from keras_regnet.architecture.zoo import published_models
from keras_regnet.design_space import scaling
from keras_regnet.design_space.scaling import (
    FAST_COMPOUND_SCALING,
    ScaledModel,
    apply_multipliers,
    fit_to_budget,
    scale_model,
    scale_resolution,
    scaling_factors,
)

MODELS = published_models()


def pycls_flops(config: AnyNetConfig, resolution: int) -> int:
    """pycls 0.1.1's own count (AnyNet.complexity), its global cfg restored afterwards."""
    pr = require("pycls_reference")
    saved = pr.pycls_config.cfg.clone()
    try:
        return pr.pycls_complexity(config, resolution, 1000)["flops"]
    finally:
        pr.pycls_config.cfg.merge_from_other_cfg(saved)


# ----------------------------------------------------------- the rule's exponents


def test_fast_compound_scaling_exponents():
    # Dollar et al. 2021: fast compound scaling with alpha = 0.8 scales depth by s^((1-a)/2), width by s^(a/2),
    # resolution by s^((1-a)/4); pycls names it "d1_w8_g8_r1" and scales group widths as widths.
    assert FAST_COMPOUND_SCALING == "d1_w8_g8_r1"
    for s in (0.25, 0.5, 2.0, 4.0, 16.0):
        f = scaling_factors(FAST_COMPOUND_SCALING, s)
        assert (f.depth, f.width, f.group_width, f.resolution) == pytest.approx(
            (s ** 0.1, s ** 0.4, s ** 0.4, s ** 0.05), rel=1e-12)


def test_letter_types():
    # pycls: "dw" is "d1_w1_g0_r0"; flops scale as d * w^2 * r^2; g alone scales group widths by s.
    assert scaling_factors("dw", 3.0) == scaling_factors("d1_w1_g0_r0", 3.0)
    assert scaling_factors("d", 4.0) == scaling.ScalingFactors(4.0, 1.0, 1.0, 1.0)
    assert scaling_factors("w", 4.0) == scaling.ScalingFactors(1.0, 2.0, 1.0, 1.0)
    assert scaling_factors("r", 4.0) == scaling.ScalingFactors(1.0, 1.0, 1.0, 2.0)
    assert scaling_factors("g", 4.0) == scaling.ScalingFactors(1.0, 1.0, 4.0, 1.0)
    dwr = scaling_factors("dwr", 8.0)
    assert (dwr.depth, dwr.width, dwr.resolution) == pytest.approx((2.0, 2 ** 0.5, 2 ** 0.5), rel=1e-12)


weights = st.integers(0, 9)


@settings(max_examples=200, deadline=None)
@given(d=weights, w=weights, g=weights, r=weights, factor=st.floats(0.05, 50))
def test_weights_split_the_flop_factor(d, w, g, r, factor):
    if d + w + r == 0:
        return  # only g (or nothing): covered by test_letter_types
    f = scaling_factors(f"d{d}_w{w}_g{g}_r{r}", factor)
    assert f.depth * f.width ** 2 * f.resolution ** 2 == pytest.approx(factor, rel=1e-12)
    total, log_factor = d + w + r, math.log(factor)
    # Each dimension's share of the log flop factor is its weight's share (g rides along with w's scale).
    assert math.log(f.depth) == pytest.approx(d / total * log_factor, abs=1e-12)
    assert 2 * math.log(f.width) == pytest.approx(w / total * log_factor, abs=1e-12)
    assert 2 * math.log(f.group_width) == pytest.approx(g / total * log_factor, abs=1e-12)
    assert 2 * math.log(f.resolution) == pytest.approx(r / total * log_factor, abs=1e-12)


# ----------------------------------------------------------- pycls's rounding


def test_rounding_follows_pycls_scaler():
    # Half to even (Python's round), as pycls: depth 2.5 -> 2, 1.5 -> 2, 0.5 -> 0 -> 1; width/8 2.5 -> 2, 1.5 -> 2.
    base = AnyNetConfig((5, 3, 1, 2), (40, 24, 80, 8), (1, 1, 1, 1), (8, 8, 8, 8))
    half = apply_multipliers(base, depth=0.5, width=0.5)
    assert half.depths == (2, 2, 1, 1)
    assert half.widths == (16, 16, 40, 8)
    # Group widths land on pycls's lattice {1, 2, 4, 8k}: 3, 5 -> 4; 6 -> 8; 12 -> 16; 20 -> 16 (2.5 -> 2); 28 -> 32.
    grouped = AnyNetConfig((1,) * 6, (240,) * 5 + (224,), (1,) * 6, (3, 5, 6, 12, 20, 28))
    assert apply_multipliers(grouped).group_widths == (4, 4, 8, 16, 16, 32)
    assert [scale_resolution(r, m) for r, m in [(226, 1.0), (230, 1.0), (224, 2 ** 0.05), (224, 0.5)]] == [
        224, 232, 232, 112]


def test_factor_one_is_the_identity():
    for model in MODELS.values():
        for scaling_type in (FAST_COMPOUND_SCALING, "dwgr", "d2_w1", "r"):
            scaled = scale_model(model.config, 1.0, scaling_type)
            assert scaled.config == anynet_from_regnet(model.config)
            assert (scaled.resolution, scaled.flops) == (224, model.flops)


# ----------------------------------------------------------- flops of scaled models


GROUP_LATTICE = [1, 2, 4] + [8 * k for k in range(1, 400)]


def one_step(config: AnyNetConfig, resolution: int, direction: int) -> int:
    """Flops with every rounded quantity one quantum further (direction +1) or back (-1).

    One block per stage, 8 channels, one step of the group-width lattice,
    4 pixels: the quantisation steps of pycls's scaler.
    """
    depths = [max(1, d + direction) for d in config.depths]
    widths = [max(8, w + 8 * direction) for w in config.widths]
    groups = [GROUP_LATTICE[max(0, GROUP_LATTICE.index(g) + direction)] for g in config.group_widths]
    widths, groups = adjust_block_compatibility(widths, list(config.bottleneck_ratios), groups)
    moved = dataclasses.replace(config, depths=tuple(depths), widths=tuple(widths), group_widths=tuple(groups))
    return complexity(moved, resolution + 4 * direction)["flops"]


# Types whose grouped convolutions grow as w^2 (g scaled with w, or w not scaled): their flops follow d w^2 r^2.
FLOP_EXACT_TYPES = (FAST_COMPOUND_SCALING, "dwgr", "d1_w1_g1", "w1_g1", "d", "r", "dr")


def test_scaled_flops_within_one_quantisation_step_of_the_factor():
    """Scaling up by f: f x the base flops lies between the networks one quantum below and above the result.

    (Shrinking hits the floors, 1 block and 8 channels per stage, and the
    unscaled stem and head weigh more, so there only the result's own
    flops are bracketed.)
    """
    for model in MODELS.values():
        for scaling_type in FLOP_EXACT_TYPES:
            for factor in (0.25, 0.5, 1.5, 2.0, 4.0, 8.0):
                scaled = scale_model(model.config, factor, scaling_type)
                below, above = (one_step(scaled.config, scaled.resolution, d) for d in (-1, 1))
                assert below <= scaled.flops <= above
                assert scaled.flops == complexity(scaled.config, scaled.resolution)["flops"]
                if factor > 1:
                    assert below < factor * model.flops < above, (model.name, scaling_type, factor)


def test_scaled_flops_are_pycls_counts():
    for name, factor, scaling_type in [("RegNetY-800MF", 4.0, FAST_COMPOUND_SCALING), ("RegNetX-1.6GF", 0.5, "dwr"),
                                       ("RegNetY-200MF", 2.0, "d1_w2_g2_r1")]:
        scaled = scale_model(MODELS[name].config, factor, scaling_type)
        assert scaled.flops == pycls_flops(scaled.config, scaled.resolution)


def test_getting_started_example():
    # pycls's GETTING_STARTED: RegNetY-4GF scaled 4x by fast compound scaling.
    scaled = scale_model(MODELS["RegNetY-4.0GF"].config, 4.0)
    base = anynet_from_regnet(MODELS["RegNetY-4.0GF"].config)
    f = scaling_factors(FAST_COMPOUND_SCALING, 4.0)
    assert scaled.resolution == round(224 * f.resolution / 4) * 4 == 240
    assert scaled.config.depths == tuple(max(1, round(d * f.depth)) for d in base.depths)
    assert scaled.config.group_widths == (112,) * 4  # round(64 * 4^0.4 / 8) * 8
    assert scaled.config.widths == (224, 336, 896, 1904)  # 8-rounded, then multiples of 112


# ----------------------------------------------------------- fitting a flop budget


def next_distinct(base, depth, width, dimension):
    """The network one step up in ``dimension``: the multiplier just past the next change (bisection)."""
    def at(m):
        return apply_multipliers(base, m, width) if dimension == "depth" else apply_multipliers(base, depth, m)

    start = depth if dimension == "depth" else width
    current, step = at(start), 1e-3 * start
    while at(start + step) == current:
        step *= 2
    low, high = start, start + step
    for _ in range(80):
        middle = (low + high) / 2
        low, high = (middle, high) if at(middle) == current else (low, middle)
    return at(high)


BUDGETS = [("RegNetX-200MF", 100e6), ("RegNetY-800MF", 400e6), ("RegNetY-800MF", 200e6), ("RegNetX-1.6GF", 600e6),
           ("RegNetY-4.0GF", 2e9), ("RegNetY-400MF", 800e6)]


def test_fit_to_budget_is_within_one_step_below_the_budget():
    for name, budget in BUDGETS:
        base = MODELS[name].config
        fit = fit_to_budget(base, budget)
        assert isinstance(fit, ScaledModel)
        m = fit.multipliers
        assert fit.config == apply_multipliers(base, m.depth, m.width)
        assert fit.resolution % 4 == 0 and fit.resolution == round(224 * m.resolution)
        assert fit.flops == complexity(fit.config, fit.resolution)["flops"] <= budget
        # Every single step up goes over the budget, so the budget is less than the smallest step away.
        ups = [complexity(fit.config, fit.resolution + 4)["flops"]]
        ups += [complexity(next_distinct(base, m.depth, m.width, d), fit.resolution)["flops"]
                for d in ("depth", "width")]
        assert min(ups) > budget, (name, budget)
        assert budget - fit.flops < min(up - fit.flops for up in ups)
        if budget < MODELS[name].flops:
            # TinyNet: shrinking keeps resolution and depth, and narrows.
            assert m.width < min(m.depth, m.resolution), (name, m)


def test_fit_to_budget_flops_are_pycls_counts():
    fit = fit_to_budget(MODELS["RegNetY-1.6GF"].config, 500e6, resolution=192)
    assert fit.flops == pycls_flops(fit.config, fit.resolution) <= 500e6


def count_complexity_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(scaling, "complexity", lambda *a, **k: calls.append(a) or complexity(*a, **k))
    return calls


def test_budget_at_and_below_the_smallest_network(monkeypatch):
    base = MODELS["RegNetX-400MF"].config
    smallest = dataclasses.replace(anynet_from_regnet(base), depths=(1,) * 4, widths=(8,) * 4, group_widths=(8,) * 4)
    floor = complexity(smallest, 32)["flops"]
    fit = fit_to_budget(base, floor)
    assert (fit.config, fit.resolution, fit.flops) == (smallest, 32, floor)
    calls = count_complexity_calls(monkeypatch)
    with pytest.raises(ValueError, match=f"flops={floor - 1} is below the smallest network reachable: {floor} flops"):
        fit_to_budget(base, floor - 1)
    assert len(calls) == 1  # the smallest network only: no search


# ----------------------------------------------------------- bad input


def test_fit_to_budget_bad_input(monkeypatch):
    calls = count_complexity_calls(monkeypatch)
    base = MODELS["RegNetY-800MF"].config
    for flops in (0, -5.0, "4e8", math.nan, math.inf, True):
        with pytest.raises(ValueError, match="flops must be a finite number > 0"):
            fit_to_budget(base, flops)
    for shares in ((0.5, 0.5), (0.5, 0.6, -0.1), (1, 1, 1), "abc"):
        with pytest.raises(ValueError, match="shares must be three numbers"):
            fit_to_budget(base, 4e8, shares=shares)
    with pytest.raises(ValueError, match="config must be a RegNetConfig or an AnyNetConfig"):
        fit_to_budget("RegNetY-800MF", 4e8)
    with pytest.raises(ValueError, match="resolution must be a positive integer"):
        fit_to_budget(base, 4e8, resolution=0)
    with pytest.raises(ValueError, match="search_radius must be an integer >= 0"):
        fit_to_budget(base, 4e8, search_radius=-1)
    assert calls == []


def test_scale_model_bad_input():
    base = MODELS["RegNetY-800MF"].config
    for scaling_type in ("", 3, None):
        with pytest.raises(ValueError, match="scaling_type must be a non-empty string"):
            scale_model(base, 2.0, scaling_type)
    for scaling_type in ("dx", "d1_x2", "d1_d2", "d_w", "d-1", "d1_w1_"):
        with pytest.raises(ValueError, match=f"scaling_type='{scaling_type}' is not valid"):
            scale_model(base, 2.0, scaling_type)
    with pytest.raises(ValueError, match="gives every dimension weight 0"):
        scaling_factors("d0_w0", 2.0)
    for factor in (0, -1.0, math.inf, "2", True):
        with pytest.raises(ValueError, match="factor must be a finite number > 0"):
            scale_model(base, factor)
    with pytest.raises(ValueError, match="config must be a RegNetConfig or an AnyNetConfig"):
        scale_model(None, 2.0)
    with pytest.raises(ValueError, match="shrinks resolution=8 below 4 pixels"):
        scale_resolution(8, 0.1)
    with pytest.raises(ValueError, match="width must be a finite number > 0"):
        apply_multipliers(base, width=0)
