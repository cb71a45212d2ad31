"""RegNet building blocks in Keras ops, layer for layer as pycls's AnyNet.

Functional-style builders (as in ``keras.applications``): each takes a tensor
and a name prefix and returns the output tensor.  Layer names are stable, so
weights map one-to-one onto pycls's and torchvision's ``state_dict`` keys
(:func:`keras_regnet.weights.convert.torch_module_name`; loaded by
:func:`keras_regnet.weights.convert.set_torch_state`).

Grouped 3x3 convolutions are :class:`GroupedConv2D`, whose kernel (the
backend's native grouped convolution or Keras's own) is chosen with
:func:`set_grouped_conv_kernel`.

Numerics follow PyTorch: BatchNorm epsilon 1e-5 and momentum 0.9 (PyTorch's
0.1), with PyTorch's running variance (:class:`BatchNormalization`), and strided 3x3 convolutions pad 1 pixel on every side before a
'valid' convolution.  (Keras's 'same' pads only bottom/right for stride 2 on
even inputs, which shifts the window and would change ported outputs.)
"""

from __future__ import annotations

import contextlib

import keras
from keras import layers, ops

from keras_regnet.architecture.config import StageSpec, se_width

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# pycls initialisation: conv weights ~ N(0, sqrt(2 / (k*k*out_channels))), i.e.
# He-normal on fan_out (Keras's fan_out of a conv kernel is k*k*out_channels,
# also for grouped convs, as in pycls); classifier ~ N(0, 0.01); zero biases.
# A new initializer per layer: a Keras 3 initializer instance draws its seed
# once, so a shared one would give every same-shape kernel the same values.
def conv_initializer():
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def dense_initializer():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.01)


GROUPED_CONV_KERNELS = ("auto", "native", "keras")


class GroupedConvBackend:
    """A backend's own grouped convolution, plugged into :class:`GroupedConv2D`.

    ``conv`` takes the arguments of ``keras.ops.conv`` (``inputs``,
    ``kernel``, ``strides``, ``padding``, ``data_format``, ``dilation_rate``)
    and must give the same numbers as ``keras.ops.conv``.  ``available`` is
    asked once per compute dtype (``"float32"``, ``"bfloat16"``, ...) whether
    ``conv`` works in this process for it, forward and backward (e.g. this
    build has the kernel; TensorFlow's CPU build lacks the float16 gradient).
    """

    def __init__(self, conv, available=None):
        if not callable(conv) or (available is not None and not callable(available)):
            raise ValueError("conv and available must be callables (available may be None).")
        self.conv = conv
        self._available = available
        self._answers = {}

    def available(self, dtype: str = "float32") -> bool:
        """Whether ``conv`` works here for ``dtype`` (the ``available`` function's answer, asked once per dtype)."""
        if dtype not in self._answers:
            self._answers[dtype] = bool(self._available(dtype)) if self._available is not None else True
        return self._answers[dtype]


_native_grouped_convs = {}  # Keras backend name -> GroupedConvBackend
_grouped_conv_kernel = "auto"


def register_native_grouped_conv(backend: str, conv, available=None):
    """Register ``backend``'s native grouped convolution for :class:`GroupedConv2D`.

    Args:
        backend: a Keras backend name (``"tensorflow"``, ``"jax"``,
            ``"torch"``, ...); a later registration replaces an earlier one.
        conv: a function with ``keras.ops.conv``'s arguments giving the same
            outputs, faster.
        available: optional function of a compute dtype name telling
            whether ``conv`` works in this process for it, forward and
            backward; asked once per dtype.

    Returns:
        The :class:`GroupedConvBackend` it replaces, or ``None``.
    """
    if not isinstance(backend, str) or not backend:
        raise ValueError(f"backend must be a Keras backend name such as 'tensorflow'; got backend={backend!r}.")
    previous = _native_grouped_convs.get(backend)
    _native_grouped_convs[backend] = GroupedConvBackend(conv, available)
    return previous


def native_grouped_conv(backend=None):
    """The :class:`GroupedConvBackend` registered for ``backend`` (default: the current one), or ``None``."""
    return _native_grouped_convs.get(backend or keras.backend.backend())


def native_grouped_conv_available(backend=None, dtype: str = "float32") -> bool:
    """Whether ``backend`` (default: the current one) has a registered native grouped convolution working for ``dtype``."""
    entry = native_grouped_conv(backend)
    return entry is not None and entry.available(dtype)


def _no_native_kernel_error(dtype="float32"):
    return ValueError(
        f"kernel='native' needs a native grouped convolution for the {keras.backend.backend()!r} backend "
        f"in {dtype}, and none that works is registered (registered: {sorted(_native_grouped_convs)}); use 'auto' or 'keras'."
    )


def set_grouped_conv_kernel(kernel: str) -> str:
    """Choose how :class:`GroupedConv2D` runs grouped convolutions; returns the previous choice.

    Args:
        kernel: ``"auto"`` (default): the backend's registered native kernel
            where it works, else Keras's; ``"native"``: the registered native
            kernel, an error if the current backend has none that works;
            ``"keras"``: Keras's own ``Conv2D`` path (on TensorFlow, one XLA
            function per grouped convolution).

    The outputs are the same either way; only speed differs.  The choice is
    read when a layer's call is traced: a model's ``predict``/``fit``
    function keeps the kernel it was traced with, so choose before the first
    call (or use :func:`grouped_conv_kernel_scope` around the first call).
    """
    global _grouped_conv_kernel
    if kernel not in GROUPED_CONV_KERNELS:
        raise ValueError(f"kernel must be one of {GROUPED_CONV_KERNELS}; got kernel={kernel!r}.")
    if kernel == "native" and not native_grouped_conv_available():
        raise _no_native_kernel_error()
    previous, _grouped_conv_kernel = _grouped_conv_kernel, kernel
    return previous


def grouped_conv_kernel() -> str:
    """The current choice of :func:`set_grouped_conv_kernel` (``"auto"``, ``"native"`` or ``"keras"``)."""
    return _grouped_conv_kernel


def resolved_grouped_conv_kernel(dtype: str = "float32") -> str:
    """What :class:`GroupedConv2D` runs now on this backend for ``dtype``: ``"native"`` or ``"keras"``."""
    if _grouped_conv_kernel == "auto":
        return "native" if native_grouped_conv_available(dtype=dtype) else "keras"
    if _grouped_conv_kernel == "native" and not native_grouped_conv_available(dtype=dtype):
        raise _no_native_kernel_error(dtype)  # unregistered since it was chosen, or not for this dtype
    return _grouped_conv_kernel


@contextlib.contextmanager
def grouped_conv_kernel_scope(kernel: str):
    """:func:`set_grouped_conv_kernel` for the duration of a ``with`` block (not thread-safe)."""
    previous = set_grouped_conv_kernel(kernel)
    try:
        yield
    finally:
        set_grouped_conv_kernel(previous)


def _tensorflow_has_native_grouped_conv(dtype: str = "float32") -> bool:
    """Whether TensorFlow runs grouped convolutions in ``dtype`` natively here, forward and backward.

    Keras 3 compiles every grouped convolution with XLA on the TensorFlow
    backend because old TensorFlow builds had no CPU kernel for them.  Current
    oneDNN builds do, and it is about 5x faster than XLA's grouped
    convolution on CPU (docs/benchmarks.md), so use it where it works.  The
    gradient is probed too: the CPU build's float16 filter gradient asks for
    an ungrouped filter's size and fails.
    """
    import tensorflow as tf

    # The first call may come while a graph is being traced; probe eagerly.
    with tf.init_scope():
        try:
            x = tf.ones((1, 4, 4, 4), dtype)
            k = tf.ones((3, 3, 2, 4), dtype)
            y = tf.nn.conv2d(x, k, 1, "SAME")  # 2 groups of 2 channels
            # The two gradient ops a training step runs (a tape is inert under init_scope).
            strides = [1, 1, 1, 1]
            dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(k), out_backprop=y, strides=strides, padding="SAME")
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=k, out_backprop=y, strides=strides, padding="SAME")
            return bool(tf.reduce_all(y[0, 1, 1] == 18)) and dx.shape == x.shape and dk.shape == k.shape
        except Exception:  # no kernel for this dtype ("grouped convolution not supported", a gradient failure)
            return False


def _tensorflow_grouped_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """``tf.nn.convolution`` directly, without the XLA wrapper Keras puts around grouped convolutions."""
    import tensorflow as tf

    data_format = data_format or keras.config.image_data_format()
    return tf.nn.convolution(
        inputs,
        kernel,
        strides=strides,
        padding=padding.upper(),
        dilations=dilation_rate,
        data_format="NHWC" if data_format == "channels_last" else "NCHW",
    )


register_native_grouped_conv("tensorflow", _tensorflow_grouped_conv, _tensorflow_has_native_grouped_conv)


@keras.saving.register_keras_serializable(package="keras_regnet")
class GroupedConv2D(layers.Conv2D):
    """``Conv2D`` whose grouped convolutions run on the kernel chosen by :func:`set_grouped_conv_kernel`.

    Same variables, arguments, saved config and numerics as
    ``keras.layers.Conv2D``; only the dispatch of ``groups > 1`` differs.
    By default (``"auto"``) that is TensorFlow's native grouped kernel where
    it works, and Keras's own convolution elsewhere (JAX and torch run
    grouped convolutions natively through Keras already).
    """

    def convolution_op(self, inputs, kernel):
        if self.groups > 1 and resolved_grouped_conv_kernel(keras.backend.standardize_dtype(inputs.dtype)) == "native":
            return native_grouped_conv().conv(
                inputs,
                kernel,
                strides=list(self.strides),
                padding=self.padding,
                data_format=self.data_format,
                dilation_rate=self.dilation_rate,
            )
        return super().convolution_op(inputs, kernel)


def batch_moments(x, axis: int = -1):
    """Per-channel ``(mean, biased variance, unbiased variance)`` of ``x`` over every axis but ``axis``.

    The unbiased variance is ``n / (n - 1)`` times the biased one, ``n`` the
    values per channel: what PyTorch's BatchNorm moves its running variance to.
    """
    axes = [a for a in range(len(x.shape)) if a != axis % len(x.shape)]
    mean, variance = ops.moments(x, axes)
    count = ops.cast(ops.prod(ops.take(ops.shape(x), axes)), x.dtype)
    return mean, variance, variance * count / ops.maximum(count - 1.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_regnet")
class BatchNormalization(layers.BatchNormalization):
    """BatchNormalization whose moving variance is PyTorch's (``nn.BatchNorm2d``).

    Training normalises with the batch's biased variance, as Keras and
    PyTorch both do, but PyTorch moves its running variance towards the
    *unbiased* batch variance (``n / (n - 1)`` times the biased one, ``n`` =
    values per channel); Keras moves towards the biased one.  This layer does
    what PyTorch does, so BatchNorm statistics trained here equal pycls's.
    Inference, and training with ``synchronized=True`` (whose ``n`` would be
    the global count), are Keras's own.  The class keeps Keras's name so that
    ``.weights.h5`` files, whose keys follow class names, stay compatible.
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.synchronized:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))  # as Keras: moments in >= float32
        mean, variance, unbiased = batch_moments(x, self.axis)
        momentum = self.momentum
        self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(ops.cast(self.moving_variance, x.dtype) * momentum + unbiased * (1.0 - momentum))
        gamma = ops.cast(self.gamma, x.dtype) if self.scale else None
        beta = ops.cast(self.beta, x.dtype) if self.center else None
        outputs = ops.batch_normalization(x, mean, variance, axis=self.axis, offset=beta, scale=gamma, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)


PADDING_STYLES = ("symmetric", "same")


def conv_bn(x, filters, kernel_size, *, name, stride=1, groups=1, activation=True, padding_style="symmetric"):
    """Conv (no bias) -> BatchNorm [-> ReLU].

    ``padding_style="symmetric"`` pads as PyTorch/pycls (1 pixel on every side
    of a 3x3); ``"same"`` is TensorFlow's 'same' (for stride 2 on even inputs:
    bottom/right only), which tf-keras's RegNet weights were trained with.
    """
    padding = "valid"
    if kernel_size > 1:
        if stride == 1 or padding_style == "same":
            padding = "same"  # symmetric for odd kernels at stride 1
        else:
            x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    x = (GroupedConv2D if groups > 1 else layers.Conv2D)(
        filters,
        kernel_size,
        strides=stride,
        padding=padding,
        groups=groups,
        use_bias=False,
        kernel_initializer=conv_initializer(),
        name=f"{name}_conv",
    )(x)
    x = BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if activation:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def stem(x, width, stride=2, padding_style="symmetric"):
    """3x3 conv (stride 2 as pycls SimpleStemIN) to ``width`` channels, BN, ReLU."""
    return conv_bn(x, width, 3, stride=stride, name="stem", padding_style=padding_style)


def squeeze_excite(x, se_channels, *, name):
    """Squeeze-and-excitation: GAP -> 1x1 conv+ReLU -> 1x1 conv+sigmoid -> scale."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = layers.Conv2D(
        se_channels, 1, activation="relu", kernel_initializer=conv_initializer(), name=f"{name}_reduce"
    )(s)
    s = layers.Conv2D(
        channels, 1, activation="sigmoid", kernel_initializer=conv_initializer(), name=f"{name}_expand"
    )(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def bottleneck_block(x, stage: StageSpec, stride: int, se_ratio, *, name, padding_style="symmetric"):
    """The X block (Y block with ``se_ratio``): pycls ResBottleneckBlock.

    1x1 conv -> 3x3 grouped conv (carrying the stride) -> [SE] -> 1x1 conv,
    each with BN; a projection shortcut where width or stride changes; ReLU
    after the residual add.
    """
    w_in = x.shape[-1]
    shortcut = x
    if w_in != stage.width or stride != 1:
        shortcut = conv_bn(x, stage.width, 1, stride=stride, name=f"{name}_proj", activation=False)
    y = conv_bn(x, stage.bottleneck_width, 1, name=f"{name}_a")
    y = conv_bn(
        y, stage.bottleneck_width, 3, stride=stride, groups=stage.groups, name=f"{name}_b",
        padding_style=padding_style,
    )
    if se_ratio:
        y = squeeze_excite(y, se_width(w_in, se_ratio), name=f"{name}_se")
    y = conv_bn(y, stage.width, 1, name=f"{name}_c", activation=False)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def stage_blocks(x, stage: StageSpec, se_ratio, *, index: int, padding_style="symmetric"):
    """All blocks of stage ``index`` (1-based); the first one has stride 2."""
    for j in range(stage.depth):
        x = bottleneck_block(
            x, stage, 2 if j == 0 else 1, se_ratio, name=f"s{index}_b{j + 1}", padding_style=padding_style
        )
    # A named identity gives every stage a stable output name ("s1".."s4")
    # whatever its depth, for feature extraction.
    return layers.Identity(name=f"s{index}")(x)
