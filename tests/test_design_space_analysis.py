"""Population statistics on synthetic populations whose answers are known."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from keras_regnet.design_space.analysis import edf, expected_best_of_k, good_range, ks_statistic, normalized_edf


def test_edf_of_evenly_spaced_errors_is_the_identity():
    errors = np.arange(1, 101) / 100
    grid, f = edf(errors)
    np.testing.assert_array_equal(grid, errors)
    np.testing.assert_allclose(f, errors, rtol=0, atol=1e-12)
    _, at = edf(errors[::-1], grid=[0.0, 0.005, 0.5, 0.505, 2.0])
    np.testing.assert_allclose(at, [0.0, 0.0, 0.5, 0.5, 1.0])


def test_edf_of_uniform_samples_is_within_the_dkw_band():
    # Dvoretzky-Kiefer-Wolfowitz: P(sup |F_n - F| > eps) <= 2 exp(-2 n eps^2); eps for 1e-6.
    n = 5000
    errors = np.random.default_rng(0).uniform(0, 1, n)
    grid, f = edf(errors)
    eps = np.sqrt(np.log(2 / 1e-6) / (2 * n))
    assert np.max(np.abs(f - grid)) < eps
    assert np.max(np.abs(np.r_[0.0, f[:-1]] - grid)) < eps  # just below each jump too


def test_edf_counts_ties():
    grid, f = edf([3, 1, 3, 2])
    np.testing.assert_array_equal(grid, [1, 2, 3])
    np.testing.assert_allclose(f, [0.25, 0.5, 1.0])


def test_normalized_edf_gives_every_complexity_bin_equal_weight():
    # 90 cheap models, all good; 10 expensive models, all bad.  Plain EDF at the
    # gap: 0.9; normalised: each bin weighs 1/2, so 0.5.
    errors = np.r_[np.linspace(10, 20, 90), np.linspace(40, 50, 10)]
    complexity = np.r_[np.full(90, 100e6), np.full(10, 400e6)]
    assert edf(errors, grid=[30.0])[1][0] == pytest.approx(0.9)
    _, f = normalized_edf(errors, complexity, bins=[0, 200e6, 500e6], grid=[9.0, 15.0, 20.0, 30.0, 45.0, 50.0])
    np.testing.assert_allclose(f, [0.0, 0.5 * 45 / 90, 0.5, 0.5, 0.5 + 0.5 * 5 / 10, 1.0])


def test_normalized_edf_equals_edf_when_bins_are_equally_full():
    rng = np.random.default_rng(1)
    errors = rng.uniform(20, 60, 300)
    complexity = np.repeat([1e8, 2e8, 3e8], 100)
    grid, f = normalized_edf(errors, complexity, bins=3)
    np.testing.assert_allclose(f, edf(errors, grid)[1], atol=1e-12)
    assert f[-1] == pytest.approx(1.0)


def test_normalized_edf_ignores_empty_bins_and_includes_the_last_edge():
    errors = [1.0, 2.0, 3.0]
    complexity = [1.0, 1.0, 10.0]  # 10.0 sits on the last edge
    _, f = normalized_edf(errors, complexity, bins=[0.0, 2.0, 5.0, 10.0])
    np.testing.assert_allclose(f, [0.25, 0.5, 1.0])


def test_ks_statistic_known_values():
    a = np.arange(100.0)
    assert ks_statistic(a, a) == 0.0
    assert ks_statistic(a, a + 1000) == 1.0
    assert ks_statistic(a, a + 10) == pytest.approx(0.1)


def test_ks_statistic_equals_scipy():
    rng = np.random.default_rng(2)
    for n, m, shift in [(50, 80, 0.0), (200, 30, 0.3), (1000, 1000, 0.05)]:
        a, b = rng.normal(0, 1, n), rng.normal(shift, 1, m)
        b[:5] = a[:5]  # ties across the samples
        assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_good_range_finds_the_value_of_the_best_models():
    # The 150 best of 400 models all have value 5; a resample of 100 misses all
    # of them with probability (250/400)^100 ~ 4e-21.
    rng = np.random.default_rng(3)
    errors = np.r_[rng.uniform(10, 20, 150), rng.uniform(30, 60, 250)]
    values = np.r_[np.full(150, 5.0), rng.uniform(0, 100, 250)]
    order = rng.permutation(400)
    assert good_range(values[order], errors[order]) == (5.0, 5.0, 5.0)


def test_good_range_matches_the_best_of_a_resample_in_closed_form():
    # value = rank of the error, so the kept value is the minimum of m uniform
    # draws of {1..n}: P(min <= r) = 1 - (1 - r/n)^m.
    n, m = 400, 100
    values = np.arange(1.0, n + 1)
    errors = values / 10
    low, median, high = good_range(values, errors, fraction=m / n, draws=20_000, seed=4)

    def quantile(p):
        return np.ceil(n * (1 - (1 - p) ** (1 / m)))

    assert abs(median - quantile(0.5)) <= 1
    assert abs(high - quantile(0.975)) <= 2
    assert abs(low - quantile(0.025)) <= 1


def test_good_range_is_reproducible_and_checks_its_input():
    rng = np.random.default_rng(5)
    values, errors = rng.uniform(0, 1, 50), rng.uniform(0, 1, 50)
    assert good_range(values, errors, seed=1) == good_range(values, errors, seed=1)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
        good_range(values, errors, fraction=0)
    with pytest.raises(ValueError, match="values and errors must have one value per model; got 50 and 49"):
        good_range(values, errors[:-1])
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        good_range(values, errors, draws=0)


def brute_force_best_of_k(errors, k):
    subsets = list(itertools.combinations(errors, k))
    return sum(Fraction(min(s)) for s in subsets) / len(subsets)


def test_expected_best_of_k_equals_enumeration():
    rng = np.random.default_rng(6)
    for n in (1, 2, 5, 9):
        errors = rng.integers(0, 20, n)  # with ties
        expected = expected_best_of_k(errors, range(1, n + 1))
        exact = [float(brute_force_best_of_k(errors.tolist(), k)) for k in range(1, n + 1)]
        np.testing.assert_allclose(expected, exact, rtol=1e-12)


def test_expected_best_of_k_closed_form():
    # For errors 1..n the expected minimum of k is (n + 1) / (k + 1).
    n = 2000
    ks = [1, 2, 10, 100, 1999, 2000]
    np.testing.assert_allclose(expected_best_of_k(np.arange(1, n + 1), ks), [(n + 1) / (k + 1) for k in ks], rtol=1e-10)
    assert expected_best_of_k([3.0, 1.0, 2.0], 1) == pytest.approx(2.0)
    assert isinstance(expected_best_of_k([3.0, 1.0, 2.0], 3), float)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: edf([]), "errors must be a non-empty 1-D sequence"),
        (lambda: edf([[1.0, 2.0]]), "errors must be a non-empty 1-D sequence"),
        (lambda: edf([1.0, float("nan")]), "errors must hold finite numbers only; 1 are NaN"),
        (lambda: edf(["a"]), "errors must be a 1-D sequence of numbers"),
        (lambda: normalized_edf([1.0, 2.0], [1.0], 2), "errors and complexity must have one value per model"),
        (lambda: normalized_edf([1.0, 2.0], [1.0, 5.0], [2.0, 6.0]), "complexity values lie outside the bin edges"),
        (lambda: normalized_edf([1.0], [1.0], [3.0, 2.0]), "bins must be a positive integer or at least 2 increasing"),
        (lambda: normalized_edf([1.0], [1.0], 0), "bins must be a positive integer"),
        (lambda: ks_statistic([1.0], []), "errors_b must be a non-empty 1-D sequence"),
        (lambda: expected_best_of_k([1.0, 2.0], 3), r"k must be an integer in \[1, 2\]; got k=3"),
        (lambda: expected_best_of_k([1.0, 2.0], []), "ks must be an integer or a non-empty sequence"),
        (lambda: expected_best_of_k([1.0, 2.0], 1.5), "k must be an integer"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
