"""RegNet configurations and the generator equations of the design space.

A RegNet is described by six numbers (Radosavovic et al. 2020, eq. 2-4):
depth ``d``, initial width ``w0``, slope ``wa``, width multiplier ``wm``,
group width ``g`` and bottleneck ratio ``b``.  The generator turns them into
per-stage depths, widths and group widths exactly as pycls's
``generate_regnet`` + block-compatibility adjustment does.

Everything here is plain Python/numpy: no Keras, so configurations can be
explored (and their complexity counted) without building a model.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import numpy as np

# Widths are quantised to multiples of this (pycls's ``q``).
WIDTH_QUANTUM = 8


@dataclasses.dataclass(frozen=True)
class RegNetConfig:
    """A point of the RegNet design space.

    Args:
        depth: total number of blocks ``d`` (>= 1).
        w0: initial width, a positive multiple of 8.
        wa: width slope (>= 0).
        wm: width multiplier (> 1); stages are where ``w0 * wm**k`` is reached.
        group_width: channels per group in the 3x3 convolution (>= 1).
        bottleneck_ratio: bottleneck multiplier ``b`` (> 0); 1.0 for the
            published RegNets.
        se_ratio: squeeze-and-excitation ratio relative to each block's input
            width (RegNetY uses 0.25); ``None`` or 0 disables SE (RegNetX).
        stem_width: output channels of the stem convolution.
        stem_stride: stride of the stem convolution: 2 as published (ImageNet);
            1 for small images such as CIFAR's 32x32, so the last stage still
            sees a 2x2 map instead of 1x1.

    The derived properties ``stage_depths``, ``stage_widths`` and
    ``stage_group_widths`` are what the model builder uses.

    Example:
        >>> cfg = RegNetConfig(depth=13, w0=24, wa=36.44, wm=2.49, group_width=8)
        >>> cfg.stage_widths
        (24, 56, 152, 368)
    """

    depth: int
    w0: int
    wa: float
    wm: float
    group_width: int
    bottleneck_ratio: float = 1.0
    se_ratio: Optional[float] = None
    stem_width: int = 32
    stem_stride: int = 2

    def __post_init__(self):
        check_int("depth", self.depth)
        if (
            isinstance(self.w0, bool)
            or not isinstance(self.w0, (int, np.integer))
            or self.w0 < WIDTH_QUANTUM
            or self.w0 % WIDTH_QUANTUM
        ):
            raise ValueError(
                f"w0 must be a positive multiple of {WIDTH_QUANTUM}; got w0={self.w0!r}."
            )
        _check_number("wa", self.wa)
        if self.wa < 0:
            raise ValueError(f"wa must be >= 0; got wa={self.wa}.")
        _check_number("wm", self.wm)
        if self.wm <= 1:
            raise ValueError(f"wm must be > 1; got wm={self.wm}.")
        check_int("group_width", self.group_width)
        _check_number("bottleneck_ratio", self.bottleneck_ratio)
        if self.bottleneck_ratio <= 0:
            raise ValueError(
                f"bottleneck_ratio must be > 0; got bottleneck_ratio={self.bottleneck_ratio}."
            )
        if self.se_ratio is not None:
            _check_number("se_ratio", self.se_ratio)
            if not 0 <= self.se_ratio <= 1:
                raise ValueError(
                    f"se_ratio must be None or in [0, 1]; got se_ratio={self.se_ratio}."
                )
        check_int("stem_width", self.stem_width)
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2; got stem_stride={self.stem_stride!r}.")

    @property
    def has_se(self) -> bool:
        return bool(self.se_ratio)

    @property
    def stages(self) -> Tuple["StageSpec", ...]:
        """The stages after the generator and block-compatibility adjustment."""
        return _stages(self)

    @property
    def stage_depths(self) -> Tuple[int, ...]:
        return tuple(s.depth for s in self.stages)

    @property
    def stage_widths(self) -> Tuple[int, ...]:
        return tuple(s.width for s in self.stages)

    @property
    def stage_group_widths(self) -> Tuple[int, ...]:
        return tuple(s.group_width for s in self.stages)

    @property
    def block_widths(self) -> Tuple[int, ...]:
        """Per-block quantised widths ``w_j`` before the group adjustment."""
        return tuple(int(w) for w in generate_block_widths(self.depth, self.w0, self.wa, self.wm))


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One stage: ``depth`` blocks of output ``width``; the first has stride 2."""

    depth: int
    width: int
    group_width: int
    bottleneck_ratio: float

    @property
    def bottleneck_width(self) -> int:
        return int(round(self.width * self.bottleneck_ratio))

    @property
    def groups(self) -> int:
        return self.bottleneck_width // self.group_width


def generate_block_widths(depth: int, w0: int, wa: float, wm: float) -> np.ndarray:
    """Quantised per-block widths from the linear parameterisation (eq. 2-4).

    ``u_j = w0 + wa*j``; ``s_j = round(log(u_j/w0) / log(wm))``;
    ``w_j = round(w0 * wm**s_j / 8) * 8``.  numpy rounds half to even, as pycls
    does; rounding half up gives different widths for several published models.
    """
    u = np.arange(depth) * wa + w0
    s = np.round(np.log(u / w0) / np.log(wm))
    w = w0 * np.power(wm, s)
    return (np.round(w / WIDTH_QUANTUM) * WIDTH_QUANTUM).astype(int)


def adjust_block_compatibility(widths, bottleneck_ratios, group_widths):
    """Make widths, bottleneck ratios and group widths mutually compatible.

    The group width is capped at the bottleneck width, and the bottleneck width
    is rounded (half to even) to a multiple of the group width (of
    ``lcm(group_width, b)`` for integer ``b > 1``), as pycls does.
    """
    bottlenecks = [int(max(1, w * b)) for w, b in zip(widths, bottleneck_ratios)]
    group_widths = [int(min(g, v)) for g, v in zip(group_widths, bottlenecks)]
    multiples = [
        math.lcm(g, int(b)) if b > 1 and float(b).is_integer() else g
        for g, b in zip(group_widths, bottleneck_ratios)
    ]
    bottlenecks = [max(m, int(round(v / m) * m)) for v, m in zip(bottlenecks, multiples)]
    widths = [int(v / b) for v, b in zip(bottlenecks, bottleneck_ratios)]
    return widths, group_widths


def se_width(block_input_width: int, se_ratio: float) -> int:
    """SE bottleneck width: round(ratio x the block's *input* width), as pycls."""
    return int(round(block_input_width * se_ratio))


def _stages(cfg: RegNetConfig) -> Tuple[StageSpec, ...]:
    block_widths = generate_block_widths(cfg.depth, cfg.w0, cfg.wa, cfg.wm)
    # Stages are runs of equal width; widths are non-decreasing in j, so
    # np.unique's sorted order is the stage order.
    widths, depths = np.unique(block_widths, return_counts=True)
    n = len(widths)
    widths, group_widths = adjust_block_compatibility(
        widths.tolist(), [cfg.bottleneck_ratio] * n, [cfg.group_width] * n
    )
    return tuple(
        StageSpec(int(d), int(w), int(g), cfg.bottleneck_ratio)
        for d, w, g in zip(depths.tolist(), widths, group_widths)
    )


# --------------------------------------------------------------------------
# AnyNet: any per-stage layout of the same blocks.  A RegNet is an AnyNet
# whose stages the generator computes (anynet_from_regnet).
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AnyNetConfig:
    """An AnyNet: per-stage depth, width, bottleneck ratio, group width and stride.

    Args:
        depths: blocks per stage (positive integers).
        widths: output channels per stage (positive integers).
        bottleneck_ratios: bottleneck multiplier ``b`` per stage (> 0); the
            block's inner width is ``round(width * b)``.
        group_widths: channels per group of each stage's 3x3 convolution.
        strides: stride of each stage's first block, 1 or 2; ``None`` means 2
            for every stage.
        se_ratio: squeeze-and-excitation ratio relative to each block's input
            width; ``None`` (or 0) disables SE.
        stem_width: output channels of the stem convolution.
        stem_stride: 2 for pycls's ``simple_stem_in``, 1 for ``res_stem_cifar``.

    The four per-stage sequences must have the same length and be compatible
    as pycls requires: each group width at most the bottleneck width, which
    is a multiple of it (a fixed point of
    :func:`~keras_regnet.architecture.config.adjust_block_compatibility`).
    :meth:`compatible` applies that adjustment for you.

    Example:
        >>> AnyNetConfig(depths=(1, 2, 4, 1), widths=(32, 64, 160, 384),
        ...              bottleneck_ratios=(1, 1, 1, 1), group_widths=(16, 16, 16, 16)).strides
        (2, 2, 2, 2)
    """

    depths: Tuple[int, ...]
    widths: Tuple[int, ...]
    bottleneck_ratios: Tuple[float, ...]
    group_widths: Tuple[int, ...]
    strides: Optional[Tuple[int, ...]] = None
    se_ratio: Optional[float] = None
    stem_width: int = 32
    stem_stride: int = 2

    def __post_init__(self):
        num_stages = _stage_count(self.depths)
        strides = (2,) * num_stages if self.strides is None else self.strides
        for name, value in [("depths", self.depths), ("widths", self.widths), ("group_widths", self.group_widths),
                            ("strides", strides)]:
            object.__setattr__(self, name, _int_tuple(name, value, num_stages))
        object.__setattr__(self, "bottleneck_ratios", _ratio_tuple(self.bottleneck_ratios, num_stages))
        bad_strides = [s for s in self.strides if s not in (1, 2)]
        if bad_strides:
            raise ValueError(f"strides must be 1 or 2 for every stage; got strides={self.strides}.")
        object.__setattr__(self, "se_ratio", _se_ratio(self.se_ratio))
        check_int("stem_width", self.stem_width)
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2; got stem_stride={self.stem_stride!r}.")
        _check_compatible(self)

    @classmethod
    def compatible(cls, depths, widths, bottleneck_ratios, group_widths, **kwargs) -> "AnyNetConfig":
        """The config with widths and group widths adjusted as pycls adjusts them."""
        widths, group_widths = adjust_block_compatibility(list(widths), list(bottleneck_ratios), list(group_widths))
        return cls(tuple(depths), tuple(widths), tuple(bottleneck_ratios), tuple(group_widths), **kwargs)

    @property
    def has_se(self) -> bool:
        return self.se_ratio is not None

    @property
    def stages(self) -> Tuple[StageSpec, ...]:
        """One :class:`~keras_regnet.architecture.config.StageSpec` per stage (strides aside)."""
        return tuple(
            StageSpec(d, w, g, b)
            for d, w, g, b in zip(self.depths, self.widths, self.group_widths, self.bottleneck_ratios)
        )


def _stage_count(depths) -> int:
    if not isinstance(depths, (tuple, list, np.ndarray)) or len(depths) == 0:
        raise ValueError(
            f"depths must be a non-empty sequence of positive integers, one per stage; got depths={depths!r}."
        )
    return len(depths)


def _int_tuple(name, values, num_stages) -> Tuple[int, ...]:
    if not isinstance(values, (tuple, list, np.ndarray)) or len(values) != num_stages:
        raise ValueError(f"{name} must be a sequence of {num_stages} positive integers, one per stage "
                         f"(as many as depths); got {name}={values!r}.")
    return tuple(int(check_int(f"{name}[{i}]", v)) for i, v in enumerate(values))


def _ratio_tuple(values, num_stages) -> Tuple[float, ...]:
    if not isinstance(values, (tuple, list, np.ndarray)) or len(values) != num_stages:
        raise ValueError(f"bottleneck_ratios must be a sequence of {num_stages} numbers > 0, one per stage; "
                         f"got bottleneck_ratios={values!r}.")
    for i, b in enumerate(values):
        if isinstance(b, bool) or not isinstance(b, (int, float, np.number)) or not 0 < b < math.inf:
            raise ValueError(f"bottleneck_ratios[{i}] must be a finite number > 0; got {b!r}.")
    return tuple(float(b) for b in values)


def _se_ratio(se_ratio) -> Optional[float]:
    if se_ratio is None:
        return None
    if isinstance(se_ratio, bool) or not isinstance(se_ratio, (int, float, np.number)) or not 0 <= se_ratio <= 1:
        raise ValueError(f"se_ratio must be None or a number in [0, 1]; got se_ratio={se_ratio!r}.")
    return float(se_ratio) or None


def _check_compatible(cfg: AnyNetConfig):
    widths, group_widths = adjust_block_compatibility(
        list(cfg.widths), list(cfg.bottleneck_ratios), list(cfg.group_widths)
    )
    indivisible = any(s.bottleneck_width % s.group_width for s in cfg.stages)
    if tuple(widths) != cfg.widths or tuple(group_widths) != cfg.group_widths or indivisible:
        raise ValueError(
            f"widths={cfg.widths} and group_widths={cfg.group_widths} are not compatible with "
            f"bottleneck_ratios={cfg.bottleneck_ratios}: every group width must be at most its stage's "
            f"bottleneck width round(width * b), and divide it. pycls's adjustment gives "
            f"widths={tuple(widths)}, group_widths={tuple(group_widths)} (AnyNetConfig.compatible applies it)."
        )


def anynet_from_regnet(config: RegNetConfig) -> AnyNetConfig:
    """The AnyNet a RegNet is: its generated stages, every stage with stride 2."""
    if not isinstance(config, RegNetConfig):
        raise ValueError(f"config must be a RegNetConfig; got {type(config).__name__}.")
    stages = config.stages
    return AnyNetConfig(
        depths=tuple(s.depth for s in stages),
        widths=tuple(s.width for s in stages),
        bottleneck_ratios=tuple(s.bottleneck_ratio for s in stages),
        group_widths=tuple(s.group_width for s in stages),
        se_ratio=config.se_ratio,
        stem_width=config.stem_width,
        stem_stride=config.stem_stride,
    )


def check_int(name, value, minimum=1, maximum=None):
    """Raise a ValueError naming ``name`` unless ``value`` is an integer (not a bool) in [minimum, maximum].

    The one integer-argument check of the package, so every function words
    the error the same way.
    """
    valid = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if not valid or value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            allowed = f"an integer in [{minimum}, {maximum}]"
        else:
            allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {allowed}; got {name}={value!r}.")
    return value


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number; got {name}={value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {name}={value}.")
