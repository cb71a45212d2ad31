"""Fitting the RegNet parameterisation to a network's per-block widths.

Radosavovic et al. 2020 ("Designing Network Design Spaces", Sec. 3.3) test
whether good AnyNets are RegNets by fitting the quantized linear
parameterisation to them: the depth ``d`` is set to the network's number of
blocks, and ``w0``, ``wa``, ``wm`` are searched to minimise the fit error
``e_fit``, "the mean log-ratio of predicted to observed per-block widths".
The predicted widths are those the parameterisation generates (eq. 2-4, as
:func:`~keras_regnet.architecture.config.generate_block_widths` computes
them); the log-ratio is taken in absolute value so that errors of opposite
sign do not cancel::

    u_j = w0 + wa * j                                  (continuous widths)
    s_j = round(log(u_j / w0) / log(wm))
    w'_j = round(w0 * wm**s_j / 8) * 8                 (predicted widths)
    e_fit = mean_j |log(w'_j / w_j)|

pycls (0.1.1 and its HEAD) ships no fitting code, so this definition is taken
from the paper's text; ``e_fit == 0`` exactly when the parameters regenerate
the widths.  Many parameter sets do that (``e_fit`` is piecewise constant),
so among them the fit takes the one whose *continuous* widths ``u_j`` follow
the observed widths most closely, by the second error::

    e_linear = mean_j |log(w_j / u_j)|

(the distance of the widths from the linear function the paper's Fig. 8
draws through them).  :func:`fit_regnet` minimises ``(e_fit, e_linear)`` in
that order:

* when some parameters regenerate the widths exactly (every generator output
  is such a sequence), the search is exact: ``w0`` must be the first width
  (block 0 always has width ``w0``); for every ``wm`` the exact fits allow
  ``wa`` in an interval whose ends are closed-form increasing functions of
  ``wm``, so the set of exact ``wa`` is a union of intervals, computed
  piece by piece in ``wm`` and minimised over for ``e_linear``;
* otherwise it is the paper's grid search: ``w0`` over multiples of 8 from
  half the narrowest width to twice the first (at most 65 of them, spread
  geometrically), ``wm`` over a grid of step 0.002, and
  for each such pair every distinct outcome in ``wa`` (``e_fit`` changes
  only where a block moves to the next level, at known ``wa``).

Example:
    >>> from keras_regnet.architecture.config import RegNetConfig
    >>> cfg = RegNetConfig(depth=13, w0=24, wa=36.44, wm=2.49, group_width=8)
    >>> fit = fit_regnet(cfg.block_widths)
    >>> fit.block_widths == cfg.block_widths, fit.e_fit
    (True, 0.0)
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from keras_regnet.architecture.config import (
    WIDTH_QUANTUM,
    AnyNetConfig,
    RegNetConfig,
    check_int,
    generate_block_widths,
)

# The RegNet design space's range of wm (Radosavovic et al. 2020, Sec. 3.3).
WM_RANGE = (1.5, 3.0)
# Step of the wm grid of the approximate (non-exact) search.
WM_GRID_STEP = 0.002
# Samples of wm per piece of the exact search before its boundaries are refined.
_SAMPLES_PER_PIECE = 129
# At most this many values of w0 in the approximate search.
_MAX_INITIAL_WIDTHS = 65
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclasses.dataclass(frozen=True)
class RegNetFit:
    """The RegNet parameters fitted to a network's per-block widths.

    Attributes:
        depth: number of blocks ``d`` (the fitted network's).
        w0: initial width, a multiple of 8.
        wa: width slope (>= 0).
        wm: width multiplier (in the ``wm_range`` searched).
        e_fit: mean ``|log(w'_j / w_j)|`` of the generated widths ``w'_j``
            against the fitted ones; 0 when they are regenerated exactly.
        e_linear: mean ``|log(w_j / u_j)|`` of the fitted widths against the
            continuous widths ``u_j = w0 + wa * j``.
    """

    depth: int
    w0: int
    wa: float
    wm: float
    e_fit: float
    e_linear: float

    @property
    def block_widths(self) -> Tuple[int, ...]:
        """The per-block widths these parameters generate (quantised, before any group adjustment)."""
        return tuple(int(w) for w in generate_block_widths(self.depth, self.w0, self.wa, self.wm))

    @property
    def continuous_widths(self) -> np.ndarray:
        """``u_j = w0 + wa * j`` for ``j = 0 .. depth - 1``."""
        return self.w0 + self.wa * np.arange(self.depth)

    def to_config(self, group_width: int, bottleneck_ratio: float = 1.0, se_ratio: Optional[float] = None,
                  stem_width: int = 32, stem_stride: int = 2) -> RegNetConfig:
        """The :class:`~keras_regnet.architecture.config.RegNetConfig` with these parameters.

        The remaining arguments are those of ``RegNetConfig`` (and are
        validated by it).
        """
        return RegNetConfig(depth=self.depth, w0=self.w0, wa=self.wa, wm=self.wm, group_width=group_width,
                            bottleneck_ratio=bottleneck_ratio, se_ratio=se_ratio, stem_width=stem_width,
                            stem_stride=stem_stride)


def block_widths_of(config) -> Tuple[int, ...]:
    """Per-block widths of a network: what :func:`fit_regnet` takes.

    Args:
        config: a :class:`~keras_regnet.architecture.config.RegNetConfig`
            (its generated widths ``config.block_widths``, before the group
            adjustment) or an :class:`~keras_regnet.architecture.config.AnyNetConfig`
            (each stage's width repeated once per block).

    Raises:
        ValueError: ``config`` is neither.
    """
    if isinstance(config, RegNetConfig):
        return config.block_widths
    if isinstance(config, AnyNetConfig):
        return tuple(w for d, w in zip(config.depths, config.widths) for _ in range(d))
    raise ValueError(f"config must be a RegNetConfig or an AnyNetConfig; got {type(config).__name__}.")


def fit_error(block_widths: Sequence[int], w0: int, wa: float, wm: float) -> float:
    """The paper's ``e_fit`` of ``(w0, wa, wm)`` on ``block_widths``.

    Returns:
        ``mean_j |log(w'_j / w_j)|`` where ``w'`` are the widths the
        parameters generate for ``len(block_widths)`` blocks.

    Raises:
        ValueError: widths that are not positive integers, or parameters a
            :class:`~keras_regnet.architecture.config.RegNetConfig` refuses.
    """
    widths = _check_widths(block_widths)
    _check_parameters(w0, wa, wm)
    predicted = generate_block_widths(len(widths), w0, wa, wm)
    return float(np.mean(np.abs(np.log(predicted / widths))))


def linear_error(block_widths: Sequence[int], w0: int, wa: float) -> float:
    """``e_linear = mean_j |log(w_j / (w0 + wa * j))|``: distance from the continuous widths.

    Raises:
        ValueError: as :func:`fit_error`.
    """
    widths = _check_widths(block_widths)
    _check_parameters(w0, wa, 2.0)
    return float(_linear_errors(widths, w0, np.array([float(wa)]))[0])


def fit_regnet(block_widths: Sequence[int], *, wm_range: Tuple[float, float] = WM_RANGE) -> RegNetFit:
    """Fit ``(w0, wa, wm)`` to per-block widths, minimising ``e_fit`` then ``e_linear``.

    Args:
        block_widths: the width of every block, in order (positive integers);
            :func:`block_widths_of` gives them for a config.
        wm_range: the closed range searched for ``wm`` (``1 < low < high``);
            by default the RegNet design space's ``[1.5, 3]``.

    Returns:
        A :class:`RegNetFit` with ``depth = len(block_widths)``.  When some
        parameters with ``wm`` in range regenerate the widths exactly, the
        fit does (``e_fit == 0``) and has the smallest ``e_linear`` of all
        such parameters (to numerical precision); otherwise it is the best
        point of the grid search (see the module's docstring).

    Raises:
        ValueError: ``block_widths`` is not a non-empty sequence of positive
            integers, or ``wm_range`` is not a range above 1.
    """
    widths = _check_widths(block_widths)
    log_range = _check_wm_range(wm_range)
    return _exact_fit(widths, log_range) or _grid_fit(widths, log_range)


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------


def _check_widths(block_widths) -> np.ndarray:
    values = block_widths
    if isinstance(values, np.ndarray):
        values = values.tolist() if values.ndim == 1 else None
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(
            f"block_widths must be a non-empty sequence of positive integers; got block_widths={block_widths!r}."
        )
    for i, w in enumerate(values):
        check_int(f"block_widths[{i}]", w)
    return np.array(values, dtype=float)


def _check_parameters(w0, wa, wm):
    # RegNetConfig's own checks, so the wording matches the rest of the package.
    RegNetConfig(depth=1, w0=w0, wa=wa, wm=wm, group_width=1)


def _check_wm_range(wm_range) -> Tuple[float, float]:
    valid = (
        isinstance(wm_range, (tuple, list))
        and len(wm_range) == 2
        and all(not isinstance(v, bool) and isinstance(v, (int, float, np.number)) for v in wm_range)
        and 1 < wm_range[0] < wm_range[1] < math.inf
    )
    if not valid:
        raise ValueError(f"wm_range must be a pair (low, high) with 1 < low < high < inf; got wm_range={wm_range!r}.")
    return math.log(wm_range[0]), math.log(wm_range[1])


# --------------------------------------------------------------------------
# e_linear and its minimum over an interval of wa
# --------------------------------------------------------------------------


def _linear_errors(widths: np.ndarray, w0: float, slopes: np.ndarray) -> np.ndarray:
    """e_linear for each slope in ``slopes`` (any shape)."""
    j = np.arange(len(widths))
    u = w0 + np.asarray(slopes, float)[..., None] * j
    return np.mean(np.abs(np.log(widths) - np.log(u)), axis=-1)


def _min_linear_error(widths: np.ndarray, w0: float, low: float, high: float) -> Tuple[float, float]:
    """The slope in ``[low, high]`` with the smallest e_linear, and that error.

    e_linear is smooth except where ``u_j`` crosses ``w_j`` (at the "kinks"
    ``(w_j - w0) / j``); each smooth piece is searched by golden section, and
    the kinks and ends are evaluated too.
    """
    j = np.arange(1, len(widths))
    kinks = (widths[1:] - w0) / j
    edges = np.unique(np.concatenate([[low, high], kinks[(kinks > low) & (kinks < high)]]))
    a, b = edges[:-1].copy(), edges[1:].copy()
    for _ in range(60):
        c, e = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
        left = _linear_errors(widths, w0, c) < _linear_errors(widths, w0, e)
        b, a = np.where(left, e, b), np.where(left, a, c)
    candidates = np.concatenate([edges, (a + b) / 2])
    errors = _linear_errors(widths, w0, candidates)
    best = int(np.argmin(errors))
    return float(candidates[best]), float(errors[best])


# --------------------------------------------------------------------------
# Exact search: the parameters that regenerate the widths
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Runs:
    """The widths as runs of equal width: ``widths[m]`` for blocks ``first[m] .. last[m]``."""

    widths: np.ndarray
    first: np.ndarray
    last: np.ndarray


def _runs(widths: np.ndarray) -> _Runs:
    starts = np.flatnonzero(np.r_[True, widths[1:] != widths[:-1]])
    ends = np.r_[starts[1:] - 1, len(widths) - 1]
    return _Runs(widths[starts], starts, ends)


@dataclasses.dataclass(frozen=True)
class _Piece:
    """An interval of ``L = log(wm)`` over which every run's allowed exponents ``s`` are fixed.

    Run ``m`` has width ``w0 * wm**s`` (quantised) for ``s`` in
    ``[low_level[m], high_level[m]]``.  Within the piece the exact fits are
    ``lower(L) <= wa < upper(L)``, both increasing in ``L``.
    """

    start: float
    stop: float
    low_level: np.ndarray
    high_level: np.ndarray


def _exact_fit(widths: np.ndarray, log_range) -> Optional[RegNetFit]:
    w0 = int(widths[0])
    increasing = np.all(np.diff(widths) >= 0)
    if w0 % WIDTH_QUANTUM or np.any(widths % WIDTH_QUANTUM) or not increasing:
        return None  # No RegNet generates these widths.
    runs = _runs(widths)
    candidates = []
    for piece in _pieces(runs, w0, log_range):
        for low, high in _slope_intervals(runs, w0, piece):
            slope, error = _min_linear_error(widths, w0, low, high)
            candidates.append((error, slope, low, high, piece))
    for error, slope, low, high, piece in sorted(candidates, key=lambda c: c[:2]):
        fit = _exact_parameters(widths, runs, w0, slope, low, high, piece)
        if fit is not None:
            return fit
    return None


def _pieces(runs: _Runs, w0: int, log_range) -> List[_Piece]:
    """Split ``[log(wm_low), log(wm_high)]`` where some run's set of exponents changes."""
    lo, hi = log_range
    max_level = int(math.log((runs.widths.max() + 4) / w0) / lo) + 1
    levels = np.arange(1, max_level + 1)
    half = WIDTH_QUANTUM / 2
    # Quantised width w0 * e^(s L) equals W for w0 e^(s L) in [W - 4, W + 4].
    edges = [np.log(np.maximum(runs.widths + sign * half, 1e-9) / w0)[:, None] / levels
             for sign in (-1, 1)]
    breaks = np.concatenate([e.ravel() for e in edges])
    breaks = np.unique(np.r_[lo, hi, breaks[(breaks > lo) & (breaks < hi)]])
    pieces = []
    for start, stop in zip(breaks[:-1], breaks[1:]):
        low_level, high_level = _levels(runs, w0, (start + stop) / 2)
        if np.all(low_level <= high_level):
            pieces.append(_Piece(float(start), float(stop), low_level, high_level))
    return pieces


def _levels(runs: _Runs, w0: int, log_wm: float) -> Tuple[np.ndarray, np.ndarray]:
    half = WIDTH_QUANTUM / 2
    low = np.maximum(0, np.ceil(np.log((runs.widths - half) / w0) / log_wm))
    high = np.floor(np.log((runs.widths + half) / w0) / log_wm)
    return low, high


def _slope_bounds(runs: _Runs, w0: int, piece: _Piece, log_wm: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``lower(L)``, ``upper(L)``: the exact fits' range of ``wa`` at each ``L`` of the piece.

    Block ``j`` gets exponent ``s`` for ``w0 e^((s-1/2)L) <= u_j < w0 e^((s+1/2)L)``;
    ``u_j`` grows with ``j``, so only each run's first and last blocks bind.
    """
    log_wm = np.asarray(log_wm, float)[..., None]
    lower = np.zeros(log_wm.shape[:-1])
    upper = np.full(log_wm.shape[:-1], np.inf)
    starts = runs.first >= 1  # Block 0 is always at exponent 0.
    if np.any(starts):
        bound = w0 * np.expm1((piece.low_level[starts] - 0.5) * log_wm) / runs.first[starts]
        lower = np.maximum(lower, bound.max(axis=-1))
    ends = runs.last >= 1
    if np.any(ends):
        bound = w0 * np.expm1((piece.high_level[ends] + 0.5) * log_wm) / runs.last[ends]
        upper = np.minimum(upper, bound.min(axis=-1))
    return lower, upper


def _slope_intervals(runs: _Runs, w0: int, piece: _Piece) -> List[Tuple[float, float]]:
    """The exact fits' ``wa`` over the piece: one interval per stretch of ``L`` where any exist.

    On a stretch ``[La, Lb]`` where ``lower < upper`` throughout, the union
    of ``[lower(L), upper(L))`` is ``[lower(La), upper(Lb))`` since both
    bounds are continuous and increasing.
    """
    def slack(x):
        lower, upper = _slope_bounds(runs, w0, piece, x)
        return upper - lower

    grid = np.linspace(piece.start, piece.stop, _SAMPLES_PER_PIECE)
    grid = np.sort(np.r_[grid, _refined_maximum(slack, grid)])
    positive = slack(grid) > 0
    intervals = []
    for a, b in _true_stretches(positive):
        left = grid[a] if a == 0 else _boundary(slack, grid[a - 1], grid[a])
        right = grid[b] if b == len(grid) - 1 else _boundary(slack, grid[b + 1], grid[b])
        lower, _ = _slope_bounds(runs, w0, piece, left)
        _, upper = _slope_bounds(runs, w0, piece, right)
        intervals.append((float(lower), float(min(upper, 1e9))))
    return intervals


def _refined_maximum(function, grid: np.ndarray) -> float:
    """Golden-section refinement of ``function``'s best sample: finds slivers between samples."""
    values = function(grid)
    i = int(np.argmax(values))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for _ in range(60):
        c, e = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
        if function(c) > function(e):
            b = e
        else:
            a = c
    return (a + b) / 2


def _true_stretches(mask: np.ndarray) -> List[Tuple[int, int]]:
    edges = np.diff(np.r_[0, mask.astype(int), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def _boundary(function, outside: float, inside: float) -> float:
    """Bisect to the point where ``function`` turns positive, staying on the positive side."""
    for _ in range(60):
        middle = (outside + inside) / 2
        if function(middle) > 0:
            inside = middle
        else:
            outside = middle
    return inside


def _exact_parameters(widths, runs, w0, slope, low, high, piece) -> Optional[RegNetFit]:
    """A ``wm`` for ``slope`` in the piece, checked by regenerating the widths.

    The slope is first moved inside ``[low, high]`` by a hair (the interval's
    ends are where a block sits exactly on a rounding boundary), and ``wm``
    is the middle of the ``L`` range that admits it.
    """
    margin = 1e-7 * (high - low)
    for pull in (margin, 1e3 * margin):
        wa = float(np.clip(slope, low + pull if low > 0 else 0.0, high - pull))
        log_wm = _log_wm_for_slope(runs, w0, piece, wa)
        if log_wm is None:
            continue
        wm = math.exp(log_wm)
        if np.array_equal(generate_block_widths(len(widths), w0, wa, wm), widths):
            error = float(_linear_errors(widths, w0, np.array([wa]))[0])
            return RegNetFit(len(widths), w0, wa, wm, 0.0, error)
    return None


def _log_wm_for_slope(runs: _Runs, w0: int, piece: _Piece, wa: float) -> Optional[float]:
    """Middle of ``{L in piece: lower(L) <= wa < upper(L)}`` (closed form per constraint)."""
    start, stop = piece.start, piece.stop
    for m in range(len(runs.widths)):
        if runs.last[m] >= 1:
            start = max(start, math.log1p(wa * runs.last[m] / w0) / (piece.high_level[m] + 0.5))
        if runs.first[m] >= 1:
            stop = min(stop, math.log1p(wa * runs.first[m] / w0) / (piece.low_level[m] - 0.5))
    return (start + stop) / 2 if start < stop else None


# --------------------------------------------------------------------------
# Grid search for widths no RegNet generates
# --------------------------------------------------------------------------


def _grid_fit(widths: np.ndarray, log_range) -> RegNetFit:
    wms = np.arange(math.exp(log_range[0]), math.exp(log_range[1]) + WM_GRID_STEP / 2, WM_GRID_STEP)
    best = []
    for w0 in _initial_widths(widths.min(), widths[0]):
        best.extend(_best_segments(widths, w0, wms))
    lowest = min(cost for cost, *_ in best)
    ties = [b for b in best if b[0] <= lowest + 1e-12]
    fits = []
    for _, w0, wm, low, high in ties[:64]:
        # Inside the segment by a hair: at its ends a block sits on a rounding boundary.
        margin = 1e-7 * (high - low)
        slope, error = _min_linear_error(widths, w0, low + margin if low > 0 else 0.0, high - margin)
        fits.append((error, w0, slope, wm))
    error, w0, wa, wm = min(fits)
    return RegNetFit(len(widths), int(w0), float(wa), float(wm), fit_error(widths.astype(int).tolist(), w0, wa, wm),
                     float(error))


def _initial_widths(narrowest: float, first_width: float) -> List[int]:
    """Multiples of 8 from half the narrowest width to twice the first: all, or 65 spread geometrically."""
    first = max(1, math.ceil(narrowest / 2 / WIDTH_QUANTUM))
    last = max(first, math.floor(2 * first_width / WIDTH_QUANTUM))
    steps = np.unique(np.round(np.geomspace(first, last, min(last - first + 1, _MAX_INITIAL_WIDTHS))))
    return [int(k) * WIDTH_QUANTUM for k in steps]


def _best_segments(widths: np.ndarray, w0: int, wms: np.ndarray):
    """For each ``wm``: the lowest total ``|log|`` error over ``wa`` and the ``wa`` segment giving it.

    Block ``j`` is at exponent ``s`` for ``wa`` in
    ``[w0 (wm^(s-1/2) - 1) / j, w0 (wm^(s+1/2) - 1) / j)``, so the error is a
    step function of ``wa``: sorting the steps and summing their changes
    gives it everywhere.  Returns the rows tying for this ``w0``'s minimum.
    """
    d = len(widths)
    max_level = int(math.log(2 * widths.max() / w0) / math.log(wms[0])) + 2
    levels = np.arange(max_level + 1)
    level_widths = np.round(w0 * wms[:, None] ** levels / WIDTH_QUANTUM) * WIDTH_QUANTUM  # (wm, s)
    costs = np.abs(np.log(level_widths[:, None, :] / widths[None, :, None]))  # (wm, j, s)
    base = costs[:, :, 0].sum(axis=1)
    if d == 1:
        return [(base[0] / d, w0, float(wms[0]), 0.0, 1.0)]
    j = np.arange(1, d)
    steps = w0 * np.expm1((levels[:-1] + 0.5) * np.log(wms)[:, None])[:, None, :] / j[None, :, None]
    changes = np.diff(costs[:, 1:, :], axis=2)  # (wm, j >= 1, s)
    steps, changes = steps.reshape(len(wms), -1), changes.reshape(len(wms), -1)
    order = np.argsort(steps, axis=1)
    steps, changes = np.take_along_axis(steps, order, 1), np.take_along_axis(changes, order, 1)
    totals = np.concatenate([base[:, None], base[:, None] + np.cumsum(changes, axis=1)], axis=1) / d
    bounds = np.concatenate([np.zeros((len(wms), 1)), steps, 2 * steps[:, -1:] + 1], axis=1)
    k = np.argmin(totals, axis=1)
    row_best = totals[np.arange(len(wms)), k]
    lowest = row_best.min()
    rows = np.flatnonzero(row_best <= lowest + 1e-12)
    return [(float(row_best[r]), w0, float(wms[r]), float(bounds[r, k[r]]), float(bounds[r, k[r] + 1]))
            for r in rows]
