"""Analytic complexity of a RegNet: flops, parameters and activations.

Counted as pycls counts them (``pycls.models.blocks`` ``*_cx`` helpers), from
the configuration alone, without building or tracing a model:

* ``flops``: multiply-adds of every convolution and dense layer, plus one per
  output element for bias terms.  BatchNorm, ReLU, pooling and the residual
  add are not counted.
* ``params``: convolution and dense weights and biases, plus 2 per channel for
  every BatchNorm (gamma and beta; moving statistics are not parameters).
* ``acts``: output elements of every convolution and dense layer.
"""

from __future__ import annotations

from typing import Dict, Union

from keras_regnet.architecture.config import RegNetConfig, check_int, se_width
from keras_regnet.architecture.zoo import lookup


class _Counter:
    """Running totals over a spatial size, mirroring pycls's ``cx`` dict."""

    def __init__(self, resolution: int):
        self.h = self.w = resolution
        self.flops = self.params = self.acts = 0

    def conv(self, w_in, w_out, k, stride=1, groups=1, bias=False):
        # pycls pads 3x3 convs by 1 and 1x1 by 0, so out = (in - 1) // stride + 1.
        self.h = (self.h - 1) // stride + 1
        self.w = (self.w - 1) // stride + 1
        hw = self.h * self.w
        self.flops += k * k * w_in * w_out * hw // groups + (w_out * hw if bias else 0)
        self.params += k * k * w_in * w_out // groups + (w_out if bias else 0)
        self.acts += w_out * hw

    def batchnorm(self, w):
        self.params += 2 * w

    def dense(self, w_in, w_out):
        self.flops += w_in * w_out + w_out
        self.params += w_in * w_out + w_out
        self.acts += w_out

    def squeeze_excite(self, w, w_se):
        # Runs on the 1x1 pooled map; the spatial size is unchanged afterwards.
        h, w_ = self.h, self.w
        self.h = self.w = 1
        self.conv(w, w_se, 1, bias=True)
        self.conv(w_se, w, 1, bias=True)
        self.h, self.w = h, w_


def complexity(
    name_or_config: Union[str, RegNetConfig], resolution: int = 224, num_classes: int = 1000
) -> Dict[str, int]:
    """Count flops (multiply-adds), parameters and activations of a RegNet.

    Args:
        name_or_config: a published model name (``"RegNetY-800MF"``,
            ``"RegNetY800MF"``) or a :class:`RegNetConfig`.
        resolution: square input size in pixels.
        num_classes: classifier outputs (the head is included in the counts).

    Returns:
        ``{"flops": int, "params": int, "acts": int}``; for the published
        models at 224 px these equal the pycls model-zoo numbers exactly.
    """
    cfg = name_or_config if isinstance(name_or_config, RegNetConfig) else lookup(name_or_config).config
    check_int("resolution", resolution)
    check_int("num_classes", num_classes)
    cx = _Counter(resolution)
    cx.conv(3, cfg.stem_width, 3, stride=cfg.stem_stride)
    cx.batchnorm(cfg.stem_width)
    w_in = cfg.stem_width
    for stage in cfg.stages:
        for i in range(stage.depth):
            stride = 2 if i == 0 else 1
            _block(cx, cfg, w_in, stage, stride)
            w_in = stage.width
    cx.h = cx.w = 1
    cx.dense(w_in, num_classes)
    return {"flops": cx.flops, "params": cx.params, "acts": cx.acts}


def _block(cx: _Counter, cfg: RegNetConfig, w_in: int, stage, stride: int):
    h, w = cx.h, cx.w
    w_out, w_b = stage.width, stage.bottleneck_width
    if w_in != w_out or stride != 1:
        cx.conv(w_in, w_out, 1, stride=stride)
        cx.batchnorm(w_out)
        cx.h, cx.w = h, w
    cx.conv(w_in, w_b, 1)
    cx.batchnorm(w_b)
    cx.conv(w_b, w_b, 3, stride=stride, groups=stage.groups)
    cx.batchnorm(w_b)
    if cfg.has_se:
        cx.squeeze_excite(w_b, se_width(w_in, cfg.se_ratio))
    cx.conv(w_b, w_out, 1)
    cx.batchnorm(w_out)

