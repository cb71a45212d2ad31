"""Design spaces: AnyNetX_A...E and RegNetX/Y, samplers, sweeps, population statistics, fitting and scaling.

The method of Radosavovic et al. 2020 ("Designing Network Design Spaces"):
sample networks from a space within a complexity band, train them briefly,
compare spaces by their error distributions, and refine the space.

* :mod:`~keras_regnet.design_space.spaces`: :class:`AnyNetConfig`, the
  spaces (``SPACES``), :func:`sample`, :func:`space_size`,
  :func:`anynet_complexity` (exact to pycls 0.1.1) and
  :func:`anynet_from_regnet` (plain numpy);
* :mod:`~keras_regnet.design_space.sweep`: :func:`run_sweep` /
  :func:`run_sweeps` train sampled networks on Dask workers, resumably,
  into a JSON results file (:class:`SweepSpec`, :func:`load_results`);
* :mod:`~keras_regnet.design_space.analysis`: :func:`edf`,
  :func:`normalized_edf`, :func:`ks_statistic`, :func:`good_range`,
  :func:`expected_best_of_k`; :mod:`~keras_regnet.design_space.plots` draws
  them and :func:`analyze_sweeps` writes plots and a summary for sweeps;
* :mod:`~keras_regnet.design_space.fitting`: :func:`fit_regnet` fits
  (w0, wa, wm, depth) to per-block widths, with the fit error ``e_fit``;
* :mod:`~keras_regnet.design_space.scaling`: :func:`scale_model` (pycls's
  compound scaling) and :func:`fit_to_budget` (TinyNet-style, exact flops).

Only ``sweep``'s workers and ``plots`` need more than numpy (Keras and
Dask; matplotlib).

Example:
    >>> from keras_regnet import design_space as ds
    >>> nets = ds.sample("AnyNetX_E", n=3, seed=0, flops_range=(360e6, 400e6))
    >>> all(360e6 <= ds.anynet_complexity(c)["flops"] <= 400e6 for c in nets)
    True
"""

from keras_regnet.design_space.analysis import (
    edf,
    expected_best_of_k,
    good_range,
    ks_statistic,
    normalized_edf,
)
from keras_regnet.design_space.fitting import RegNetFit, block_widths_of, fit_error, fit_regnet
from keras_regnet.design_space.plots import plot_edfs, plot_error_vs_parameter, plot_error_vs_parameters, plot_width_fit
from keras_regnet.design_space.report import analyze_sweeps
from keras_regnet.design_space.scaling import FAST_COMPOUND_SCALING, ScaledModel, fit_to_budget, scale_model
from keras_regnet.design_space.spaces import (
    ANYNET_SPACES,
    REGNET_SPACES,
    SPACES,
    AnyNetConfig,
    RegNetRanges,
    anynet_complexity,
    anynet_from_regnet,
    sample,
    space_size,
)
from keras_regnet.design_space.sweep import SweepSpec, load_results, run_sweep, run_sweeps

__all__ = [
    "ANYNET_SPACES",
    "FAST_COMPOUND_SCALING",
    "REGNET_SPACES",
    "SPACES",
    "AnyNetConfig",
    "RegNetFit",
    "RegNetRanges",
    "ScaledModel",
    "SweepSpec",
    "analyze_sweeps",
    "anynet_complexity",
    "anynet_from_regnet",
    "block_widths_of",
    "edf",
    "expected_best_of_k",
    "fit_error",
    "fit_regnet",
    "fit_to_budget",
    "good_range",
    "ks_statistic",
    "load_results",
    "normalized_edf",
    "plot_edfs",
    "plot_error_vs_parameter",
    "plot_error_vs_parameters",
    "plot_width_fit",
    "run_sweep",
    "run_sweeps",
    "sample",
    "scale_model",
    "space_size",
]
