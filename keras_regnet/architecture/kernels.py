"""Fast kernels behind the layers, one per backend, chosen inside the Keras layer.

Keras 3's own ops are correct everywhere but slow in two places on CPU:

* **Grouped convolutions.**  Keras wraps each one in its own XLA function on
  the TensorFlow backend, and XLA's CPU compiler (TensorFlow with
  ``jit_compile=True``, and JAX) has no fast grouped convolution: 10-100x
  slower than its ungrouped one (docs/benchmarks.md).  :class:`~keras_regnet.architecture.layers.GroupedConv2D`
  asks this module's
  switch (:func:`set_grouped_conv_kernel`) which kernel to run: TensorFlow's
  oneDNN grouped convolution outside XLA, one ungrouped convolution per
  group (:func:`split_grouped_conv`) wherever XLA compiles on CPU.
* **BatchNorm.**  In training Keras computes the batch moments with
  separate element-wise ops; TensorFlow has one fused op (forward and
  gradient) that also returns PyTorch's unbiased variance
  (:func:`fused_batch_norm_training`; in float32 for bfloat16 inputs on
  CPU, where oneDNN's bfloat16 BatchNorm is a slow generic kernel).  In
  inference the fused op is what TensorFlow folds into the convolution
  before it, and it takes bfloat16 without casts
  (:func:`fused_batch_norm_inference`).

Every kernel gives the same numbers as the portable Keras ops up to float
rounding order; tests/test_grouped_conv_kernel.py and tests/test_fast_paths.py
check outputs and gradients on every path.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import keras
from keras import ops

GROUPED_CONV_KERNELS = ("auto", "native", "keras")


class GroupedConvBackend:
    """A backend's own grouped convolution, plugged into :class:`~keras_regnet.architecture.layers.GroupedConv2D`.

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
    """Register ``backend``'s native grouped convolution for :class:`~keras_regnet.architecture.layers.GroupedConv2D`.

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
    """Choose how :class:`~keras_regnet.architecture.layers.GroupedConv2D` runs grouped convolutions; returns the previous choice.

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
    """What :class:`~keras_regnet.architecture.layers.GroupedConv2D` runs now on this backend for ``dtype``: ``"native"`` or ``"keras"``."""
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
    """``tf.nn.convolution`` directly, without the XLA wrapper Keras puts around grouped convolutions.

    Inside a function compiled with XLA (``jit_compile=True``) that op
    would become XLA's grouped convolution, the slow one on CPU, so there
    the convolution is split per group (:func:`split_grouped_conv`).
    """
    import tensorflow as tf

    if _tensorflow_compiling_with_xla():
        return split_grouped_conv(inputs, kernel, strides, padding, data_format, dilation_rate)
    data_format = data_format or keras.config.image_data_format()
    return tf.nn.convolution(
        inputs,
        kernel,
        strides=strides,
        padding=padding.upper(),
        dilations=dilation_rate,
        data_format="NHWC" if data_format == "channels_last" else "NCHW",
    )


def split_grouped_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """A grouped convolution as one ungrouped ``keras.ops.conv`` per group, concatenated.

    Takes ``keras.ops.conv``'s arguments.  Each output channel sums the same
    inputs times the same weights as in the grouped convolution, so outputs
    and gradients are equal up to float rounding order.  Written once in
    Keras ops: it is what XLA compiles fast on CPU (TensorFlow under
    ``jit_compile=True``, JAX), where a grouped convolution is not.
    """
    data_format = data_format or keras.config.image_data_format()
    channel_axis = -1 if data_format == "channels_last" else 1
    groups = inputs.shape[channel_axis] // kernel.shape[-2]
    if groups == 1:
        return ops.conv(inputs, kernel, strides, padding, data_format, dilation_rate)
    per_group = zip(ops.split(inputs, groups, axis=channel_axis), ops.split(kernel, groups, axis=-1))
    outputs = [ops.conv(x, k, strides, padding, data_format, dilation_rate) for x, k in per_group]
    return ops.concatenate(outputs, axis=channel_axis)


def _tensorflow_compiling_with_xla() -> bool:
    """Whether the TensorFlow graph being traced now will be compiled by XLA (``jit_compile=True``).

    TensorFlow has no public query for this; its own control-flow code asks
    the same function.  Where it is missing (another TensorFlow version),
    answer False: the native kernel, correct and only slower under XLA.
    """
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


def pointwise_conv(inputs, kernel, strides=1, data_format=None):
    """A 1x1 convolution (any padding, no dilation) as a matrix product over the channel axis.

    Strides subsample first; 'same' and 'valid' coincide for 1x1 kernels.
    Each output is the same sum of products as the convolution's, so
    outputs and gradients are equal up to float rounding order.  Written in
    Keras ops; it is what XLA runs fast on CPU, where its convolution is
    2-6x slower than its matrix product at RegNet's 1x1 shapes
    (docs/benchmarks.md).
    """
    data_format = data_format or keras.config.image_data_format()
    sh, sw = (strides, strides) if isinstance(strides, int) else tuple(strides)
    weights = kernel[0, 0]  # (in, out)
    if data_format == "channels_last":
        return ops.matmul(inputs[:, ::sh, ::sw, :], weights)
    return ops.einsum("nchw,co->nohw", inputs[:, :, ::sh, ::sw], weights)


def pointwise_conv_as_matmul() -> bool:
    """Whether 1x1 convolutions traced now should run as :func:`pointwise_conv`: where XLA compiles them for a CPU.

    That is JAX on CPU without a ``keras.distribution`` (the condition of
    the per-group convolution, :func:`_jax_grouped_conv`), and TensorFlow
    inside ``jit_compile=True`` with no GPU.  Elsewhere the backend's own
    convolution is faster (oneDNN, cuDNN) or, for TensorFlow's default
    path, what grappler fuses BatchNorm into.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_on_one_cpu()
    if backend == "tensorflow":
        return _tensorflow_compiling_with_xla() and _tensorflow_without_gpu()
    return False


def _tensorflow_without_gpu() -> bool:
    """Whether TensorFlow sees no GPU, so its ops run on the CPU."""
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


# jaxlib 0.10's YNNPACK reduction fusion lost precision on an Intel Xeon with AMX: 2 training steps
# of a small RegNet ended 8.7e-4 away from float64, 4 steps 4e-2 (TensorFlow: 2e-5); without it,
# 3e-6 and 4.5e-4 (tests/test_distribution_exact.py). Only jaxlib 0.10 is known to have the flag: XLA aborts on unknown flags.
YNN_REDUCE_FUSION_OFF = "--xla_cpu_experimental_ynn_fusion_type=-reduce"


def keep_jax_cpu_reductions_exact(environ=os.environ) -> str:
    """Turn off jaxlib 0.10's YNNPACK reduction fusion (``XLA_FLAGS``) before JAX starts its backends.

    Returns what was done: ``"set"``, ``"kept"`` (``XLA_FLAGS`` already
    names a YNN fusion setting, or another jaxlib), or ``"too late"`` (JAX's
    backends had started; a warning says how to set it).
    """
    import jaxlib
    from jax._src import xla_bridge

    flags = environ.get("XLA_FLAGS", "")
    if "ynn_fusion_type" in flags or not jaxlib.__version__.startswith("0.10."):
        return "kept"
    if xla_bridge.backends_are_initialized():
        warnings.warn(f"JAX started before keras_regnet was imported; for exact float32 training on CPU, "
                      f"start the process with XLA_FLAGS='{YNN_REDUCE_FUSION_OFF}' (docs/training.md).", stacklevel=2)
        return "too late"
    environ["XLA_FLAGS"] = f"{flags} {YNN_REDUCE_FUSION_OFF}".strip()
    return "set"


def _jax_on_one_cpu() -> bool:
    import jax

    return jax.default_backend() == "cpu" and keras.distribution.distribution() is None


def _jax_grouped_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Per-group convolutions on JAX's CPU backend; XLA's own grouped convolution elsewhere.

    Elsewhere means on GPU/TPU (cuDNN's grouped convolution is fast) and
    under a ``keras.distribution`` (data parallel over several devices):
    there, with BatchNorm in training, the per-group form gave weights
    2.6% away from the 1-device run after 4 steps
    (tests/test_distribution_exact.py), while XLA's own stays exact.
    """
    if _jax_on_one_cpu():
        return split_grouped_conv(inputs, kernel, strides, padding, data_format, dilation_rate)
    return ops.conv(inputs, kernel, strides, padding, data_format, dilation_rate)


register_native_grouped_conv("tensorflow", _tensorflow_grouped_conv, _tensorflow_has_native_grouped_conv)
register_native_grouped_conv("jax", _jax_grouped_conv)
if keras.backend.backend() == "jax":
    keep_jax_cpu_reductions_exact()

FUSED_BATCH_NORM_DTYPES = ("float32", "bfloat16", "float16")


def _fusable(inputs) -> bool:
    return (
        keras.backend.backend() == "tensorflow"
        and len(inputs.shape) == 4
        and keras.backend.standardize_dtype(inputs.dtype) in FUSED_BATCH_NORM_DTYPES
    )


def fused_batch_norm_inference(inputs, gamma, beta, mean, variance, epsilon: float):
    """Inference-mode BatchNorm over the last axis of a 4-D tensor as one fused op, where the backend has one.

    Returns the outputs in ``inputs``' dtype, or ``None`` (then the caller
    uses Keras's own path).  TensorFlow's grappler fuses this op into the
    convolution before it (``_FusedConv2D``), and bfloat16 inputs need no
    casts around it: RegNetY-800MF inference 1.9x faster in float32 on CPU
    (docs/benchmarks.md).
    """
    if not _fusable(inputs):
        return None
    import tensorflow as tf

    outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
        inputs, ops.cast(gamma, "float32"), ops.cast(beta, "float32"), mean=mean, variance=variance,
        epsilon=epsilon, is_training=False, data_format="NHWC",
    )
    return outputs


def fused_batch_norm_training(inputs, gamma, beta, epsilon: float):
    """Training-mode BatchNorm over the last axis of a 4-D tensor as one fused op, where the backend has one.

    Returns ``(outputs, batch mean, unbiased batch variance)``, the outputs
    in ``inputs``' dtype, or ``None`` where there is no fused op for this
    backend, rank or dtype (then the caller uses portable Keras ops).
    TensorFlow's ``FusedBatchNormV3`` normalises with the biased variance
    and returns the unbiased one, as PyTorch's BatchNorm does; its gradient
    is one fused op too.  On JAX, XLA fuses the portable ops itself.

    bfloat16 inputs on CPU are normalised in float32 between two casts:
    oneDNN's CPU BatchNorm has no JIT kernel for bfloat16 in this layout
    (``ONEDNN_VERBOSE`` names ``nspc_bnorm:any``, 5-10x slower than its
    float32 kernel), and the casts cost less than the difference
    (docs/benchmarks.md, mixed precision).  The statistics are float32
    either way, as oneDNN accumulates bfloat16 in float32.
    """
    if not _fusable(inputs):
        return None
    import tensorflow as tf

    dtype = keras.backend.standardize_dtype(inputs.dtype)
    if dtype == "bfloat16" and _tensorflow_without_gpu():
        inputs = tf.cast(inputs, "float32")
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, ops.cast(gamma, "float32"), ops.cast(beta, "float32"), epsilon=epsilon, is_training=True, data_format="NHWC"
    )
    return tf.cast(outputs, dtype), mean, variance
