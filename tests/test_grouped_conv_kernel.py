"""The grouped-convolution kernel switch of ``GroupedConv2D`` (TensorFlow backend).

``set_grouped_conv_kernel("auto" | "native" | "keras")`` picks TensorFlow's
native grouped kernel or Keras's stock path (one XLA function per grouped
convolution): same outputs and gradients, bad values refused, and the choice
really decides what runs (the traced graph's ops, and a registered kernel's
call count).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_regnet import get_model
from keras_regnet.architecture import layers as L

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _restore_auto():
    yield
    L.set_grouped_conv_kernel("auto")


def traced_op_types(layer, x):
    """The op types of ``layer``'s call traced as a graph under the current kernel choice."""
    spec = tf.TensorSpec(x.shape, tf.float32)
    graph = tf.function(lambda t: layer(t)).get_concrete_function(spec).graph
    return {op.type for op in graph.get_operations()}


def test_both_kernels_give_the_same_outputs_and_gradients():
    assert L.native_grouped_conv_available()  # TF >= 2.16 on x86 CPUs has the oneDNN kernel
    model = get_model("RegNetY-200MF", input_shape=(64, 64, 3), classifier_activation=None)
    x = tf.constant(RNG.uniform(0, 255, (2, 64, 64, 3)).astype("float32"))
    conv = model.get_layer("s2_b1_b_conv")  # strided, 8-wide groups
    assert isinstance(conv, L.GroupedConv2D) and conv.groups > 1

    results = {}
    for kernel in ("native", "keras"):
        with L.grouped_conv_kernel_scope(kernel):
            with tf.GradientTape() as tape:
                logits = model(x, training=False)  # eager: reads the switch on every call
                loss = tf.reduce_sum(logits**2)
            results[kernel] = (logits.numpy(), tape.gradient(loss, conv.kernel).numpy())
    assert L.grouped_conv_kernel() == "auto"  # the scope restored it
    np.testing.assert_allclose(results["native"][0], results["keras"][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(results["native"][1], results["keras"][1], rtol=1e-4, atol=1e-6)
    assert np.abs(results["native"][1]).max() > 0


def test_the_switch_decides_what_is_traced():
    layer = L.GroupedConv2D(8, 3, strides=2, groups=4, padding="valid")
    x = tf.constant(RNG.normal(size=(1, 9, 9, 8)).astype("float32"))
    layer(x)
    with L.grouped_conv_kernel_scope("native"):
        native_ops = traced_op_types(layer, x)
    with L.grouped_conv_kernel_scope("keras"):
        keras_ops = traced_op_types(layer, x)
    # Native: a plain Conv2D op.  Keras: the convolution sits inside an XLA
    # function call, no Conv2D op in the layer's own graph.
    assert "Conv2D" in native_ops and "StatefulPartitionedCall" not in native_ops
    assert "Conv2D" not in keras_ops and "StatefulPartitionedCall" in keras_ops
    assert L.resolved_grouped_conv_kernel() == "native"  # "auto" where the native kernel works
    assert traced_op_types(layer, x) == native_ops


def test_a_registered_kernel_is_called_only_when_chosen():
    calls = []
    original = L.native_grouped_conv("tensorflow")

    def counting_conv(inputs, kernel, **kwargs):
        calls.append(kwargs)
        return original.conv(inputs, kernel, **kwargs)

    grouped = L.GroupedConv2D(6, 3, groups=3, padding="same")
    plain = L.GroupedConv2D(6, 3, groups=1, padding="same")  # groups=1: always Keras's path
    x = tf.constant(RNG.normal(size=(1, 5, 5, 6)).astype("float32"))
    replaced = L.register_native_grouped_conv("tensorflow", counting_conv)
    try:
        assert replaced is original
        expected = {"auto": 1, "native": 1, "keras": 0}
        for kernel, count in expected.items():
            calls.clear()
            with L.grouped_conv_kernel_scope(kernel):
                grouped(x)
                plain(x)
            assert len(calls) == count, kernel
        with L.grouped_conv_kernel_scope("native"):
            grouped(x)
        assert calls == [{"strides": [1, 1], "padding": "same", "data_format": "channels_last", "dilation_rate": (1, 1)}]
    finally:
        L.register_native_grouped_conv("tensorflow", original.conv, original.available)
    assert L.native_grouped_conv("tensorflow").conv is original.conv


def test_bad_values_are_refused():
    for bad in ("fast", "NATIVE", "", None, 1):
        with pytest.raises(ValueError, match=r"kernel must be one of \('auto', 'native', 'keras'\); got kernel="):
            L.set_grouped_conv_kernel(bad)
    assert L.grouped_conv_kernel() == "auto"
    with pytest.raises(ValueError, match="backend must be a Keras backend name"):
        L.register_native_grouped_conv("", lambda *a, **k: None)
    with pytest.raises(ValueError, match="must be callables"):
        L.register_native_grouped_conv("tensorflow", "tf.nn.convolution")


def test_native_is_refused_where_no_native_kernel_works():
    original = L.native_grouped_conv("tensorflow")
    L.register_native_grouped_conv("tensorflow", original.conv, available=lambda dtype: False)
    try:
        with pytest.raises(ValueError, match="kernel='native' needs a native grouped convolution for the 'tensorflow'"):
            L.set_grouped_conv_kernel("native")
        assert L.grouped_conv_kernel() == "auto"
        assert L.resolved_grouped_conv_kernel() == "keras"  # "auto" falls back
        layer = L.GroupedConv2D(4, 3, groups=2, padding="same")
        x = tf.constant(RNG.normal(size=(1, 6, 6, 4)).astype("float32"))
        layer(x)
        assert "StatefulPartitionedCall" in traced_op_types(layer, x)
    finally:
        L.register_native_grouped_conv("tensorflow", original.conv, original.available)
    assert L.resolved_grouped_conv_kernel() == "native"


def test_the_choice_is_not_saved_with_the_layer():
    layer = L.GroupedConv2D(4, 3, groups=2)
    with L.grouped_conv_kernel_scope("keras"):
        config = layer.get_config()
    assert config == keras.layers.Conv2D(4, 3, groups=2, name=layer.name).get_config()


def tensorflow_trains_grouped_convolutions_natively(dtype):
    """Whether TensorFlow's own grouped convolution gives the float32 gradients in ``dtype`` here (by a tape)."""
    x, k = RNG.uniform(-1, 1, (2, 6, 6, 8)).astype("float32"), RNG.uniform(-1, 1, (3, 3, 2, 8)).astype("float32")

    def gradients(dtype):
        xs, ks = tf.constant(x, dtype), tf.constant(k, dtype)
        with tf.GradientTape() as tape:
            tape.watch([xs, ks])
            y = tf.reduce_sum(tf.nn.conv2d(xs, ks, 1, "SAME") ** 2)  # 4 groups of 2 channels
        return [np.asarray(tf.cast(g, "float32")) for g in tape.gradient(y, [xs, ks])]

    try:
        found = gradients(dtype)
    except Exception:  # no kernel for this dtype, or a gradient that fails
        return False
    return all(np.allclose(a, b, rtol=2e-2, atol=2e-2 * np.abs(b).max()) for a, b in zip(found, gradients("float32")))


def test_auto_uses_the_native_kernel_only_for_dtypes_whose_gradient_works():
    # TensorFlow's CPU build has the native grouped kernel in float32 and bfloat16. Its float16 filter
    # gradient asks for an ungrouped filter's size and fails on an AMD EPYC, and works on an Intel Xeon
    # with AVX512_FP16: "auto" must take the native kernel exactly where a tape says it trains.
    assert L.resolved_grouped_conv_kernel("float32") == "native"
    assert L.resolved_grouped_conv_kernel("bfloat16") == "native"
    float16_works = tensorflow_trains_grouped_convolutions_natively("float16")
    assert L.resolved_grouped_conv_kernel("float16") == ("native" if float16_works else "keras")
    if not float16_works:
        with pytest.raises(ValueError, match="in float16"):
            with L.grouped_conv_kernel_scope("native"):
                L.resolved_grouped_conv_kernel("float16")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_mixed_precision_training_step_runs(policy):
    from keras_regnet import RegNet, RegNetConfig

    keras.mixed_precision.set_global_policy(policy)
    try:
        cfg = RegNetConfig(depth=2, w0=16, wa=8.0, wm=2.0, group_width=8, se_ratio=0.25)
        model = RegNet(cfg, input_shape=(32, 32, 3), classes=4)
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        x = RNG.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
        loss = model.train_on_batch(x, np.eye(4, dtype="float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(loss)
