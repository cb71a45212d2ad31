"""Parity with the official implementation, pycls 0.1.1, run side by side.

Generator, complexity and logits of RegNets and AnyNets are compared with
pycls itself (``pycls.models.regnet.RegNet``, ``pycls.models.anynet.AnyNet``): every pycls
parameter and BatchNorm statistic is randomised, mapped onto the Keras model
with ``convert.set_torch_state``, and both see the same RGB batch.
"""

import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_regnet
from keras_regnet import AnyNet, AnyNetConfig, RegNet, RegNetConfig, anynet_from_regnet, published_models
from keras_regnet.design_space import sample
from keras_regnet.weights.convert import set_torch_state

pr = require("pycls_reference")


def _pycls_stages(cfg):
    ws, num_stages, _, _ = pr.pycls_regnet.generate_regnet(cfg.wa, cfg.w0, cfg.wm, cfg.depth)
    s_ws, s_ds = pr.pycls_regnet.get_stages_from_blocks(ws, ws)
    s_ws, s_gs = pr.pycls_regnet.adjust_ws_gs_comp(
        s_ws, [cfg.bottleneck_ratio] * num_stages, [cfg.group_width] * num_stages
    )
    return tuple(s_ds), tuple(s_ws), tuple(s_gs)


@settings(max_examples=300, deadline=None)
@given(
    depth=st.integers(1, 40),
    w0=st.integers(1, 40).map(lambda k: 8 * k),
    wa=st.floats(0, 120, allow_nan=False),
    wm=st.floats(1.05, 3.5),
    group_width=st.integers(1, 256),
    bottleneck_ratio=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_generator_equals_pycls(depth, w0, wa, wm, group_width, bottleneck_ratio):
    # pycls 0.1.1 and current pycls differ only for integer bottleneck ratios > 1
    # (current pycls rounds to lcm(g, b)); we follow current pycls there.
    cfg = RegNetConfig(depth, w0, wa, wm, group_width, bottleneck_ratio)
    assert (cfg.stage_depths, cfg.stage_widths, cfg.stage_group_widths) == _pycls_stages(cfg)


@pytest.mark.parametrize("pub", list(published_models().values()), ids=lambda p: p.name)
def test_published_generator_and_complexity_equal_pycls(pub):
    assert (pub.config.stage_depths, pub.config.stage_widths, pub.config.stage_group_widths) == _pycls_stages(pub.config)
    ref = pr.pycls_complexity(pub.config)
    assert keras_regnet.complexity(pub.config) == {k: ref[k] for k in ("flops", "params", "acts")}


@pytest.mark.parametrize(
    "cfg, resolution",
    [
        (RegNetConfig(depth=7, w0=40, wa=17.5, wm=2.3, group_width=24, se_ratio=0.25), 160),
        (RegNetConfig(depth=9, w0=64, wa=30.0, wm=2.1, group_width=16, bottleneck_ratio=0.5), 97),
    ],
)
def test_custom_complexity_equals_pycls(cfg, resolution):
    ref = pr.pycls_complexity(cfg, resolution=resolution)
    assert keras_regnet.complexity(cfg, resolution=resolution) == {k: ref[k] for k in ("flops", "params", "acts")}


def _assert_logits_match(cfg, build, size, tmp_path, seed=0, zip_format=True, num_classes=1000):
    """Save a pycls-style checkpoint, load it with weights=PATH, compare logits."""
    torch_model = pr.pycls_model(cfg, num_classes=num_classes, seed=seed)
    path = tmp_path / "model.pyth"
    pr.torch.save(
        {"epoch": 99, "model_state": torch_model.state_dict()}, path,
        _use_new_zipfile_serialization=zip_format,
    )
    keras_model = build(weights=str(path))
    x = np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype("float32")
    expected = pr.pycls_logits(torch_model, x)
    got = np.asarray(keras_model.predict_on_batch(x))
    rel = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert rel <= 1e-4, rel
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    return rel


# RegNetX-8.0GF: its first stage's group width is capped (120 -> 80).
@pytest.mark.parametrize("name", ["RegNetX-200MF", "RegNetY-800MF", "RegNetY-1.6GF", "RegNetX-8.0GF"])
def test_logits_equal_pycls(name, tmp_path):
    cfg = published_models()[name].config
    build = lambda **kw: keras_regnet.get_model(name, classifier_activation=None, **kw)  # noqa: E731
    _assert_logits_match(cfg, build, 224, tmp_path)


def test_legacy_checkpoint_format(tmp_path):
    # The 2020 pycls files may predate PyTorch 1.6's zip format.
    cfg = published_models()["RegNetY-200MF"].config
    build = lambda **kw: keras_regnet.RegNetY200MF(classifier_activation=None, **kw)  # noqa: E731
    _assert_logits_match(cfg, build, 224, tmp_path, zip_format=False)


def test_custom_config_logits_equal_pycls_at_odd_size(tmp_path):
    # Odd input size exercises PyTorch-style symmetric padding on every stride-2 conv.
    cfg = RegNetConfig(depth=6, w0=24, wa=20.0, wm=2.2, group_width=8, bottleneck_ratio=0.5, se_ratio=0.25)
    build = lambda **kw: RegNet(  # noqa: E731
        cfg, input_shape=(None, None, 3), classes=10, classifier_activation=None, **kw
    )
    _assert_logits_match(cfg, build, 75, tmp_path, seed=3, num_classes=10)


def test_include_top_false_loads_all_but_the_classifier(tmp_path):
    cfg = published_models()["RegNetX-200MF"].config
    torch_model = pr.pycls_model(cfg)
    path = tmp_path / "x200.pyth"
    pr.torch.save({"model_state": torch_model.state_dict()}, path)
    features = keras_regnet.RegNetX200MF(include_top=False, pooling="avg", weights=str(path))
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    pooled = np.asarray(features.predict_on_batch(x))
    # The pycls head applied to our pooled features gives pycls's logits.
    fc_w = torch_model.head.fc.weight.detach().numpy()
    fc_b = torch_model.head.fc.bias.detach().numpy()
    np.testing.assert_allclose(pooled @ fc_w.T + fc_b, pr.pycls_logits(torch_model, x), rtol=1e-3, atol=1e-4)


def test_state_for_another_variant_is_refused():
    torch_model = pr.pycls_model(published_models()["RegNetX-200MF"].config)
    model = keras_regnet.RegNetX400MF()
    with pytest.raises(ValueError, match=r"pycls parameter 's1\.b1\.\S+' has shape \(1, 1, 32, 24\) but layer 's1_b1_\w+' expects \(1, 1, 32, 32\)"):
        set_torch_state(model, pr.state_numpy(torch_model))


# AnyNets pycls builds with pycls.models.anynet.AnyNet: stride-1 stages, SE,
# fractional and integer bottleneck ratios, res_stem_cifar (stem_stride=1),
# five stages, a group width equal to the bottleneck width.
ANYNETS = [
    AnyNetConfig((2, 3), (48, 96), (0.25, 0.5), (4, 16), strides=(1, 2), se_ratio=0.25, stem_width=16, stem_stride=1),
    AnyNetConfig((3, 1, 2), (64, 64, 40), (4.0, 2.0, 1.0), (32, 1, 40), strides=(2, 1, 2), se_ratio=0.5),
    AnyNetConfig((1, 1, 1, 1, 1), (8, 16, 24, 40, 8), (1, 2, 4, 1, 2), (8, 2, 32, 8, 16), stem_width=8),
]


@pytest.mark.parametrize("cfg", ANYNETS, ids=["cifar-stem-se", "stride-1-stage", "five-stages"])
def test_anynet_logits_equal_pycls(cfg, tmp_path):
    build = lambda **kw: AnyNet(  # noqa: E731
        cfg, input_shape=(None, None, 3), classes=10, classifier_activation=None, **kw
    )
    _assert_logits_match(cfg, build, 45, tmp_path, seed=1, num_classes=10)
    assert AnyNet(cfg, classes=10).count_params() == pr.pycls_complexity(cfg, num_classes=10)["params"] + sum(
        2 * w for w in _batch_norm_widths(cfg)
    )


def _batch_norm_widths(cfg):
    """Channels of every BatchNorm: Keras counts moving mean and variance as (non-trainable) params, pycls not."""
    widths, w_in = [cfg.stem_width], cfg.stem_width
    for stage, stride in zip(cfg.stages, cfg.strides):
        for j in range(stage.depth):
            projection = j == 0 and (w_in != stage.width or stride != 1)
            widths += [stage.width] * projection + [stage.bottleneck_width] * 2 + [stage.width]
            w_in = stage.width
    return widths


@pytest.mark.parametrize("space", ["AnyNetX_A", "AnyNetX_E"])
def test_sampled_anynets_load_pycls_anynet_checkpoints(space, tmp_path):
    """Networks the design-space samplers draw, built by pycls's AnyNet and by ours, same logits."""
    for i, cfg in enumerate(sample(space, n=2, seed=7, flops_range=(2e6, 8e6), resolution=32, stem_stride=1)):
        build = lambda **kw: AnyNet(cfg, input_shape=(32, 32, 3), classes=10, classifier_activation=None, **kw)  # noqa: E731
        _assert_logits_match(cfg, build, 32, tmp_path, seed=i, num_classes=10)


def test_a_regnet_is_the_anynet_of_its_stages():
    cfg = published_models()["RegNetY-400MF"].config
    regnet, anynet = RegNet(cfg, name="r"), AnyNet(anynet_from_regnet(cfg), name="r")
    assert [(w.path, w.shape) for w in regnet.weights] == [(w.path, w.shape) for w in anynet.weights]


def test_anynet_refuses_other_configs_and_imagenet_weights():
    with pytest.raises(ValueError, match="config must be a keras_regnet.AnyNetConfig"):
        AnyNet(published_models()["RegNetX-200MF"].config)
    with pytest.raises(ValueError, match="exists only for the 24 published models"):
        AnyNet(anynet_from_regnet(published_models()["RegNetX-200MF"].config), weights="imagenet")
