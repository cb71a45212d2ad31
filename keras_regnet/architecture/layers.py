"""RegNet building blocks in Keras ops, layer for layer as pycls's AnyNet.

Functional-style builders (as in ``keras.applications``): each takes a tensor
and a name prefix and returns the output tensor.  Layer names are stable, so
weights map one-to-one onto pycls's and torchvision's ``state_dict`` keys
(:func:`keras_regnet.weights.convert.torch_module_name`; loaded by
:func:`keras_regnet.weights.convert.set_torch_state`).

Grouped 3x3 convolutions are :class:`GroupedConv2D`, whose kernel (the
backend's native grouped convolution or Keras's own) is chosen with
:func:`set_grouped_conv_kernel`; :class:`BatchNormalization` trains with a
fused op where the backend has one (:mod:`keras_regnet.architecture.kernels`).

Numerics follow PyTorch: BatchNorm epsilon 1e-5 and momentum 0.9 (PyTorch's
0.1), with PyTorch's running variance (:class:`BatchNormalization`), and strided 3x3 convolutions pad 1 pixel on every side before a
'valid' convolution.  (Keras's 'same' pads only bottom/right for stride 2 on
even inputs, which shifts the window and would change ported outputs.)
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_regnet.architecture.config import StageSpec, se_width
from keras_regnet.architecture.kernels import (  # noqa: F401  (the kernel switch is public here too)
    GROUPED_CONV_KERNELS,
    GroupedConvBackend,
    fused_batch_norm_inference,
    fused_batch_norm_training,
    grouped_conv_kernel,
    grouped_conv_kernel_scope,
    native_grouped_conv,
    native_grouped_conv_available,
    pointwise_conv,
    pointwise_conv_as_matmul,
    register_native_grouped_conv,
    resolved_grouped_conv_kernel,
    set_grouped_conv_kernel,
    split_grouped_conv,
)

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


def float32_under_mixed_policy():
    """``"float32"`` under a mixed-precision global policy, else ``None``: the dtype of layers kept in float32.

    The input normalisation and the classifier (with its softmax) stay in
    float32 under ``mixed_*`` policies, as the Keras mixed-precision guide
    recommends for outputs; pixels minus a bfloat16 mean would lose up to 1 level.
    """
    return "float32" if keras.config.dtype_policy().name.startswith("mixed") else None




@keras.saving.register_keras_serializable(package="keras_regnet")
class Conv2D(layers.Conv2D):
    """``keras.layers.Conv2D`` whose 1x1 convolutions run as a matrix product where XLA compiles for a CPU.

    Same variables, arguments, saved config and numerics as Keras's layer
    (whose name it keeps, so that ``.weights.h5`` keys stay the same); XLA's
    CPU convolution is slow, its matrix product is not
    (:func:`~keras_regnet.architecture.kernels.pointwise_conv_as_matmul`).
    """

    def convolution_op(self, inputs, kernel):
        pointwise = self.kernel_size == (1, 1) and self.dilation_rate == (1, 1) and self.groups == 1
        if pointwise and pointwise_conv_as_matmul():
            return pointwise_conv(inputs, kernel, self.strides, self.data_format)
        return super().convolution_op(inputs, kernel)


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
    Training with ``synchronized=True`` (whose ``n`` would be the global
    count) is Keras's own.  On TensorFlow both training and inference run
    one fused op (:mod:`keras_regnet.architecture.kernels`), same numbers up
    to float rounding order.  The class keeps Keras's name so that
    ``.weights.h5`` files, whose keys follow class names, stay compatible.
    """

    def call(self, inputs, training=None, mask=None):
        fusable = mask is None and self.axis in (-1, len(inputs.shape) - 1) and self.scale and self.center
        if not (training and self.trainable):
            fused = None
            if fusable:
                statistics = (self.moving_mean, self.moving_variance)
                fused = fused_batch_norm_inference(inputs, self.gamma, self.beta, *statistics, self.epsilon)
            return fused if fused is not None else super().call(inputs, training=training, mask=mask)
        if mask is not None or self.synchronized:
            return super().call(inputs, training=training, mask=mask)
        fused = fused_batch_norm_training(inputs, self.gamma, self.beta, self.epsilon) if fusable else None
        if fused is not None:
            outputs, mean, unbiased = fused
            self._move_statistics(mean, unbiased)
            return ops.cast(outputs, self.compute_dtype)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))  # as Keras: moments in >= float32
        mean, variance, unbiased = batch_moments(x, self.axis)
        self._move_statistics(mean, unbiased)
        gamma = ops.cast(self.gamma, x.dtype) if self.scale else None
        beta = ops.cast(self.beta, x.dtype) if self.center else None
        outputs = ops.batch_normalization(x, mean, variance, axis=self.axis, offset=beta, scale=gamma, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def _move_statistics(self, mean, unbiased_variance):
        momentum, dtype = self.momentum, mean.dtype
        self.moving_mean.assign(ops.cast(self.moving_mean, dtype) * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(ops.cast(self.moving_variance, dtype) * momentum + unbiased_variance * (1.0 - momentum))


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
    x = (GroupedConv2D if groups > 1 else Conv2D)(
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


def stage_blocks(x, stage: StageSpec, se_ratio, *, index: int, stride: int = 2, padding_style="symmetric"):
    """All blocks of stage ``index`` (1-based); the first one has ``stride`` (2 in every RegNet)."""
    for j in range(stage.depth):
        x = bottleneck_block(
            x, stage, stride if j == 0 else 1, se_ratio, name=f"s{index}_b{j + 1}", padding_style=padding_style
        )
    # A named identity gives every stage a stable output name ("s1".."s4")
    # whatever its depth, for feature extraction.
    return layers.Identity(name=f"s{index}")(x)
