"""The fast kernels (keras_regnet.architecture.kernels) give the portable path's numbers.

* TensorFlow's fused training BatchNorm: outputs, gradients and PyTorch's
  moving statistics equal to the portable Keras-ops path, eagerly and under
  XLA, in float32 and bfloat16 (which runs the float32 op on CPU).
* The per-group convolution XLA compiles on CPU: equal to Keras's grouped
  convolution (outputs and gradients), and really what runs under
  ``jit_compile=True`` (while the native kernel runs outside it).
* 1x1 convolutions as a matrix product: equal to Keras's convolution, and
  what runs under ``jit_compile=True`` (TensorFlow's default path keeps its
  own convolution).
* A whole training step under ``jit_compile=True`` equals the default path.
The JAX path is covered by tests/test_backends.py (same logits and training
step as TensorFlow, on the registered kernel).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_regnet import RegNet, RegNetConfig
from keras_regnet.architecture import kernels
from keras_regnet.architecture import layers as L

RNG = np.random.default_rng(0)


def bn_training_step(layer, x):
    """(outputs, d loss / d (x, gamma, beta)) of one training call, for a loss with random weights.

    (Not a sum of squares: normalised outputs make that nearly constant, its gradient rounding noise.)
    """
    weights = tf.constant(np.random.default_rng(1).normal(size=x.shape).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return [tf.cast(t, tf.float32) for t in [y, *grads]]


def fresh_bn(x_shape, dtype):
    layer = L.BatchNormalization(epsilon=L.BN_EPSILON, momentum=L.BN_MOMENTUM, dtype=dtype)
    layer.build(x_shape)
    layer.gamma.assign(RNG.uniform(0.5, 1.5, x_shape[-1]).astype("float32"))
    layer.beta.assign(RNG.normal(size=x_shape[-1]).astype("float32"))
    return layer


@pytest.mark.parametrize("dtype, tol", [("float32", 2e-5), ("mixed_bfloat16", 2e-2)])
@pytest.mark.parametrize("jit", [False, True])
def test_fused_batch_norm_equals_the_portable_path(monkeypatch, dtype, tol, jit):
    x = tf.constant(RNG.normal(3.0, 2.0, (6, 5, 5, 12)).astype("float32"))
    layer = fresh_bn(x.shape, dtype)
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    x_in = tf.cast(x, layer.compute_dtype)
    step = tf.function(bn_training_step, jit_compile=True) if jit else bn_training_step

    calls = []
    real = kernels.fused_batch_norm_training
    monkeypatch.setattr(L, "fused_batch_norm_training", lambda *a: calls.append(1) or real(*a))
    fused = [t.numpy() for t in step(layer, x_in)]
    fused_stats = layer.moving_mean.numpy(), layer.moving_variance.numpy()
    assert calls, "the fused kernel was not asked"

    portable_layer = fresh_bn(x.shape, dtype)
    portable_layer.gamma.assign(gamma), portable_layer.beta.assign(beta)
    monkeypatch.setattr(L, "fused_batch_norm_training", lambda *a: None)  # as on a backend without one
    portable = [t.numpy() for t in step(portable_layer, x_in)]

    for a, b in zip(fused, portable):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())
    # PyTorch's running statistics: momentum 0.1 towards the batch mean and unbiased variance.
    x64 = tf.cast(x_in, tf.float64).numpy().reshape(-1, 12)
    np.testing.assert_allclose(fused_stats[0], 0.1 * x64.mean(0), rtol=tol, atol=1e-6)
    np.testing.assert_allclose(fused_stats[1], 0.9 + 0.1 * x64.var(0, ddof=1), rtol=tol)
    np.testing.assert_allclose(portable_layer.moving_variance.numpy(), fused_stats[1], rtol=tol)


def test_fused_batch_norm_is_used_only_where_it_exists():
    x = tf.ones((2, 3, 3, 4))
    assert kernels.fused_batch_norm_training(x, tf.ones(4), tf.zeros(4), 1e-5) is not None
    assert kernels.fused_batch_norm_training(tf.ones((2, 4)), tf.ones(4), tf.zeros(4), 1e-5) is None  # 2-D
    assert kernels.fused_batch_norm_training(tf.cast(x, tf.float64), tf.ones(4), tf.zeros(4), 1e-5) is None


def test_bfloat16_training_batch_norm_runs_in_float32_on_cpu():
    """oneDNN's bfloat16 BatchNorm is a slow generic kernel on CPU: the graph must hold the float32 op."""
    x = tf.cast(tf.constant(RNG.normal(size=(4, 5, 5, 8)).astype("float32")), tf.bfloat16)
    graph = tf.function(lambda x: kernels.fused_batch_norm_training(x, tf.ones(8), tf.zeros(8), 1e-5))
    concrete = graph.get_concrete_function(x)
    bn_types = {op.get_attr("T") for op in concrete.graph.get_operations() if op.type == "FusedBatchNormV3"}
    assert bn_types == {tf.float32}
    outputs, mean, variance = concrete(x)
    assert (outputs.dtype, mean.dtype, variance.dtype) == (tf.bfloat16, tf.float32, tf.float32)
    x32 = tf.cast(x, tf.float32).numpy().reshape(-1, 8)
    np.testing.assert_allclose(mean.numpy(), x32.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance.numpy(), x32.var(0, ddof=1), rtol=1e-5)


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "valid"), (1, "valid")])
def test_split_grouped_conv_equals_keras_grouped_conv(strides, padding):
    x = tf.constant(RNG.normal(size=(2, 9, 9, 12)).astype("float32"))
    k = tf.Variable(RNG.normal(size=(3, 3, 3, 8)).astype("float32"))  # 4 groups of 3 -> 2

    def outputs_and_grads(conv):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x, k, strides, padding)
            loss = tf.reduce_sum(y**2 * tf.range(1.0, 9.0))
        return [y.numpy(), *[g.numpy() for g in tape.gradient(loss, [x, k])]]

    ours = outputs_and_grads(kernels.split_grouped_conv)
    stock = outputs_and_grads(keras.ops.conv)
    for a, b in zip(ours, stock):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_xla_compilation_takes_the_split_kernel_and_eager_the_native_one(monkeypatch):
    layer = L.GroupedConv2D(8, 3, strides=2, groups=4, padding="valid")
    x = tf.constant(RNG.normal(size=(2, 9, 9, 8)).astype("float32"))
    eager = layer(x).numpy()
    splits = []
    real = kernels.split_grouped_conv
    monkeypatch.setattr(kernels, "split_grouped_conv", lambda *a: splits.append(1) or real(*a))
    assert not splits and layer(x) is not None and not splits  # eager, and plain graphs: native
    tf.function(layer)(x)
    assert not splits
    compiled = tf.function(layer, jit_compile=True)(x).numpy()
    assert splits  # under XLA: the per-group convolution
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides, padding, data_format", [(1, "valid", "channels_last"), (2, "same", "channels_last"),
                                                    (2, "valid", "channels_first"), ((1, 2), "valid", "channels_last")])
def test_pointwise_conv_equals_keras_conv(strides, padding, data_format):
    shape = (2, 7, 6, 12) if data_format == "channels_last" else (2, 12, 7, 6)
    x = tf.constant(RNG.normal(size=shape).astype("float32"))
    k = tf.Variable(RNG.normal(size=(1, 1, 12, 5)).astype("float32"))

    def outputs_and_grads(conv):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x, k)
            loss = tf.reduce_sum(y**2 * tf.reshape(tf.cast(tf.range(tf.size(y)) % 7, y.dtype), y.shape))
        return [y.numpy(), *[g.numpy() for g in tape.gradient(loss, [x, k])]]

    ours = outputs_and_grads(lambda x, k: kernels.pointwise_conv(x, k, strides, data_format))
    stock = outputs_and_grads(lambda x, k: keras.ops.conv(x, k, strides, padding, data_format))
    assert ours[0].shape == stock[0].shape
    for a, b in zip(ours, stock):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_xla_compilation_runs_1x1_convolutions_as_a_matmul(monkeypatch):
    layer = L.Conv2D(6, 1, strides=2, use_bias=False)
    x = tf.constant(RNG.normal(size=(2, 8, 8, 4)).astype("float32"))
    eager = layer(x).numpy()
    calls = []
    real = L.pointwise_conv
    monkeypatch.setattr(L, "pointwise_conv", lambda *a: calls.append(1) or real(*a))
    assert not kernels.pointwise_conv_as_matmul()
    tf.function(layer)(x)
    assert not calls  # TensorFlow's default path keeps its oneDNN convolution
    compiled = tf.function(layer, jit_compile=True)(x).numpy()
    assert calls
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-5)
    calls.clear()
    tf.function(L.Conv2D(6, 3, use_bias=False), jit_compile=True)(x)
    assert not calls  # only 1x1 kernels


def test_a_jit_compiled_training_step_equals_the_default_one():
    cfg = RegNetConfig(depth=3, w0=16, wa=8.0, wm=2.0, group_width=8, se_ratio=0.25)
    x = RNG.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.eye(4, dtype="float32")[RNG.integers(0, 4, 8)]
    results = {}
    for jit in (False, True):
        keras.utils.set_random_seed(7)
        model = RegNet(cfg, input_shape=(32, 32, 3), classes=4)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="categorical_crossentropy",
                      jit_compile=jit)
        losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
        results[jit] = losses, [w.numpy() for w in model.weights]
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-4)
    for a, b in zip(results[True][1], results[False][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("nesterov", [True, False])
def test_fused_momentum_update_equals_torch_sgd_element_wise(monkeypatch, nesterov):
    from keras_regnet.training import optimizer as opt

    rng = np.random.default_rng(3)
    start = rng.normal(size=(5, 4)).astype("float32")
    grads = [rng.normal(size=(5, 4)).astype("float32") for _ in range(3)]

    def run(fused):
        calls = []
        real = opt.fused_momentum_update
        monkeypatch.setattr(opt, "fused_momentum_update",
                            (lambda *a: calls.append(1) or real(*a)) if fused else (lambda *a: False))
        var = keras.Variable(start)
        sgd = opt.TorchSGD(l2=5e-5, learning_rate=0.1, momentum=0.9, nesterov=nesterov)
        for lr, g in zip((0.1, 0.05, 0.02), grads):  # the learning rate changes, as pycls's schedule does
            sgd.learning_rate = lr
            sgd.apply([tf.constant(g)], [var])
        return var.numpy(), calls

    fused, calls = run(True)
    plain, _ = run(False)
    assert calls  # the fused op really ran
    np.testing.assert_allclose(fused, plain, rtol=1e-6, atol=1e-7)
    # and both are PyTorch's update, computed here in float64
    p, v = start.astype("float64"), np.zeros_like(start, dtype="float64")
    for lr, g in zip((0.1, 0.05, 0.02), grads):
        g = g + 5e-5 * p
        v = 0.9 * v + g
        p = p - lr * (g + 0.9 * v if nesterov else v)
    np.testing.assert_allclose(fused, p, rtol=1e-5, atol=1e-6)


def test_synchronized_batch_norm_trains_on_batch_statistics_not_the_inference_kernel():
    """``synchronized=True`` in training is Keras's own path: batch statistics, moving ones updated."""
    x = tf.constant(RNG.normal(3.0, 2.0, (4, 3, 3, 6)).astype("float32"))
    layer = L.BatchNormalization(epsilon=L.BN_EPSILON, momentum=L.BN_MOMENTUM, synchronized=True)
    y = layer(x, training=True).numpy()
    np.testing.assert_allclose(y.reshape(-1, 6).mean(0), 0, atol=1e-5)  # normalised by the batch, not by (0, 1)
    assert np.abs(layer.moving_mean.numpy()).max() > 0.1  # moved towards the batch mean (about 3)
