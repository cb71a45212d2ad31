"""Model builders: keras.applications arguments, shapes, names, errors."""

import math

import keras
import numpy as np
import pytest

import keras_regnet
from keras_regnet import RegNet, RegNetConfig, published_models
from keras_regnet.architecture.layers import GroupedConv2D

TINY = RegNetConfig(depth=4, w0=16, wa=16.0, wm=2.0, group_width=8, se_ratio=0.25, stem_width=16)


def n_trainable(model):
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def test_all_24_builders_exist_and_list_models():
    names = keras_regnet.list_models()
    assert len(names) == 24 and names[0] == "RegNetX-200MF" and names[-1] == "RegNetY-32GF"
    for pub in published_models().values():
        builder = getattr(keras_regnet, pub.function_name)
        assert builder.__name__ == pub.function_name
        assert pub.name in builder.__doc__


@pytest.mark.parametrize("name", ["RegNetX-200MF", "RegNetY-800MF", "RegNetX-8.0GF"])
def test_trainable_params_equal_pycls(name):
    model = keras_regnet.get_model(name)
    assert n_trainable(model) == published_models()[name].params


def test_every_published_model_builds_with_published_params():
    # The whole zoo, via the same code path as `keras-regnet zoo --build`.
    from keras_regnet.architecture.published import compare_with_published as zoo_table

    rows = zoo_table(build=True, progress=False)
    assert len(rows) == 24
    for row in rows:
        assert row["keras_params"] == published_models()[row["name"]].params, row["name"]
        assert row["matches"], row["name"]


def test_builder_and_get_model_agree():
    a = keras_regnet.RegNetY800MF()
    b = keras_regnet.get_model("RegNetY-800MF")
    assert a.name == b.name == "regnety800mf"
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]


def test_layers_follow_pycls_structure():
    model = keras_regnet.RegNetY800MF()
    cfg = published_models()["RegNetY-800MF"].config
    stem = model.get_layer("stem_conv")
    assert stem.kernel.shape == (3, 3, 3, 32) and stem.strides == (2, 2) and not stem.use_bias
    assert model.get_layer("stem_pad").padding == ((1, 1), (1, 1))
    b = model.get_layer("s2_b1_b_conv")
    assert isinstance(b, GroupedConv2D)
    assert b.groups == 128 // 16 and b.strides == (2, 2) and b.padding == "valid"
    assert model.get_layer("s2_b2_b_conv").padding == "same"
    bn = model.get_layer("s2_b1_b_bn")
    assert bn.epsilon == 1e-5 and bn.momentum == 0.9
    # SE width is round(0.25 * the block's *input* width): 64 for s2_b1 (input 64).
    assert model.get_layer("s2_b1_se_reduce").kernel.shape == (1, 1, 128, 16)
    assert model.get_layer("s2_b2_se_reduce").kernel.shape == (1, 1, 128, 32)
    assert model.get_layer("s2_b1_proj_conv").strides == (2, 2)
    with pytest.raises(ValueError):
        model.get_layer("s2_b2_proj_conv")  # same width, stride 1: identity shortcut
    assert sum(1 for l in model.layers if l.name.endswith("_add")) == cfg.depth


def test_x_model_has_no_se():
    model = keras_regnet.RegNetX200MF()
    assert not [l for l in model.layers if "_se_" in l.name]


def test_initialisation_matches_pycls():
    keras.utils.set_random_seed(0)
    model = keras_regnet.RegNetX400MF()
    k = model.get_layer("s3_b2_a_conv").kernel.numpy()  # 1x1, 160 -> 160
    assert abs(k.std() - math.sqrt(2.0 / 160)) / math.sqrt(2.0 / 160) < 0.05
    g = model.get_layer("s3_b2_b_conv").kernel.numpy()  # 3x3 grouped, fan_out 9*160
    assert abs(g.std() - math.sqrt(2.0 / (9 * 160))) / math.sqrt(2.0 / (9 * 160)) < 0.05
    fc = model.get_layer("predictions")
    assert abs(fc.kernel.numpy().std() - 0.01) < 0.001 and not fc.bias.numpy().any()
    bn = model.get_layer("s3_b2_b_bn")
    assert np.all(bn.gamma.numpy() == 1) and not bn.beta.numpy().any()
    se = keras_regnet.RegNetY200MF().get_layer("s1_b1_se_reduce")
    assert not se.bias.numpy().any()
    # Every layer draws its own weights (a shared Keras initializer repeats them).
    same_shape = [model.get_layer(f"s3_b{i}_a_conv").kernel.numpy() for i in (2, 3, 4)]
    assert not np.array_equal(same_shape[0], same_shape[1]) and not np.array_equal(same_shape[1], same_shape[2])
    assert abs(np.corrcoef(same_shape[0].ravel(), same_shape[1].ravel())[0, 1]) < 0.05


@pytest.mark.parametrize("size", [32, 64, 97, 224])
def test_forward_shapes(size):
    model = RegNet(TINY, input_shape=(size, size, 3), classes=7)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    y = model.predict_on_batch(x)
    assert y.shape == (2, 7)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_include_top_false_pooling_and_variable_size():
    plain = RegNet(TINY, include_top=False, input_shape=(None, None, 3))
    x = np.zeros((1, 96, 160, 3), "float32")
    stride = 2 ** (len(TINY.stages) + 1)  # stem and every stage halve the size
    assert stride == 16
    assert plain.predict_on_batch(x).shape == (1, 96 // stride, 160 // stride, TINY.stage_widths[-1])
    avg = RegNet(TINY, include_top=False, pooling="avg", input_shape=(None, None, 3))
    assert avg.predict_on_batch(x).shape == (1, TINY.stage_widths[-1])
    mx = RegNet(TINY, include_top=False, pooling="max")
    assert mx.output.shape == (None, TINY.stage_widths[-1])


def test_classifier_activation_is_applied():
    keras.utils.set_random_seed(1)
    logits_model = RegNet(TINY, classifier_activation=None, input_shape=(64, 64, 3))
    soft_model = RegNet(TINY, classifier_activation="softmax", input_shape=(64, 64, 3))
    soft_model.set_weights(logits_model.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    logits = logits_model.predict_on_batch(x)
    probs = soft_model.predict_on_batch(x)
    assert not np.allclose(logits.sum(axis=1), 1.0)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)


def test_include_preprocessing_normalises_with_imagenet_stats():
    keras.utils.set_random_seed(2)
    with_pre = RegNet(TINY, input_shape=(64, 64, 3), classifier_activation=None)
    without = RegNet(TINY, input_shape=(64, 64, 3), classifier_activation=None, include_preprocessing=False)
    without.set_weights(with_pre.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    normalised = ((x / 255.0 - mean) / std).astype("float32")
    np.testing.assert_allclose(
        with_pre.predict_on_batch(x), without.predict_on_batch(normalised), rtol=1e-4, atol=1e-5
    )
    assert keras_regnet.preprocess_input(x) is x
    # Without preprocessing any channel count is allowed.
    assert RegNet(TINY, input_shape=(64, 64, 4), include_preprocessing=False).input.shape[-1] == 4


def test_decode_predictions_offline():
    # The class list ships with the package: no download (there is no network here).
    from keras_regnet.architecture.preprocessing import imagenet_classes

    classes = imagenet_classes()
    assert len(classes) == 1000 and len({c[0] for c in classes}) == 1000
    assert [c[0] for c in classes] == sorted(c[0] for c in classes)  # label i = i-th sorted synset
    assert classes[0] == ("n01440764", "tench") and classes[999][0] == "n15075141"
    preds = np.full((2, 1000), 1e-4, "float32")
    preds[0, 1], preds[0, 7], preds[1, 999] = 0.9, 0.05, 0.5
    top = keras_regnet.decode_predictions(preds, top=2)
    assert top[0][0][:2] == ("n01443537", "goldfish") and top[0][1][:2] == classes[7]
    assert top[1][0][0] == "n15075141" and top[1][0][2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\)"):
        keras_regnet.decode_predictions(preds[:, :10])
    with pytest.raises(ValueError, match="top must be"):
        keras_regnet.decode_predictions(preds, top=0)


def test_input_tensor():
    inp = keras.Input((64, 64, 3))
    model = RegNet(TINY, input_tensor=inp)
    assert model.input is inp
    x = keras.layers.Rescaling(255.0)(keras.Input((64, 64, 3)))
    assert RegNet(TINY, input_tensor=x).output.shape == (None, 1000)


def test_feature_extractor_strides():
    feats = keras_regnet.feature_extractor("RegNetY-800MF")
    out = feats.predict_on_batch(np.zeros((1, 128, 96, 3), "float32"))
    widths = published_models()["RegNetY-800MF"].stage_widths
    assert list(out) == ["stem", "s1", "s2", "s3", "s4"]
    assert out["stem"].shape == (1, 64, 48, 32)
    for i, lv in enumerate(["s1", "s2", "s3", "s4"]):
        stride = 2 ** (i + 2)
        assert out[lv].shape == (1, 128 // stride, 96 // stride, widths[i])
    model = RegNet(TINY, include_top=False)
    subset = keras_regnet.feature_extractor(model, levels=["s2", "s3"])
    assert list(subset.output) == ["s2", "s3"]
    with pytest.raises(ValueError, match=r"levels must be among \['stem', 's1', 's2', 's3'\]"):
        keras_regnet.feature_extractor(model, levels=["s5"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(31, 64, 3)), r"input_shape height must be >= 32 pixels"),
        (dict(input_shape=(64, 16, 3)), r"input_shape width must be >= 32 pixels"),
        (dict(input_shape=(64, 64, 4)), r"include_preprocessing=True .* 3 channels"),
        (dict(input_shape=(64, 64)), r"input_shape must be \(height, width, channels\)"),
        (dict(pooling="mean", include_top=False), r"pooling must be one of None, 'avg', 'max'"),
        (dict(classes=0), r"classes must be a positive integer"),
        (dict(classifier_activation="nope"), r"classifier_activation must be None"),
        (dict(weights="imagenet"), r"weights='imagenet' exists only for the 24 published models"),
        (dict(weights="imagenet:nope"), r"Unknown weights source in weights='imagenet:nope'; known sources: 'imagenet:pycls'"),
        (dict(weights="/no/such/file.weights.h5"), r"no file at weights="),
        (dict(weights=3), r"weights must be None, 'imagenet' \(or 'imagenet:SOURCE'\) or the path"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RegNet(TINY, **kwargs)


def test_config_must_be_a_config():
    with pytest.raises(ValueError, match="config must be a keras_regnet.RegNetConfig"):
        RegNet({"depth": 13})
