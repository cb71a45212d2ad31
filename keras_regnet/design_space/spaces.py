"""Design spaces of networks and their samplers, in plain numpy.

A design space is a population of networks with a distribution over it
(Radosavovic et al. 2020, "Designing Network Design Spaces").  Every space
here is a space of 4-stage AnyNets: a stem, stages of residual bottleneck
blocks (the X block; with squeeze-and-excitation, the Y block) and a head.

* ``AnyNetX_A``: per stage, depth ``d`` in 1..16, width ``w`` in 8..1024 in
  steps of 8, bottleneck ratio ``b`` in {1, 2, 4}, group width ``g`` in
  {1, 2, 4, 8, 16, 32}, all drawn uniformly and independently.
* ``AnyNetX_B``: one ``b`` shared by the four stages.
* ``AnyNetX_C``: ``b`` and ``g`` shared.
* ``AnyNetX_D``: ``AnyNetX_C`` with non-decreasing widths.
* ``AnyNetX_E``: ``AnyNetX_D`` with non-decreasing depths.
* ``RegNetX`` / ``RegNetY``: RegNets drawn with pycls's sweep sampler
  (``regnet_sampler``: depth uniform, ``w0``, ``wa``, ``wm`` and the group
  width log-uniform, quantized as pycls quantizes them), kept when the
  generator yields exactly 4 stages; RegNetY adds SE with ratio 0.25.

The constrained spaces (D, E) are drawn uniformly over the sequences that
satisfy their constraints: every allowed configuration is equally likely, as
in ``AnyNetX_A``.  Each sampled ``(w, b, g)`` is made compatible as pycls
does (:func:`keras_regnet.architecture.config.adjust_block_compatibility`:
the group width is capped at the bottleneck width, which is rounded to a
multiple of it), so a shared group width can be smaller in narrow stages.

:func:`sample` draws distinct networks whose analytic complexity
(:func:`anynet_complexity`, counted as pycls 0.1.1 counts it) lies in the
bands asked for; :func:`space_size` counts a space.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from decimal import Decimal
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from keras_regnet.architecture.complexity import (
    NetworkSetting,
    block_cost,
    complexity,
    head_cost,
    layout_complexity,
    stem_cost,
)
from keras_regnet.architecture.config import (
    WIDTH_QUANTUM,
    AnyNetConfig,
    RegNetConfig,
    anynet_from_regnet,  # noqa: F401  (public here too)
    check_int,
)

NUM_STAGES = 4
ANYNET_SPACES = ("AnyNetX_A", "AnyNetX_B", "AnyNetX_C", "AnyNetX_D", "AnyNetX_E")
REGNET_SPACES = ("RegNetX", "RegNetY")
SPACES = ANYNET_SPACES + REGNET_SPACES
ANYNET_MAX_DEPTH = 16
ANYNET_WIDTHS = tuple(range(WIDTH_QUANTUM, 1024 + 1, WIDTH_QUANTUM))
ANYNET_BOTTLENECK_RATIOS = (1.0, 2.0, 4.0)
ANYNET_GROUP_WIDTHS = (1, 2, 4, 8, 16, 32)
REGNETY_SE_RATIO = 0.25
# pycls's regnet_sampler quantizes each parameter to a fixed step.
REGNET_QUANTA = {"depth": 1, "w0": 8, "wa": 0.1, "wm": 0.001, "group_width": 8, "bottleneck_ratio": 1 / 128}
# Candidates drawn per round.  Fixed, so that a seed always yields the same
# sequence: sample(n=10) is the first 10 of sample(n=100) with that seed.
BATCH = 8192
# Without any network in the band after this many candidates, the band is
# taken to be out of the space's reach.
FIRST_TRIES = 1_000_000

Band = Optional[Tuple[float, float]]




def anynet_complexity(cfg: AnyNetConfig, resolution: int = 224, num_classes: int = 1000) -> Dict[str, int]:
    """Flops (multiply-adds), parameters and activations of an AnyNet, as pycls 0.1.1's ``AnyNet.complexity``.

    :func:`keras_regnet.architecture.complexity.complexity` restricted to
    :class:`AnyNetConfig` (with pycls's residual bottleneck block and
    ``simple_stem_in`` for ``stem_stride=2`` or ``res_stem_cifar`` for 1).

    Returns:
        ``{"flops": int, "params": int, "acts": int}``.
    """
    if not isinstance(cfg, AnyNetConfig):
        raise ValueError(f"cfg must be an AnyNetConfig; got {type(cfg).__name__}.")
    return complexity(cfg, resolution, num_classes)


@dataclasses.dataclass(frozen=True)
class _Setup(NetworkSetting):
    """What a sampling run holds fixed: the space, the RegNet sampler's ranges, and the counting setting."""

    space: str = ""
    ranges: Optional["RegNetRanges"] = None


def compatible_arrays(widths, bottleneck_ratios, group_widths):
    """Vectorized :func:`~keras_regnet.architecture.config.adjust_block_compatibility`.

    Takes equal-shape arrays (any number of networks x stages) and returns
    the adjusted ``(widths, group_widths)`` as int64 arrays, element for
    element what the scalar function returns.
    """
    ratios = np.asarray(bottleneck_ratios, float)
    bottlenecks = np.maximum(1, np.asarray(widths) * ratios).astype(np.int64)
    groups = np.minimum(np.asarray(group_widths, np.int64), bottlenecks)
    integer_ratio = (ratios > 1) & (ratios == np.floor(ratios))
    multiples = np.where(integer_ratio, np.lcm(groups, ratios.astype(np.int64)), groups)
    bottlenecks = np.maximum(multiples, (np.round(bottlenecks / multiples) * multiples).astype(np.int64))
    return (bottlenecks / ratios).astype(np.int64), groups


# --------------------------------------------------------------------------
# pycls's quantized random variables (pycls/sweep/random.py), vectorized.
# --------------------------------------------------------------------------


def quantize(values, q, rounding=np.floor):
    """Round ``values / q`` with ``rounding`` and scale back: ints for an int ``q``.

    A float ``q`` whose inverse is an integer (0.1, 0.001, 1/128) gives the
    double nearest the decimal ``k * q``, as pycls's ``Decimal`` arithmetic does.
    """
    k = rounding(np.asarray(values, float) / q)
    if isinstance(q, (int, np.integer)):
        return (k * q).astype(np.int64)
    inverse = round(1 / q)
    return k / inverse if abs(1 / q - inverse) < 1e-9 else k * q


def quantized_uniform(rng, low, high, q, size):
    """Uniform on the multiples of ``q`` in [low, high] (pycls ``uniform``)."""
    return quantize(rng.uniform(low, high + q, size), q, np.floor)


def quantized_log_uniform(rng, low, high, q, size):
    """Log-uniform on (low - min(q, low/2), high], rounded up to a multiple of ``q`` (pycls ``log_uniform``)."""
    floor = low - min(q, low / 2)
    values = np.exp(-rng.uniform(-np.log(high), -np.log(floor), size))
    return quantize(values, q, np.ceil)


def power2_uniform(rng, low, high, q, size):
    """Uniform over the powers of 2 in [low, high], quantized to ``q`` (pycls ``power2_uniform``)."""
    exponents = np.floor(rng.uniform(np.log2(low), np.log2(high) + 1, size))
    return quantize(2.0**exponents, q, np.floor)


def power2_or_log_uniform(rng, low, high, q, size):
    """Powers of 2 below ``q`` uniformly, else log-uniform multiples of ``q`` (pycls ``power2_or_log_uniform``).

    A power of 2 in [low, high] is drawn; one of at least ``q`` is replaced
    by a log-uniform multiple of ``min(high, q)`` in [max(low, q), high].
    """
    powers = power2_uniform(rng, low, high, low, size)
    logs = quantized_log_uniform(rng, max(low, q), high, min(high, q), size)
    return np.where(powers >= q, logs, powers)


# --------------------------------------------------------------------------
# The spaces' parameter distributions.
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RegNetRanges:
    """Closed ranges of pycls's RegNet sweep sampler; the defaults are pycls's.

    Steps are pycls's too (``REGNET_QUANTA``): depth 1, ``w0`` 8, ``wa`` 0.1,
    ``wm`` 0.001, group width 8 (powers of 2 below it), bottleneck ratio a
    power of 2.  pycls notes that its defaults yield good models up to 16GF.
    """

    depth: Tuple[int, int] = (12, 28)
    w0: Tuple[int, int] = (8, 256)
    wa: Tuple[float, float] = (8.0, 256.0)
    wm: Tuple[float, float] = (2.0, 3.0)
    group_width: Tuple[int, int] = (8, 128)
    bottleneck_ratio: Tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        for name, q in REGNET_QUANTA.items():
            low, high = _range_pair(name, getattr(self, name), integers=isinstance(q, int))
            if name in ("group_width", "bottleneck_ratio"):
                if not all(math.log2(v).is_integer() for v in (low, high)):
                    raise ValueError(f"{name} range must have powers of 2 as ends; got {name}={(low, high)}.")
            elif Decimal(str(low)) % Decimal(str(q)) or Decimal(str(high)) % Decimal(str(q)):
                raise ValueError(f"{name} range ends must be multiples of {q}; got {name}={(low, high)}.")
        if self.wm[0] <= 1:
            raise ValueError(f"wm range must lie above 1; got wm={self.wm}.")


def _range_pair(name, pair, integers):
    kinds = int if integers else (int, float)
    valid = isinstance(pair, tuple) and len(pair) == 2
    valid = valid and all(isinstance(v, kinds) and not isinstance(v, bool) for v in pair)
    if not valid or not 0 < pair[0] <= pair[1] < math.inf:
        kind = "integers" if integers else "numbers"
        raise ValueError(f"{name} must be a tuple (low, high) of {kind} with 0 < low <= high; got {name}={pair!r}.")
    return pair


def draw_regnet_parameters(rng, size, ranges: Optional[RegNetRanges] = None) -> Dict[str, np.ndarray]:
    """Draw ``size`` RegNet parameter sets as pycls's ``regnet_sampler`` draws them.

    Returns arrays ``depth``, ``w0``, ``wa``, ``wm``, ``group_width`` and
    ``bottleneck_ratio``, before the 4-stage constraint.
    """
    r = ranges or RegNetRanges()
    q = REGNET_QUANTA
    return {
        "depth": quantized_uniform(rng, *r.depth, q["depth"], size),
        "w0": quantized_log_uniform(rng, *r.w0, q["w0"], size),
        "wa": quantized_log_uniform(rng, *r.wa, q["wa"], size),
        "wm": quantized_log_uniform(rng, *r.wm, q["wm"], size),
        "group_width": power2_or_log_uniform(rng, *r.group_width, q["group_width"], size),
        "bottleneck_ratio": power2_uniform(rng, *r.bottleneck_ratio, q["bottleneck_ratio"], size),
    }


def draw_anynet_parameters(space: str, rng, size) -> Dict[str, np.ndarray]:
    """Draw ``size`` AnyNetX configurations of ``space``, before the compatibility adjustment.

    Every configuration that meets the space's constraints is equally likely.
    Returns (size, 4) arrays ``depths``, ``widths``, ``bottleneck_ratios``
    and ``group_widths``.
    """
    _check_space(space, ANYNET_SPACES)
    check_int("size", size)
    proposal = _unpruned_proposal(space)
    rows = []
    while sum(len(r["depths"]) for r in rows) < size:
        rows.append(proposal.draw(rng, BATCH))
    return {k: np.concatenate([r[k] for r in rows])[:size] for k in rows[0]}


@functools.lru_cache(maxsize=None)
def _stage_options() -> Dict[str, np.ndarray]:
    """Every (depth, width, bottleneck ratio, group width) one AnyNetX stage can take, and its indices."""
    grids = [np.arange(ANYNET_MAX_DEPTH), np.arange(len(ANYNET_WIDTHS)),
             np.arange(len(ANYNET_BOTTLENECK_RATIOS)), np.arange(len(ANYNET_GROUP_WIDTHS))]
    d, w, b, g = (a.ravel() for a in np.meshgrid(*grids, indexing="ij"))
    return {
        "depths": d + 1,
        "widths": np.array(ANYNET_WIDTHS)[w],
        "bottleneck_ratios": np.array(ANYNET_BOTTLENECK_RATIOS)[b],
        "group_widths": np.array(ANYNET_GROUP_WIDTHS)[g],
        "ratio_index": b,
        "group_index": g,
    }


class _AnyNetProposal:
    """Uniform draws over the AnyNetX configurations whose stages all pass a per-stage filter.

    ``feasible[k]`` marks the options stage ``k`` may take.  The shared
    parameters (``b`` from AnyNetX_B on, ``g`` from C on) are drawn with
    probability proportional to the number of option tuples sharing them,
    each stage then uniformly among its options: every tuple of feasible
    options is equally likely.  D and E keep only non-decreasing widths
    (and depths), which stays uniform over the tuples that meet them.
    """

    def __init__(self, space: str, feasible: np.ndarray):
        options = _stage_options()
        letter = space[-1]
        if letter == "A":
            key = np.zeros_like(options["ratio_index"])
        elif letter == "B":
            key = options["ratio_index"]
        else:
            key = options["ratio_index"] * len(ANYNET_GROUP_WIDTHS) + options["group_index"]
        self.letter, self.options = letter, options
        self.order, self.starts, self.counts = [], [], []
        for stage_feasible in feasible:
            index = np.flatnonzero(stage_feasible)
            index = index[np.argsort(key[index], kind="stable")]
            counts = np.bincount(key[index], minlength=key.max() + 1)
            self.order.append(index)
            self.counts.append(counts)
            self.starts.append(np.cumsum(counts) - counts)
        weights = np.prod(np.array(self.counts, dtype=float), axis=0)
        self.group_probabilities = weights / weights.sum()

    def draw(self, rng, size) -> Dict[str, np.ndarray]:
        groups = rng.choice(len(self.group_probabilities), size=size, p=self.group_probabilities)
        picks = np.stack(
            [order[start[groups] + rng.integers(0, count[groups])]
             for order, start, count in zip(self.order, self.starts, self.counts)],
            axis=1,
        )
        layout = {k: self.options[k][picks] for k in ("depths", "widths", "bottleneck_ratios", "group_widths")}
        keep = np.ones(size, bool)
        if self.letter in "DE":
            keep &= np.all(np.diff(layout["widths"], axis=1) >= 0, axis=1)
        if self.letter == "E":
            keep &= np.all(np.diff(layout["depths"], axis=1) >= 0, axis=1)
        return {k: v[keep] for k, v in layout.items()}


@functools.lru_cache(maxsize=None)
def _unpruned_proposal(space: str) -> _AnyNetProposal:
    return _AnyNetProposal(space, np.ones((NUM_STAGES, len(_stage_options()["depths"])), bool))


def _pruned_proposal(setup: _Setup, bands) -> _AnyNetProposal:
    """The proposal restricted to stage options that could still meet the bands' upper ends.

    Each stage's complexity is bounded below by its cost fed by the
    narrowest possible input (the stem, or 8 channels); an option is dropped
    when that bound plus the smallest bounds of the other stages exceeds a
    band.  No network in the bands is dropped, so rejection on the exact
    complexity still samples the space's distribution restricted to the bands.
    """
    options = _stage_options()
    widths, group_widths = compatible_arrays(options["widths"], options["bottleneck_ratios"], options["group_widths"])
    bottlenecks = np.round(widths * options["bottleneck_ratios"]).astype(np.int64)
    groups, depths = bottlenecks // group_widths, options["depths"]
    h = (setup.resolution - 1) // setup.stem_stride + 1
    bounds = []
    for k in range(NUM_STAGES):
        h_out = (h - 1) // 2 + 1
        w_in = setup.stem_width if k == 0 else ANYNET_WIDTHS[0]
        first = block_cost(w_in, widths, bottlenecks, groups, h * h, h_out * h_out, True, setup.se_ratio)
        rest = block_cost(widths, widths, bottlenecks, groups, h_out * h_out, h_out * h_out, False, setup.se_ratio)
        bounds.append(first + (depths - 1) * rest)
        h = h_out
    bounds[-1] = bounds[-1] + head_cost(widths, setup.num_classes)
    bounds = np.array(bounds, dtype=float)  # (stage, measure, option)
    smallest = bounds.min(axis=2)
    others = stem_cost(setup)[None, :] + smallest.sum(axis=0) - smallest  # (stage, measure)
    feasible = np.ones(bounds[:, 0].shape, bool)
    for m, band in enumerate(bands):
        if band is not None:
            feasible &= others[:, m, None] + bounds[:, m] <= band[1]
    return _AnyNetProposal(setup.space, feasible)


def regnet_stage_layout(params: Dict[str, np.ndarray]):
    """Per-stage depths and widths of RegNet parameter sets, and which have exactly 4 stages.

    Widths come from the generator (eq. 2-4, as
    :func:`~keras_regnet.architecture.config.generate_block_widths`), before
    the compatibility adjustment.  A set is kept, as pycls's sweep keeps it,
    when its blocks span exactly 4 distinct widths and those are all the
    stages the generator allows (``num_stages == max_stages == 4``).

    Returns:
        ``(keep, depths, widths)``: a boolean array, and (N, 4) int arrays
        that are meaningful where ``keep``.
    """
    d, w0, wa, wm = (np.asarray(params[k]) for k in ("depth", "w0", "wa", "wm"))
    w0c, wmc = w0[:, None], wm[:, None]
    j = np.arange(d.max())
    valid = j < d[:, None]
    u = j * wa[:, None] + w0c
    s = np.where(valid, np.round(np.log(u / w0c) / np.log(wmc)), -1.0)
    block_widths = (np.round(w0c * np.power(wmc, s) / WIDTH_QUANTUM) * WIDTH_QUANTUM).astype(np.int64)
    distinct = 1 + np.sum(valid[:, 1:] & (block_widths[:, 1:] != block_widths[:, :-1]), axis=1)
    keep = (s.max(axis=1) == NUM_STAGES - 1) & (distinct == NUM_STAGES)
    stage = np.arange(NUM_STAGES, dtype=float)
    depths = np.stack([np.sum(s == k, axis=1) for k in stage], axis=1)
    widths = (np.round(w0c * np.power(wmc, stage) / WIDTH_QUANTUM) * WIDTH_QUANTUM).astype(np.int64)
    return keep, depths, widths


# --------------------------------------------------------------------------
# Sampling with complexity bands.
# --------------------------------------------------------------------------


def sample(
    space: str,
    n: int,
    seed: int,
    flops_range: Band = None,
    params_range: Band = None,
    acts_range: Band = None,
    resolution: int = 224,
    *,
    num_classes: int = 1000,
    stem_stride: int = 2,
    regnet_ranges: Optional[RegNetRanges] = None,
    max_draws: Optional[int] = None,
) -> List[Union[AnyNetConfig, RegNetConfig]]:
    """Draw ``n`` distinct networks of a design space within complexity bands.

    Args:
        space: one of ``SPACES``.
        n: number of networks.
        seed: seed of the draw; the same arguments give the same list, and a
            smaller ``n`` gives a prefix of a larger one's list.
        flops_range, params_range, acts_range: ``(low, high)`` bands
            (inclusive, as pycls's sweep constraints) on the analytic
            complexity at ``resolution``; ``None`` leaves one free.
        resolution: square input size the complexity is counted at.
        num_classes: classifier outputs, counted in the complexity.
        stem_stride: 2 (ImageNet stem) or 1 (CIFAR stem) for every network.
        regnet_ranges: the RegNet sampler's ranges (RegNet spaces only).
        max_draws: candidates drawn before giving up; by default 1,000,000 +
            10,000 * n, and 1,000,000 if none of them is in the bands.

    Returns:
        ``AnyNetConfig``s for the AnyNetX spaces, ``RegNetConfig``s for the
        RegNet spaces; no two describe the same network (same stages after
        the compatibility adjustment).

    Raises:
        ValueError: for a bad argument, a band no network of the space can
            reach (AnyNetX spaces; checked before drawing), or when ``n``
            distinct networks are not found within ``max_draws`` candidates.
    """
    setup, bands, budget, proposal = _check_sample_args(
        space, n, seed, (flops_range, params_range, acts_range), resolution, num_classes, stem_stride,
        regnet_ranges, max_draws,
    )
    rng = np.random.default_rng(seed)
    found: Dict[tuple, Union[AnyNetConfig, RegNetConfig]] = {}
    drawn = 0
    while len(found) < n:
        if drawn >= budget or (drawn >= FIRST_TRIES and not found and max_draws is None):
            raise ValueError(
                f"Found only {len(found)} of n={n} distinct {space} networks in the band after {drawn:,} draws "
                f"(max_draws={budget:,}); widen flops_range/params_range/acts_range, ask for fewer, or raise max_draws."
            )
        layout = _draw_layout(setup, proposal, rng)
        drawn += BATCH
        accepted = _in_bands(layout_complexity(layout, setup), bands)
        for row in np.flatnonzero(accepted):
            key = _network_key(layout, row)
            if key not in found:
                found[key] = _build_config(layout, row, setup)
                if len(found) == n:
                    break
    return list(found.values())


def _check_sample_args(space, n, seed, band_args, resolution, num_classes, stem_stride, ranges, max_draws):
    _check_space(space, SPACES)
    check_int("n", n)
    check_int("seed", seed, minimum=0)
    check_int("resolution", resolution)
    check_int("num_classes", num_classes)
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2; got stem_stride={stem_stride!r}.")
    if ranges is not None and not isinstance(ranges, RegNetRanges):
        raise ValueError(f"regnet_ranges must be None or a RegNetRanges; got {type(ranges).__name__}.")
    names = ("flops_range", "params_range", "acts_range")
    bands = [_check_band(name, band) for name, band in zip(names, band_args)]
    budget = FIRST_TRIES + 10_000 * n if max_draws is None else check_int("max_draws", max_draws)
    se_ratio = REGNETY_SE_RATIO if space == "RegNetY" else None
    setup = _Setup(resolution, num_classes, stem_stride, se_ratio=se_ratio, space=space, ranges=ranges or RegNetRanges())
    if space not in ANYNET_SPACES:
        return setup, bands, budget, None
    _check_reachable(setup, bands)
    return setup, bands, budget, _pruned_proposal(setup, bands)


def _check_band(name, band):
    if band is None:
        return None
    numbers = isinstance(band, (tuple, list)) and len(band) == 2
    numbers = numbers and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in band)
    if not numbers or math.isnan(band[0]) or math.isnan(band[1]) or not 0 <= band[0] < band[1]:
        raise ValueError(
            f"{name} must be None or a non-empty band (low, high) with 0 <= low < high; got {name}={band!r}."
        )
    return float(band[0]), float(band[1])


def _in_bands(totals, bands):
    keep = np.ones(totals.shape[1], bool)
    for values, band in zip(totals, bands):
        if band is not None:
            keep &= (band[0] <= values) & (values <= band[1])
    return keep


def _check_reachable(setup: _Setup, bands):
    """Refuse a band outside what the space spans.

    Complexity grows with every depth, width, bottleneck ratio and group
    width, so the smallest and largest corners of an AnyNetX space bound it.
    """
    ranges = {
        "depths": (1, ANYNET_MAX_DEPTH),
        "widths": ANYNET_WIDTHS,
        "bottleneck_ratios": ANYNET_BOTTLENECK_RATIOS,
        "group_widths": ANYNET_GROUP_WIDTHS,
        "strides": (2, 2),
    }
    corners = {name: np.array([[v[0]] * NUM_STAGES, [v[-1]] * NUM_STAGES]) for name, v in ranges.items()}
    totals = layout_complexity(corners, setup)
    for name, (low, high), band in zip(("flops", "params", "acts"), totals, bands):
        if band is not None and (band[1] < low or band[0] > high):
            raise ValueError(
                f"No {setup.space} network has {name} in {name}_range={band}: at resolution {setup.resolution} "
                f"the space spans {name} from {int(low):,} to {int(high):,}."
            )


def _draw_layout(setup: _Setup, proposal, rng) -> Dict[str, np.ndarray]:
    """One round of candidates as compatible (N, 4) stage arrays."""
    if proposal is not None:
        layout = proposal.draw(rng, BATCH)
    else:
        params = draw_regnet_parameters(rng, BATCH, setup.ranges)
        params = {k: v[_may_have_four_stages(params)] for k, v in params.items()}
        keep, depths, widths = regnet_stage_layout(params)
        params = {k: v[keep] for k, v in params.items()}
        layout = {
            "depths": depths[keep],
            "widths": widths[keep],
            "bottleneck_ratios": np.repeat(params["bottleneck_ratio"][:, None], NUM_STAGES, axis=1),
            "group_widths": np.repeat(params["group_width"][:, None], NUM_STAGES, axis=1),
            "regnet": params,
        }
    layout["widths"], layout["group_widths"] = compatible_arrays(
        layout["widths"], layout["bottleneck_ratios"], layout["group_widths"]
    )
    layout["strides"] = np.full(layout["widths"].shape, 2)
    return layout


def _may_have_four_stages(params) -> np.ndarray:
    """A cheap superset of the 4-stage sets: the last block's stage by its closed form.

    Block ``j`` is in stage ``>= k`` when ``j * wa >= w0 * (wm**(k - 1/2) - 1)``;
    half a block of slack keeps every set whose rounding lands on a boundary
    for :func:`regnet_stage_layout` to decide exactly.
    """
    last, slack = (params["depth"] - 1) * params["wa"], params["wa"] / 2
    w0, wm = params["w0"], params["wm"]
    return (last >= w0 * (wm**2.5 - 1) - slack) & (last < w0 * (wm**3.5 - 1) + slack)


def _network_key(layout, row) -> tuple:
    return tuple(
        tuple(layout[k][row].tolist()) for k in ("depths", "widths", "bottleneck_ratios", "group_widths")
    )


def _build_config(layout, row, setup: _Setup):
    if "regnet" not in layout:
        depths, widths, ratios, group_widths = _network_key(layout, row)
        return AnyNetConfig(depths, widths, ratios, group_widths, stem_stride=setup.stem_stride)
    p = {k: v[row].item() for k, v in layout["regnet"].items()}
    return RegNetConfig(
        depth=p["depth"], w0=p["w0"], wa=p["wa"], wm=p["wm"], group_width=p["group_width"],
        bottleneck_ratio=p["bottleneck_ratio"], se_ratio=setup.se_ratio, stem_stride=setup.stem_stride,
    )


def _check_space(space, allowed):
    if space not in allowed:
        raise ValueError(f"space must be one of {', '.join(allowed)}; got space={space!r}.")


# --------------------------------------------------------------------------
# Sizes.
# --------------------------------------------------------------------------


def space_size(space: str, regnet_ranges: Optional[RegNetRanges] = None) -> int:
    """Number of networks in a design space, counted as distinct per-stage specifications.

    A network is counted as its tuple of per-stage (depth, width, bottleneck
    ratio, group width), before pycls's compatibility adjustment (which maps
    some tuples onto the same network).  For the AnyNetX spaces that is the
    number of points of the parameter grid that meet the space's
    constraints, the paper's convention: ``(16 * 128 * 3 * 6) ** 4``, about
    1.8e18, for AnyNetX_A.  For the RegNet spaces it is the number of
    distinct 4-stage layouts the generator yields on the sampler's grid
    (:func:`count_regnet_layouts`) times the group widths and bottleneck
    ratios; many ``(wa, wm)`` give the same layout, so this is far below
    the number of grid points.
    """
    _check_space(space, SPACES)
    if space in REGNET_SPACES:
        ranges = regnet_ranges or RegNetRanges()
        return count_regnet_layouts(ranges) * len(group_width_values(ranges)) * len(bottleneck_ratio_values(ranges))
    d, w = ANYNET_MAX_DEPTH, len(ANYNET_WIDTHS)
    b, g = len(ANYNET_BOTTLENECK_RATIOS), len(ANYNET_GROUP_WIDTHS)
    non_decreasing_depths, non_decreasing_widths = math.comb(d + 3, 4), math.comb(w + 3, 4)
    return {
        "AnyNetX_A": (d * w * b * g) ** 4,
        "AnyNetX_B": (d * w * g) ** 4 * b,
        "AnyNetX_C": (d * w) ** 4 * b * g,
        "AnyNetX_D": d**4 * non_decreasing_widths * b * g,
        "AnyNetX_E": non_decreasing_depths * non_decreasing_widths * b * g,
    }[space]


def group_width_values(ranges: RegNetRanges) -> Tuple[int, ...]:
    """The group widths pycls's sampler can draw: powers of 2 below 8, then multiples of 8."""
    low, high = ranges.group_width
    q = REGNET_QUANTA["group_width"]
    powers = [2**e for e in range(int(math.log2(low)), int(math.log2(high)) + 1) if 2**e < q]
    step = min(high, q)
    multiples = range(max(low, q), high + 1, step) if high >= q else []
    return tuple(powers) + tuple(multiples)


def bottleneck_ratio_values(ranges: RegNetRanges) -> Tuple[float, ...]:
    """The bottleneck ratios pycls's sampler can draw: the powers of 2 in the range."""
    low, high = ranges.bottleneck_ratio
    return tuple(2.0**e for e in range(int(math.log2(low)), int(math.log2(high)) + 1))


def _grid(pair, q) -> np.ndarray:
    inverse = round(1 / q)
    return np.arange(round(pair[0] * inverse), round(pair[1] * inverse) + 1) / inverse


@functools.lru_cache(maxsize=8)
def count_regnet_layouts(ranges: RegNetRanges = RegNetRanges()) -> int:
    """Distinct 4-stage (stage depths, stage widths) the generator yields on the sampler's grid.

    Block ``j`` is in stage ``>= k`` when ``j * wa >= w0 * (wm**(k - 1/2) - 1)``,
    so for each ``(w0, wm)`` the stage boundaries are ``ceil`` of those
    thresholds over ``wa``: counted without running the generator on every
    grid point (a few seconds for pycls's default ranges).
    """
    wa = _grid(ranges.wa, REGNET_QUANTA["wa"])
    wm = _grid(ranges.wm, REGNET_QUANTA["wm"])
    w0s = range(ranges.w0[0], ranges.w0[1] + 1, REGNET_QUANTA["w0"])
    return sum(_layouts_for_w0(w0, wa, wm, ranges.depth) for w0 in w0s)


def _layouts_for_w0(w0, wa, wm, depth_range) -> int:
    widths = np.round(w0 * wm[:, None] ** np.arange(1, NUM_STAGES) / WIDTH_QUANTUM) * WIDTH_QUANTUM
    increasing = np.all(np.diff(np.c_[np.full(len(wm), w0), widths], axis=1) > 0, axis=1)
    width_id = np.unique(widths, axis=0, return_inverse=True)[1].reshape(-1)
    base, keys, highs = depth_range[1] + 1, [], []
    for chunk in np.array_split(np.flatnonzero(increasing), max(1, len(wm) // 128)):
        thresholds = w0 * (wm[chunk, None] ** (np.arange(1, NUM_STAGES + 1) - 0.5) - 1)
        bounds = np.ceil(thresholds[:, None, :] / wa[None, :, None]).astype(np.int64)
        low = np.maximum(bounds[..., 2] + 1, depth_range[0])
        high = np.minimum(bounds[..., 3], depth_range[1])
        ok = (bounds[..., 0] < bounds[..., 1]) & (bounds[..., 1] < bounds[..., 2]) & (low <= high)
        key = ((width_id[chunk, None] * base + bounds[..., 0]) * base + bounds[..., 1]) * base + bounds[..., 2]
        keys.append(key[ok])
        highs.append(high[ok])
    keys, highs = np.concatenate(keys), np.concatenate(highs)
    if keys.size == 0:
        return 0
    # Layouts sharing the first three boundaries differ only in depth: the
    # depths reachable are [boundary_3 + 1, the largest high over the group].
    order = np.lexsort((-highs, keys))
    keys, highs = keys[order], highs[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    lows = np.maximum(keys[first] % base + 1, depth_range[0])
    return int(np.sum(highs[first] - lows + 1))
