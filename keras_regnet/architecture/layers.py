"""RegNet building blocks in Keras ops, layer for layer as pycls's AnyNet.

Functional-style builders (as in ``keras.applications``): each takes a tensor
and a name prefix and returns the output tensor.  Layer names are stable, so
weights map one-to-one onto pycls's ``state_dict`` (see ``PYCLS_NAMES``).

Numerics follow PyTorch: BatchNorm epsilon 1e-5 and momentum 0.9 (PyTorch's
0.1), and strided 3x3 convolutions pad 1 pixel on every side before a
'valid' convolution.  (Keras's 'same' pads only bottom/right for stride 2 on
even inputs, which shifts the window and would change ported outputs.)
"""

from __future__ import annotations

import functools

import keras
from keras import layers

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


@functools.lru_cache(maxsize=None)
def _tensorflow_has_native_grouped_conv() -> bool:
    """Whether TensorFlow runs grouped convolutions natively on this machine.

    Keras 3 compiles every grouped convolution with XLA on the TensorFlow
    backend because old TensorFlow builds had no CPU kernel for them.  Current
    oneDNN builds do, and it is about 5x faster than XLA's grouped
    convolution on CPU (docs/benchmarks.md), so use it where it works.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    # The first call may come while a graph is being traced; probe eagerly.
    with tf.init_scope():
        try:
            x = tf.ones((1, 4, 4, 4))
            k = tf.ones((3, 3, 2, 4))
            y = tf.nn.conv2d(x, k, 1, "SAME")  # 2 groups of 2 channels
            return bool(tf.reduce_all(y[0, 1, 1] == 18.0))
        except Exception:  # no CPU kernel ("grouped convolution not supported")
            return False


@keras.saving.register_keras_serializable(package="keras_regnet")
class GroupedConv2D(layers.Conv2D):
    """``Conv2D`` that runs grouped convolutions on TensorFlow's native kernel.

    Same variables, arguments and numerics as ``keras.layers.Conv2D``; only
    the kernel dispatch differs, and only on the TensorFlow backend.
    """

    def convolution_op(self, inputs, kernel):
        if self.groups > 1 and _tensorflow_has_native_grouped_conv():
            import tensorflow as tf

            return tf.nn.convolution(
                inputs,
                kernel,
                strides=self.strides,
                padding=self.padding.upper(),
                dilations=self.dilation_rate,
                data_format="NHWC" if self.data_format == "channels_last" else "NCHW",
            )
        return super().convolution_op(inputs, kernel)


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
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
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
