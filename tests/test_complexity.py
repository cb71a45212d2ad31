"""Analytic complexity against the published pycls integers."""

import pytest

import keras_regnet
from keras_regnet import RegNetConfig, complexity, published_models

PUBLISHED = list(published_models().values())


@pytest.mark.parametrize("pub", PUBLISHED, ids=lambda p: p.name)
def test_complexity_equals_published(pub):
    cx = complexity(pub.name)
    assert cx == {"flops": pub.flops, "params": pub.params, "acts": pub.acts}


def test_names_and_configs_are_interchangeable():
    cfg = published_models()["RegNetY-1.6GF"].config
    assert complexity("RegNetY1_6GF") == complexity(cfg) == complexity("regnety-1.6gf")
    # "1.6GF" must not be confused with "16GF".
    assert complexity("RegNetX-1.6GF") != complexity("RegNetX-16GF")


def test_flops_scale_with_resolution():
    # At sizes divisible by 32 every feature map has exactly 4x the pixels at
    # 2x the resolution, so the trunk's flops scale by 4; the dense head does not.
    cfg = RegNetConfig(depth=8, w0=32, wa=24.0, wm=2.5, group_width=16)
    head = cfg.stage_widths[-1] * 1000 + 1000  # dense flops: w_in*w_out + w_out
    c224 = complexity(cfg, resolution=224)
    c448 = complexity(cfg, resolution=448)
    assert c448["flops"] - head == 4 * (c224["flops"] - head)
    assert c448["params"] == c224["params"]


def test_bad_resolution():
    with pytest.raises(ValueError, match="resolution must be a positive integer"):
        complexity("RegNetX-200MF", resolution=0)


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"Unknown RegNet model name='RegNetY-800M'.*Did you mean 'RegNetY-800MF'"):
        complexity("RegNetY-800M")
    with pytest.raises(ValueError, match="Did you mean"):
        keras_regnet.get_model("RegNetX200M")
