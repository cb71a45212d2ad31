"""Model scaling: pycls's compound scaling rule, and a TinyNet-style fit to a flop budget.

Both return a :class:`ScaledModel`: an
:class:`~keras_regnet.architecture.config.AnyNetConfig`, the input
resolution, and the exact flops of the pair (counted by
:func:`~keras_regnet.architecture.complexity.complexity`, as pycls counts).
The scaled network is an AnyNet, not a RegNet: scaling every stage's depth
and width by one factor and rounding them does not, in general, give widths
that the RegNet generator produces.  pycls converts a RegNet to an AnyNet
before scaling it too; :func:`~keras_regnet.design_space.fitting.fit_regnet`
finds the nearest RegNet if one is wanted.

**Compound scaling** (Dollár, Singh and Girshick 2021, "Fast and Accurate
Model Scaling"; pycls HEAD, ``pycls/models/scaler.py``): a scaling type
such as ``"d1_w8_g8_r1"`` gives each dimension (depth ``d``, width ``w``,
group width ``g``, resolution ``r``) a weight; a type of bare letters
(``"dw"``) weighs each named dimension 1.  With ``S = e_d + e_w + e_r``
(or ``e_g / 2`` when that is 0, or 1 when both are), a flop factor ``f``
multiplies depths by ``f**(e_d/S)``, widths by ``f**(e_w/(2S))``, group
widths by ``f**(e_g/(2S))`` and the resolution by ``f**(e_r/(2S))``, so that
``d * w**2 * r**2 == f``.  ``"d1_w8_g8_r1"`` is the paper's *fast compound
scaling*, pycls's recommended default.  Rounding, as pycls: per stage,
``depth = max(1, round(depth * d))``, ``width = max(1, round(width * w / 8)) * 8``,
``g = max(1, round(g * g_mult))`` then mapped to ``g`` (``g <= 2``), 4
(``g <= 5``) or ``round(g / 8) * 8``; then the block-compatibility
adjustment; ``resolution = round(resolution * r / 4) * 4``.  Python's
``round`` (half to even) throughout, as pycls.

**Fitting a flop budget** (TinyNet: Han et al. 2020, "Model Rubik's Cube:
Twisting Resolution, Depth and Width for TinyNets"): choose a resolution,
a depth multiplier and a width multiplier whose model's *exact* flops are
at most the budget and as close to it as the search reaches.  TinyNet found
that, when shrinking, resolution and depth matter more than width: its
TinyNet-B to E (EfficientNet-B0 with resolution, width and depth multipliers
(0.84, 0.75, 1.1), (0.825, 0.54, 0.85), (0.68, 0.54, 0.695) and
(0.475, 0.51, 0.6), from 2.3x to 28x fewer flops by ``r^2 d w^2``) put on
average 35% of the log flop reduction on resolution, 7% on depth and 58% on
width.
:data:`TINYNET_SHARES` are those shares; :func:`fit_to_budget` aims at the
point they give, tries resolutions and depth levels from that point up to
``search_radius`` steps above it (never below, so that width absorbs what
is left: below only when nothing at or above fits), takes for each the widest
width that fits, keeps the closest to the budget (ties to the larger
resolution, then depth), and finally climbs: while one step up in
resolution, depth or width (tried in that order) still fits, it takes it.
The result is therefore *within one step of the budget*: every single step
up from it exceeds the budget, so ``budget - flops`` is below the smallest
flop increase of any step up.  A step is the resolution plus
``resolution_step`` pixels, or the depth (width) multiplier moved to the next
value at which some stage's rounded depth (width) changes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple, Union

import numpy as np

from keras_regnet.architecture.complexity import complexity
from keras_regnet.architecture.config import (
    WIDTH_QUANTUM,
    AnyNetConfig,
    RegNetConfig,
    adjust_block_compatibility,
    anynet_from_regnet,
    check_int,
)

# pycls's "fast compound scaling" (Dollar et al. 2021), its recommended type.
FAST_COMPOUND_SCALING = "d1_w8_g8_r1"
DIMENSIONS = "dwgr"
# pycls rounds scaled resolutions to multiples of this.
RESOLUTION_QUANTUM = 4
# Shares of the log flop change put on (resolution, depth, width): the
# average of TinyNet-B..E relative to EfficientNet-B0 (Han et al. 2020).
TINYNET_SHARES = (0.35, 0.07, 0.58)


@dataclasses.dataclass(frozen=True)
class ScalingFactors:
    """Continuous multipliers of each dimension, before rounding."""

    depth: float
    width: float
    group_width: float
    resolution: float


@dataclasses.dataclass(frozen=True)
class ScaledModel:
    """A scaled network: its config, input resolution and exact flops there.

    Attributes:
        config: the scaled :class:`~keras_regnet.architecture.config.AnyNetConfig`.
        resolution: the input size (pixels, square) the flops are counted at.
        flops: ``complexity(config, resolution, num_classes)["flops"]``.
        multipliers: the continuous factors applied (for :func:`fit_to_budget`,
            a representative multiplier of the chosen depth and width levels,
            and the resolution ratio); ``apply_multipliers(base, depth,
            width, group_width)`` rebuilds ``config``.
    """

    config: AnyNetConfig
    resolution: int
    flops: int
    multipliers: ScalingFactors


# --------------------------------------------------------------------------
# pycls's compound scaling
# --------------------------------------------------------------------------


def scaling_factors(scaling_type: str, factor: float) -> ScalingFactors:
    """Multipliers of depth, width, group width and resolution for a flop factor.

    Args:
        scaling_type: ``"d1_w8_g8_r1"`` style (letter of a dimension and its
            weight, joined by ``_``) or bare letters (``"dw"``: weight 1 each).
        factor: the flop multiplier ``f`` (> 0).

    Returns:
        :class:`ScalingFactors` with ``depth * width**2 * resolution**2 == f``
        (unless only ``g`` is weighted: then group widths scale by ``f``).

    Raises:
        ValueError: an unknown or malformed ``scaling_type``, or a ``factor``
            that is not a positive finite number.
    """
    weights = _scaling_weights(scaling_type)
    _check_positive("factor", factor)
    total = weights["d"] + weights["w"] + weights["r"] or weights["g"] / 2 or 1.0
    return ScalingFactors(
        depth=factor ** (weights["d"] / total),
        width=factor ** (weights["w"] / total / 2),
        group_width=factor ** (weights["g"] / total / 2),
        resolution=factor ** (weights["r"] / total / 2),
    )


def apply_multipliers(config: Union[RegNetConfig, AnyNetConfig], depth: float = 1.0, width: float = 1.0,
                      group_width: float = 1.0) -> AnyNetConfig:
    """Multiply every stage's depth, width and group width, rounding as pycls's scaler.

    Args:
        config: a RegNet (taken as the AnyNet of its generated stages) or an AnyNet.
        depth, width, group_width: positive multipliers.

    Returns:
        The AnyNet with ``max(1, round(d * depth))`` blocks per stage, widths
        ``max(1, round(w * width / 8)) * 8``, group widths rounded onto pycls's
        {1, 2, 4, 8k} and the block-compatibility adjustment applied.

    Raises:
        ValueError: bad ``config`` or a multiplier that is not a positive number.
    """
    base = _as_anynet(config)
    for name, value in (("depth", depth), ("width", width), ("group_width", group_width)):
        _check_positive(name, value)
    return _multiplied(base, depth, width, group_width)


def scale_resolution(resolution: int, multiplier: float) -> int:
    """``round(resolution * multiplier / 4) * 4`` (pycls's rounding of scaled image sizes).

    Raises:
        ValueError: a bad argument, or a result below 4 pixels.
    """
    check_int("resolution", resolution)
    _check_positive("multiplier", multiplier)
    scaled = round(resolution * multiplier / RESOLUTION_QUANTUM) * RESOLUTION_QUANTUM
    if scaled < RESOLUTION_QUANTUM:
        raise ValueError(f"multiplier={multiplier} shrinks resolution={resolution} below {RESOLUTION_QUANTUM} pixels.")
    return scaled


def scale_model(config: Union[RegNetConfig, AnyNetConfig], factor: float,
                scaling_type: str = FAST_COMPOUND_SCALING, *, resolution: int = 224,
                num_classes: int = 1000) -> ScaledModel:
    """Scale a network's flops by ``factor`` with pycls's compound scaling rule.

    Args:
        config: the network to scale (a RegNet is first converted to the
            AnyNet of its stages, as pycls does).
        factor: flop multiplier (> 0; below 1 shrinks).
        scaling_type: which dimensions carry the scaling and how much; see
            :func:`scaling_factors`.  Default: fast compound scaling.
        resolution: the network's input size before scaling (pycls scales its
            train and test sizes alike; pass either).
        num_classes: classifier outputs, for the flop count.

    Returns:
        :class:`ScaledModel`.  The stem and the classifier are not scaled
        (pycls scales only the stages), so the flop ratio is ``factor`` up to
        them and to rounding.

    Raises:
        ValueError: any bad argument, before any work.
    """
    base = _as_anynet(config)
    factors = scaling_factors(scaling_type, factor)
    check_int("num_classes", num_classes)
    size = scale_resolution(resolution, factors.resolution)
    scaled = _multiplied(base, factors.depth, factors.width, factors.group_width)
    return ScaledModel(scaled, size, complexity(scaled, size, num_classes)["flops"], factors)


def _scaling_weights(scaling_type) -> dict:
    if not isinstance(scaling_type, str) or not scaling_type:
        raise ValueError(f"scaling_type must be a non-empty string such as 'dw' or 'd1_w8_g8_r1'; "
                         f"got scaling_type={scaling_type!r}.")
    weights = dict.fromkeys(DIMENSIONS, 0.0)
    if all(letter in DIMENSIONS for letter in scaling_type):
        weights.update(dict.fromkeys(scaling_type, 1.0))
        return weights
    for part in scaling_type.split("_"):
        letter, weight = part[:1], _parse_weight(part[1:])
        if letter not in DIMENSIONS or weight is None or weights[letter]:
            raise ValueError(
                f"scaling_type={scaling_type!r} is not valid: use letters of {DIMENSIONS!r} (depth, width, "
                "group width, resolution), bare ('dw') or each followed by a weight >= 0 and joined by '_' "
                f"('d1_w8_g8_r1'); the part {part!r} is not one."
            )
        weights[letter] = weight
    if not any(weights.values()):
        raise ValueError(f"scaling_type={scaling_type!r} gives every dimension weight 0.")
    return weights


def _parse_weight(text: str) -> Optional[float]:
    try:
        weight = float(text)
    except ValueError:
        return None
    return weight if 0 <= weight < math.inf else None


def _multiplied(base: AnyNetConfig, depth: float, width: float, group_width: float) -> AnyNetConfig:
    depths = [max(1, round(d * depth)) for d in base.depths]
    widths = [max(1, round(w * width / WIDTH_QUANTUM)) * WIDTH_QUANTUM for w in base.widths]
    groups = [_group_lattice(max(1, round(g * group_width))) for g in base.group_widths]
    widths, groups = adjust_block_compatibility(widths, list(base.bottleneck_ratios), groups)
    return dataclasses.replace(base, depths=tuple(depths), widths=tuple(widths), group_widths=tuple(groups))


def _group_lattice(g: int) -> int:
    # pycls keeps scaled group widths on {1, 2, 4, 8, 16, 24, ...}.
    return g if g <= 2 else 4 if g <= 5 else round(g / 8) * 8


# --------------------------------------------------------------------------
# TinyNet-style fit to a flop budget
# --------------------------------------------------------------------------


def fit_to_budget(config: Union[RegNetConfig, AnyNetConfig], flops: float, resolution: int = 224, *,
                  shares: Tuple[float, float, float] = TINYNET_SHARES, resolution_step: int = RESOLUTION_QUANTUM,
                  min_resolution: int = 32, search_radius: int = 2, num_classes: int = 1000) -> ScaledModel:
    """Shrink (or grow) a network to a flop budget by resolution, depth and width.

    Args:
        config: the network (a RegNet is taken as the AnyNet of its stages).
        flops: the budget (multiply-adds, > 0).
        resolution: the network's input size now.
        shares: fractions of the log flop change aimed at resolution, depth
            and width (non-negative, sum 1); by default TinyNet's.
        resolution_step: resolutions are multiples of it.
        min_resolution: the smallest resolution allowed.
        search_radius: resolutions and depth levels tried above the aimed-at
            point (and below it, when nothing at or above fits).
        num_classes: classifier outputs, for the flop count.

    Returns:
        :class:`ScaledModel` with ``flops <= budget`` and every single step
        up over budget (see the module's docstring); depth and width
        multipliers apply with :func:`apply_multipliers` (group widths
        unscaled).

    Raises:
        ValueError: a bad argument, or a budget below the smallest network
            reachable (every stage 1 block of width 8 at ``min_resolution``),
            before any search.
    """
    base = _as_anynet(config)
    _check_positive("flops", flops)
    for name, value in (("resolution", resolution), ("resolution_step", resolution_step),
                        ("min_resolution", min_resolution), ("num_classes", num_classes)):
        check_int(name, value)
    check_int("search_radius", search_radius, minimum=0)
    shares = _check_shares(shares)
    start = math.ceil(min_resolution / resolution_step) * resolution_step
    search = _BudgetSearch(base, flops, resolution, resolution_step, start, num_classes)
    smallest = search.flops(start, search.depths.lowest(), search.widths.lowest())
    if smallest > flops:
        raise ValueError(
            f"flops={flops} is below the smallest network reachable: {smallest} flops (every stage 1 block of "
            f"width {WIDTH_QUANTUM}, at {start} pixels); raise the budget or lower min_resolution."
        )
    return search.run(shares, search_radius)


def _check_shares(shares) -> Tuple[float, float, float]:
    valid = (
        isinstance(shares, (tuple, list))
        and len(shares) == 3
        and all(not isinstance(s, bool) and isinstance(s, (int, float, np.number)) and 0 <= s <= 1 for s in shares)
        and math.isclose(sum(shares), 1.0, abs_tol=1e-9)
    )
    if not valid:
        raise ValueError(f"shares must be three numbers >= 0 (resolution, depth, width) summing to 1; "
                         f"got shares={shares!r}.")
    return tuple(float(s) for s in shares)


class _Levels:
    """The distinct roundings ``max(1, round(m * v / q))`` of per-stage values ``v`` as ``m`` varies.

    They change only at ``m = q (n + 1/2) / v`` (``n >= 1``; below, the
    ``max`` holds them at 1); a level is an interval between consecutive
    changes, represented by its midpoint.
    """

    def __init__(self, values, quantum):
        self.scale = np.asarray(values, float) / quantum

    def next_change(self, m: float) -> float:
        x = m * self.scale
        n = np.maximum(1, np.floor(x + 0.5 + 1e-9))
        return float(np.min((n + 0.5) / self.scale))

    def previous_change(self, m: float) -> float:
        x = m * self.scale
        n = np.floor(x - 0.5 - 1e-9)
        changes = np.where(n >= 1, (n + 0.5) / self.scale, 0.0)
        return float(np.max(changes))

    def level(self, m: float) -> float:
        return (self.previous_change(m) + self.next_change(m)) / 2

    def lowest(self) -> float:
        return self.next_change(0.0) / 2

    def up(self, m: float) -> float:
        """The next level above ``m``'s."""
        start = self.next_change(m)
        return (start + self.next_change(start)) / 2

    def down(self, m: float) -> Optional[float]:
        """The level below ``m``'s; ``None`` at the lowest."""
        stop = self.previous_change(m)
        return (self.previous_change(stop) + stop) / 2 if stop > 0 else None


class _BudgetSearch:
    """The search of :func:`fit_to_budget` over (resolution, depth level, width level)."""

    def __init__(self, base: AnyNetConfig, budget, resolution, step, min_resolution, num_classes):
        self.base, self.budget, self.resolution = base, budget, resolution
        self.step, self.min_resolution, self.num_classes = step, min_resolution, num_classes
        self.depths = _Levels(base.depths, 1)
        self.widths = _Levels(base.widths, WIDTH_QUANTUM)
        self.cache = {}

    def config(self, depth, width) -> AnyNetConfig:
        return _multiplied(self.base, depth, width, 1.0)

    def flops(self, resolution, depth, width) -> int:
        key = (resolution, depth, width)
        if key not in self.cache:
            self.cache[key] = complexity(self.config(depth, width), resolution, self.num_classes)["flops"]
        return self.cache[key]

    def run(self, shares, radius) -> ScaledModel:
        ratio = self.budget / complexity(self.base, self.resolution, self.num_classes)["flops"]
        aim_resolution = self.resolution * ratio ** (shares[0] / 2)
        aim_depth = self.depths.level(ratio ** shares[1])
        aim_width = ratio ** (shares[2] / 2)
        center = max(self.min_resolution, round(aim_resolution / self.step) * self.step)
        # Resolution and depth at or above their aim (TinyNet: keep them, narrow instead); below
        # it only when nothing there fits, and the smallest network (which fits) as the last resort.
        for below in (0, radius):
            candidates = self._candidates(center, aim_depth, below, radius, aim_width)
            if candidates:
                break
        else:
            lowest = (self.min_resolution, self.depths.lowest(), self.widths.lowest())
            candidates = [(self.flops(*lowest), *lowest)]
        _, resolution, depth, width = max(candidates)  # closest to the budget; ties to resolution, then depth
        return self._result(*self._climb(resolution, depth, width))

    def _candidates(self, center, aim_depth, below, above, aim_width):
        """For resolutions and depth levels from ``below`` steps under the aim to ``above`` over: the widest fit."""
        depths = [aim_depth]
        for _ in range(above):
            depths.append(self.depths.up(depths[-1]))
        lower = aim_depth
        for _ in range(below):
            lower = self.depths.down(lower)
            if lower is None:
                break
            depths.append(lower)
        candidates = []
        for resolution in range(center - below * self.step, center + above * self.step + 1, self.step):
            for depth in depths if resolution >= self.min_resolution else ():
                width = self._widest(resolution, depth, aim_width)
                if width is not None:
                    candidates.append((self.flops(resolution, depth, width), resolution, depth, width))
        return candidates

    def _widest(self, resolution, depth, aim) -> Optional[float]:
        """The widest width level that fits the budget at this resolution and depth (bisection)."""
        low = self.widths.lowest()
        if self.flops(resolution, depth, low) > self.budget:
            return None
        high = self.widths.level(max(aim, low))
        while self.flops(resolution, depth, high) <= self.budget:
            low, high = high, self.widths.level(2 * high)
        # Flops grow with the width level: keep low fitting and high over budget.
        while self.widths.up(low) != high:
            middle = self.widths.level((self.widths.next_change(low) + self.widths.previous_change(high)) / 2)
            if middle in (low, high):
                middle = self.widths.up(low)
            if self.flops(resolution, depth, middle) <= self.budget:
                low = middle
            else:
                high = middle
        return low

    def _climb(self, resolution, depth, width):
        while True:
            for move in ((resolution + self.step, depth, width), (resolution, self.depths.up(depth), width),
                         (resolution, depth, self.widths.up(width))):
                if self.flops(*move) <= self.budget:
                    resolution, depth, width = move
                    break
            else:
                return resolution, depth, width

    def _result(self, resolution, depth, width) -> ScaledModel:
        factors = ScalingFactors(depth=depth, width=width, group_width=1.0,
                                 resolution=resolution / self.resolution)
        return ScaledModel(self.config(depth, width), resolution, self.flops(resolution, depth, width), factors)


# --------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------


def _as_anynet(config) -> AnyNetConfig:
    if isinstance(config, RegNetConfig):
        return anynet_from_regnet(config)
    if isinstance(config, AnyNetConfig):
        return config
    raise ValueError(f"config must be a RegNetConfig or an AnyNetConfig; got {type(config).__name__}.")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0; got {name}={value!r}.")
