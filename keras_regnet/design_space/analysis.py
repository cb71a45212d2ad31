"""Statistics on populations of trained models, for comparing design spaces.

A population is arrays of equal length: one error (and complexity, or
parameter value) per model.  The tools follow Radosavovic et al. 2019 ("On
Network Design Spaces") and pycls's ``sweep/analysis.py``:

* :func:`edf`: the error empirical distribution function, ``F(e)`` = the
  fraction of models with error at most ``e``;
* :func:`normalized_edf`: the same with models reweighted so that every
  complexity bin carries equal total weight, which removes differences
  between spaces that come only from their complexity distributions;
* :func:`ks_statistic`: the Kolmogorov-Smirnov distance between two EDFs;
* :func:`good_range`: the bootstrap range of a parameter among the best models;
* :func:`expected_best_of_k`: the expected error of the best of ``k`` models
  drawn at random (random-search efficiency).

Plain numpy; no Keras.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np

from keras_regnet.architecture.config import check_int


def finite_values(name, values) -> np.ndarray:
    """A non-empty 1-D array of finite floats, or a ValueError naming ``name``."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D sequence of numbers; got {type(values).__name__}.") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers; got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise ValueError(f"{name} must hold finite numbers only; {bad} are NaN or infinite.")
    return array


def check_same_length(name_a, a, name_b, b):
    if a.size != b.size:
        raise ValueError(f"{name_a} and {name_b} must have one value per model; got {a.size} and {b.size}.")


def edf(errors, grid=None) -> Tuple[np.ndarray, np.ndarray]:
    """Empirical distribution function of ``errors``.

    Args:
        errors: one error per model.
        grid: points to evaluate at; default the sorted distinct errors.

    Returns:
        ``(grid, F)`` with ``F[i]`` the fraction of errors ``<= grid[i]``.
    """
    errors = finite_values("errors", errors)
    grid = np.unique(errors) if grid is None else finite_values("grid", grid)
    return grid, np.searchsorted(np.sort(errors), grid, side="right") / errors.size


def normalized_edf(errors, complexity, bins: Union[int, Sequence[float]], grid=None) -> Tuple[np.ndarray, np.ndarray]:
    """Complexity-normalised EDF (Radosavovic et al. 2019).

    Each model gets weight ``1 / (K * n_bin)``, where ``n_bin`` is the number
    of models in its complexity bin and ``K`` the number of non-empty bins:
    every occupied bin carries equal total weight, and the weights sum to 1.
    Use the same bin edges for the spaces you compare.

    Args:
        errors: one error per model.
        complexity: one complexity value (flops, params...) per model.
        bins: a number of equal-width bins spanning ``complexity``, or
            increasing bin edges (``np.geomspace`` for log-spaced bins); the
            last bin includes its right edge, as ``np.histogram``'s does.
        grid: points to evaluate at; default the sorted distinct errors.

    Returns:
        ``(grid, F)`` with ``F[i]`` the total weight of models with error
        ``<= grid[i]``.
    """
    errors, complexity = finite_values("errors", errors), finite_values("complexity", complexity)
    check_same_length("errors", errors, "complexity", complexity)
    edges = _bin_edges(bins, complexity)
    if complexity.min() < edges[0] or complexity.max() > edges[-1]:
        raise ValueError(f"complexity values lie outside the bin edges [{edges[0]}, {edges[-1]}].")
    index = np.minimum(np.searchsorted(edges, complexity, side="right") - 1, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    weights = 1.0 / (counts[index] * np.count_nonzero(counts))
    grid = np.unique(errors) if grid is None else finite_values("grid", grid)
    order = np.argsort(errors, kind="stable")
    cumulative = np.r_[0.0, np.cumsum(weights[order])]
    return grid, cumulative[np.searchsorted(errors[order], grid, side="right")]


def _bin_edges(bins, complexity) -> np.ndarray:
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        check_int("bins", bins)
        return np.histogram_bin_edges(complexity, bins)
    edges = finite_values("bins", bins)
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bins must be a positive integer or at least 2 increasing edges; got bins={bins!r}.")
    return edges


def ks_statistic(errors_a, errors_b) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the two EDFs.

    0 for identical populations, 1 when every error of one is below every
    error of the other.  Equal to ``scipy.stats.ks_2samp(a, b).statistic``.
    """
    a = np.sort(finite_values("errors_a", errors_a))
    b = np.sort(finite_values("errors_b", errors_b))
    pooled = np.concatenate([a, b])
    gap = np.searchsorted(a, pooled, side="right") / a.size - np.searchsorted(b, pooled, side="right") / b.size
    return float(np.max(np.abs(gap)))


def good_range(values, errors, fraction: float = 0.25, draws: int = 2500, seed: int = 0) -> Tuple[float, float, float]:
    """Bootstrap range of a parameter among the best models (pycls ``get_filters``).

    ``draws`` times, ``max(1, int(fraction * n))`` models are drawn with
    replacement and the value of the one with the lowest error is kept (the
    first, on ties); the 2.5th, 50th and 97.5th percentiles of the kept
    values are returned: a 95% interval where the best models' values lie.

    Args:
        values: the parameter's value per model (depth, w0, flops...).
        errors: the error per model.
        fraction: share of the population in each resample, in (0, 1].
        draws: number of resamples.
        seed: seed of the resampling.

    Returns:
        ``(low, median, high)``.
    """
    values, errors = finite_values("values", values), finite_values("errors", errors)
    check_same_length("values", values, "errors", errors)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1]; got fraction={fraction!r}.")
    check_int("draws", draws)
    check_int("seed", seed, minimum=0)
    size = max(1, int(values.size * fraction))
    picks = np.random.default_rng(seed).integers(0, values.size, (draws, size))
    best = picks[np.arange(draws), np.argmin(errors[picks], axis=1)]
    low, median, high = np.percentile(values[best], [2.5, 50, 97.5])
    return float(low), float(median), float(high)


def expected_best_of_k(errors, ks) -> Union[float, np.ndarray]:
    """Expected lowest error among ``k`` models drawn without replacement.

    With the errors sorted, ``e_(1) <= ... <= e_(n)``, the best of ``k`` is
    ``e_(i)`` with probability ``C(n - i, k - 1) / C(n, k)``; the sum is
    exact (no simulation).  The curve over ``k`` is how fast random search
    in the space finds a good model.

    Args:
        errors: one error per model.
        ks: an integer ``k`` in [1, n], or a sequence of them.

    Returns:
        A float for an integer ``k``; an array, one value per ``k``, otherwise.
    """
    errors = np.sort(finite_values("errors", errors))
    n = errors.size
    scalar = np.ndim(ks) == 0
    ks_list = [ks] if scalar else list(ks)
    if not ks_list:
        raise ValueError("ks must be an integer or a non-empty sequence of integers.")
    result = np.array([_best_of(errors, check_int("k", k, maximum=n)) for k in ks_list])
    return float(result[0]) if scalar else result


def _best_of(sorted_errors, k) -> float:
    n = sorted_errors.size
    i = np.arange(1, n)
    # p_1 = k / n; p_(i+1) / p_i = C(n-i-1, k-1) / C(n-i, k-1) = (n-i-k+1) / (n-i).
    ratios = np.maximum(n - i - k + 1, 0) / (n - i)
    probabilities = (k / n) * np.r_[1.0, np.cumprod(ratios)]
    return float(np.dot(probabilities, sorted_errors))
