"""Analytic complexity of a RegNet or AnyNet: flops, parameters and activations.

Counted as pycls 0.1.1 counts them (``pycls.models.anynet`` and its
``complexity`` helpers), from the configuration alone, without building or
tracing a model:

* ``flops``: multiply-adds of every convolution and dense layer, plus one per
  output element for bias terms.  BatchNorm, ReLU, pooling and the residual
  add are not counted.
* ``params``: convolution and dense weights and biases, plus 2 per channel for
  every BatchNorm (gamma and beta; moving statistics are not parameters).
* ``acts``: output elements of every convolution and dense layer.

One implementation counts both one network (:func:`complexity`) and
thousands at once (:func:`layout_complexity`, numpy arrays of per-stage
layouts: what the design-space samplers filter with).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Union

import numpy as np

from keras_regnet.architecture.config import AnyNetConfig, RegNetConfig, anynet_from_regnet, check_int
from keras_regnet.architecture.zoo import lookup


@dataclasses.dataclass(frozen=True)
class NetworkSetting:
    """What a batch of networks counted together shares: input size, classes, stem and SE ratio."""

    resolution: int = 224
    num_classes: int = 1000
    stem_stride: int = 2
    stem_width: int = 32
    se_ratio: Optional[float] = None


def complexity(
    name_or_config: Union[str, RegNetConfig, AnyNetConfig], resolution: int = 224, num_classes: int = 1000
) -> Dict[str, int]:
    """Count flops (multiply-adds), parameters and activations of a RegNet or AnyNet.

    Args:
        name_or_config: a published model name (``"RegNetY-800MF"``,
            ``"RegNetY800MF"``), a :class:`RegNetConfig` or an
            :class:`AnyNetConfig`.
        resolution: square input size in pixels.
        num_classes: classifier outputs (the head is included in the counts).

    Returns:
        ``{"flops": int, "params": int, "acts": int}``; for the published
        models at 224 px these equal the pycls model-zoo numbers exactly.
    """
    if isinstance(name_or_config, AnyNetConfig):
        cfg = name_or_config
    elif isinstance(name_or_config, RegNetConfig):
        cfg = anynet_from_regnet(name_or_config)
    elif isinstance(name_or_config, str):
        cfg = anynet_from_regnet(lookup(name_or_config).config)
    else:
        raise ValueError(
            "name_or_config must be a published model name, a RegNetConfig or an AnyNetConfig; "
            f"got {type(name_or_config).__name__}."
        )
    check_int("resolution", resolution)
    check_int("num_classes", num_classes)
    layout = {
        "depths": np.array([cfg.depths]),
        "widths": np.array([cfg.widths]),
        "bottleneck_ratios": np.array([cfg.bottleneck_ratios]),
        "group_widths": np.array([cfg.group_widths]),
        "strides": np.array([cfg.strides]),
    }
    setting = NetworkSetting(resolution, num_classes, cfg.stem_stride, cfg.stem_width, cfg.se_ratio)
    flops, params, acts = layout_complexity(layout, setting)
    return {"flops": int(flops[0]), "params": int(params[0]), "acts": int(acts[0])}


def layout_complexity(layout, setting: NetworkSetting) -> np.ndarray:
    """Flops, params and acts of N networks given as (N, stages) arrays; a (3, N) int64 array.

    ``layout`` maps ``"depths"``, ``"widths"``, ``"bottleneck_ratios"``,
    ``"group_widths"`` and ``"strides"`` to equal-shape arrays of compatible
    stages (:func:`~keras_regnet.architecture.config.adjust_block_compatibility`).
    """
    widths = layout["widths"].astype(np.int64)
    bottlenecks = np.round(widths * layout["bottleneck_ratios"]).astype(np.int64)
    groups = bottlenecks // layout["group_widths"]
    h = np.full(len(widths), (setting.resolution - 1) // setting.stem_stride + 1, np.int64)
    totals = np.zeros((3, len(widths)), np.int64) + stem_cost(setting)[:, None]
    w_in = np.full_like(h, setting.stem_width)
    for k in range(widths.shape[1]):
        stride = layout["strides"][:, k]
        # pycls pads 3x3 convs by 1 and 1x1 by 0, so out = (in - 1) // stride + 1.
        h_out = (h - 1) // stride + 1
        w_out, w_b, g = widths[:, k], bottlenecks[:, k], groups[:, k]
        projection = (w_in != w_out) | (stride != 1)
        first = block_cost(w_in, w_out, w_b, g, h * h, h_out * h_out, projection, setting.se_ratio)
        rest = block_cost(w_out, w_out, w_b, g, h_out * h_out, h_out * h_out, False, setting.se_ratio)
        totals += first + (layout["depths"][:, k] - 1) * rest
        w_in, h = w_out, h_out
    return totals + head_cost(w_in, setting.num_classes)


def stem_cost(setting: NetworkSetting) -> np.ndarray:
    """3x3 convolution from RGB (no bias) and its BatchNorm: ``[flops, params, acts]``."""
    h = (setting.resolution - 1) // setting.stem_stride + 1
    stem = setting.stem_width
    return np.array([27 * stem * h * h, 29 * stem, stem * h * h], np.int64)


def head_cost(w_in, num_classes) -> np.ndarray:
    """Dense classifier on the pooled features (with bias): ``[flops, params, acts]``."""
    dense = w_in * num_classes + num_classes
    return np.array([dense, dense, np.full_like(dense, num_classes)])


def block_cost(w_in, w_out, w_b, groups, hw_in, hw_out, projection, se_ratio) -> np.ndarray:
    """Residual bottleneck block: 1x1 (stride 1), grouped 3x3 (stride), [SE], 1x1, [projection]."""
    flops = w_in * w_b * hw_in + 9 * w_b * w_b * hw_out // groups + w_b * w_out * hw_out
    params = w_in * w_b + 9 * w_b * w_b // groups + w_b * w_out + 2 * (2 * w_b + w_out)
    acts = w_b * hw_in + w_b * hw_out + w_out * hw_out
    if se_ratio:
        # Two biased 1x1 convs on the pooled map; pycls sizes SE from the block's input width.
        w_se = np.round(w_in * se_ratio).astype(np.int64)
        se = 2 * w_b * w_se + w_se + w_b
        flops, params, acts = flops + se, params + se, acts + w_se + w_b
    proj = np.where(projection, 1, 0)
    flops = flops + proj * w_in * w_out * hw_out
    params = params + proj * (w_in * w_out + 2 * w_out)
    acts = acts + proj * w_out * hw_out
    return np.array([flops, params, acts])
