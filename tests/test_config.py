"""The generator equations and block-compatibility rules against pycls's table."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_regnet import RegNetConfig, generate_block_widths, published_models

PUBLISHED = list(published_models().values())


@pytest.mark.parametrize("pub", PUBLISHED, ids=lambda p: p.name)
def test_stages_equal_published(pub):
    cfg = pub.config
    assert cfg.stage_depths == pub.stage_depths
    assert cfg.stage_widths == pub.stage_widths
    assert cfg.stage_group_widths == pub.stage_group_widths
    assert sum(cfg.stage_depths) == cfg.depth


def test_round_half_to_even_cases_from_the_paper_table():
    # Round-half-up would give 400 for RegNetX-400MF stage 4 and 144 for
    # RegNetY-800MF stage 2; pycls (numpy) rounds half to even.
    assert published_models()["RegNetX-400MF"].config.stage_widths[3] == 384
    assert published_models()["RegNetY-800MF"].config.stage_widths[1] == 128


def test_group_width_capped_at_stage_width():
    # RegNetX-8.0GF: group width 120 > first stage width 80.
    cfg = published_models()["RegNetX-8.0GF"].config
    assert cfg.group_width == 120
    assert cfg.stage_group_widths == (80, 120, 120, 120)
    assert [s.groups for s in cfg.stages] == [1, 2, 6, 16]


def test_block_widths_follow_equations():
    # u_j = w0 + wa*j; s_j = round(log(u_j/w0)/log(wm)); w_j = round(w0*wm^s_j/8)*8
    w = generate_block_widths(13, 24, 36.44, 2.49)
    assert w.tolist() == [24, 56, 152, 152, 152, 152, 368, 368, 368, 368, 368, 368, 368]


def test_bottleneck_ratio_and_se_width():
    cfg = RegNetConfig(depth=10, w0=32, wa=20.0, wm=2.0, group_width=8, bottleneck_ratio=0.5)
    for s in cfg.stages:
        assert s.bottleneck_width == round(s.width * 0.5)
        assert s.bottleneck_width % s.group_width == 0


configs = st.builds(
    RegNetConfig,
    depth=st.integers(1, 40),
    w0=st.integers(1, 40).map(lambda k: 8 * k),
    wa=st.floats(0, 120, allow_nan=False),
    wm=st.floats(1.05, 3.5),
    group_width=st.integers(1, 256),
    bottleneck_ratio=st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0]),
)


@settings(max_examples=300, deadline=None)
@given(configs)
def test_generator_properties(cfg):
    block_widths = np.array(cfg.block_widths)
    assert np.all(block_widths % 8 == 0)
    assert np.all(np.diff(block_widths) >= 0)
    assert sum(cfg.stage_depths) == cfg.depth
    assert all(d >= 1 for d in cfg.stage_depths)
    for s in cfg.stages:
        assert s.width > 0
        assert 1 <= s.group_width <= s.bottleneck_width
        assert s.bottleneck_width % s.group_width == 0  # integer number of groups
    if cfg.bottleneck_ratio == 1.0:
        # With b = 1 each stage width is the group-width multiple nearest its
        # generated width (>= one group), and stages are non-decreasing.
        assert all(s.width % s.group_width == 0 for s in cfg.stages)
        assert list(cfg.stage_widths) == sorted(cfg.stage_widths)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(wm=1.0), "wm must be > 1; got wm=1.0"),
        (dict(wm=0.5), "wm must be > 1"),
        (dict(wa=-1.0), "wa must be >= 0; got wa=-1.0"),
        (dict(depth=0), "depth must be a positive integer; got depth=0"),
        (dict(depth=2.5), "depth must be a positive integer; got depth=2.5"),
        (dict(w0=20), "w0 must be a positive multiple of 8; got w0=20"),
        (dict(w0=0), "w0 must be a positive multiple of 8"),
        (dict(w0=-8), "w0 must be a positive multiple of 8"),
        (dict(group_width=0), "group_width must be a positive integer; got group_width=0"),
        (dict(bottleneck_ratio=0), "bottleneck_ratio must be > 0"),
        (dict(se_ratio=1.5), "se_ratio must be None or in [0, 1]"),
        (dict(wa=float("nan")), "wa must be finite"),
    ],
)
def test_bad_config_errors(kwargs, message):
    args = dict(depth=13, w0=24, wa=36.44, wm=2.49, group_width=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        RegNetConfig(**args)
