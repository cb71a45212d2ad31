"""Pictures of populations of trained models: EDFs, error vs. parameter, block widths.

The figures of Radosavovic et al. 2020 ("Designing Network Design Spaces"),
drawn from the statistics in :mod:`keras_regnet.design_space.analysis`:

* :func:`plot_edfs`: one error EDF per design space (optionally
  complexity-normalised), with each population's size, best and mean error in
  the legend and the KS distance between the first two;
* :func:`plot_error_vs_parameter` / :func:`plot_error_vs_parameters`: error
  against one parameter (depth, w0, wa, wm...) with the bootstrap good range
  shaded and the best model marked;
* :func:`plot_width_fit`: a network's per-block widths and, given a fit,
  the linear widths ``u_j = w0 + wa*j`` and the quantised widths they generate.

Every function returns the :class:`matplotlib.figure.Figure` and, given
``path``, also saves it as a PNG atomically.  Figures are built without
pyplot, so nothing needs a display.
"""

from __future__ import annotations

import math
from typing import Collection, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from keras_regnet.architecture.config import check_int, generate_block_widths
from keras_regnet.architecture.plotting import save_figure
from keras_regnet.design_space import analysis

# What plot_width_fit reads from a fit (fitting.RegNetFit or anything alike).
FIT_ATTRIBUTES = ("w0", "wa", "wm", "depth", "e_fit")


def plot_edfs(
    populations: Mapping[str, Sequence[float]],
    path: Optional[str] = None,
    *,
    complexity: Optional[Mapping[str, Sequence[float]]] = None,
    bins: Union[int, Sequence[float], None] = None,
    title: Optional[str] = None,
    xlabel: str = "error (%)",
):
    """Plot the error EDF of each population (design space) on one axis.

    Legend entries read ``"<name> (n=<n>, min=<min>, mean=<mean>)"``.  With
    two or more populations the Kolmogorov-Smirnov distance between the first
    two is written in the corner of the plot.

    Args:
        populations: space name -> one error per model; drawn in the
            mapping's order.
        path: if given, the PNG to write (atomically).
        complexity: space name -> one complexity value (flops...) per model,
            for the same names; with ``bins``, each curve is the
            complexity-normalised EDF (:func:`analysis.normalized_edf`), and
            the KS distance is measured between the normalised curves.
        bins: the complexity bins: a number of equal-width bins spanning all
            populations' complexities together (so every space is binned
            alike), or increasing bin edges.
        title: the axes' title.
        xlabel: the x axis label.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        ValueError: for no population, an empty or non-finite population,
            ``complexity`` without ``bins`` (or the reverse), complexity
            names other than the populations', or lengths that differ.
    """
    errors = _populations("populations", populations)
    normalising = _complexity_bins(errors, complexity, bins)
    fig = _new_figure((6.0, 4.0))
    ax = fig.add_subplot()
    for name, values in errors.items():
        if normalising is None:
            grid, fraction = analysis.edf(values)
        else:
            grid, fraction = analysis.normalized_edf(values, normalising[0][name], normalising[1])
        ax.plot(grid, fraction, drawstyle="steps-post", label=population_label(name, values))
    if len(errors) >= 2:
        ax.text(
            0.98,
            0.04,
            _ks_text(errors, normalising),
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cumulative prob." if normalising is None else "cumulative prob. (normalised)")
    ax.set_ylim(0, 1.02)
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.3)
    return _finish(fig, path)


def population_label(name: str, errors) -> str:
    """The legend entry of one population: ``"name (n=.., min=.., mean=..)"``."""
    errors = np.asarray(errors, dtype=float)
    return f"{name} (n={errors.size}, min={errors.min():.1f}, mean={errors.mean():.1f})"


def _ks_text(errors, normalising) -> str:
    (name_a, a), (name_b, b) = list(errors.items())[:2]
    if normalising is None:
        return f"KS({name_a}, {name_b}) = {analysis.ks_statistic(a, b):.3f}"
    # Both normalised EDFs are right-continuous steps that jump only at their
    # own errors, so the largest gap is attained on the pooled errors.
    pooled = np.unique(np.concatenate([a, b]))
    complexity, edges = normalising
    _, f_a = analysis.normalized_edf(a, complexity[name_a], edges, grid=pooled)
    _, f_b = analysis.normalized_edf(b, complexity[name_b], edges, grid=pooled)
    return f"KS({name_a}, {name_b}) = {np.max(np.abs(f_a - f_b)):.3f} (normalised)"


def _complexity_bins(errors, complexity, bins):
    """``None`` for plain EDFs, else (name -> complexity array, shared bin edges)."""
    if complexity is None and bins is None:
        return None
    if complexity is None or bins is None:
        raise ValueError("complexity and bins go together: give both for normalised EDFs, or neither.")
    if not isinstance(complexity, Mapping):
        raise ValueError(f"complexity must be a mapping of space name -> values; got {type(complexity).__name__}.")
    if set(complexity) != set(errors):
        raise ValueError(
            f"complexity must name the same spaces as populations; got {sorted(complexity)} for {sorted(errors)}."
        )
    values = {}
    for name in errors:
        values[name] = analysis.finite_values(f"complexity[{name!r}]", complexity[name])
        analysis.check_same_length(f"populations[{name!r}]", errors[name], f"complexity[{name!r}]", values[name])
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        check_int("bins", bins)
        # One set of edges for every space, or their normalised EDFs are not comparable.
        edges = np.histogram_bin_edges(np.concatenate(list(values.values())), bins)
    else:
        edges = analysis.finite_values("bins", bins)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bins must be a positive integer or at least 2 increasing edges; got bins={bins!r}.")
    return values, edges


def plot_error_vs_parameter(
    values: Sequence[float],
    errors: Sequence[float],
    path: Optional[str] = None,
    *,
    name: str,
    good_range: Optional[Tuple[float, float, float]] = None,
    log_x: bool = False,
):
    """Scatter each model's error against one parameter, with the good range shaded.

    The good range is the bootstrap 95% interval of the parameter among the
    best models (:func:`analysis.good_range`); its median is a dashed line and
    the best model a star.

    Args:
        values: the parameter's value per model.
        errors: the error per model.
        path: if given, the PNG to write (atomically).
        name: the parameter's name (x axis label).
        good_range: ``(low, median, high)``; computed with
            :func:`analysis.good_range`'s defaults when not given.
        log_x: draw the x axis on a log scale (all values must be positive).

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        ValueError: for empty, non-finite or mismatched ``values`` and
            ``errors``, a blank ``name``, a ``good_range`` that is not three
            increasing finite numbers, or non-positive values with ``log_x``.
    """
    values, errors = _parameter_and_errors("values", values, errors)
    _check_name(name)
    span = _good_range(values, errors, good_range)
    _check_log_x(f"values ({name})", values, log_x)
    fig = _new_figure((5.0, 3.6))
    _draw_error_vs_parameter(fig.add_subplot(), values, errors, name, span, log_x)
    return _finish(fig, path)


def plot_error_vs_parameters(
    table: Mapping[str, Sequence[float]],
    errors: Sequence[float],
    path: Optional[str] = None,
    names: Optional[Sequence[str]] = None,
    *,
    log_x: Collection[str] = (),
):
    """One :func:`plot_error_vs_parameter` panel per parameter, in a grid.

    Args:
        table: parameter name -> one value per model (the models of ``errors``).
        errors: the error per model.
        path: if given, the PNG to write (atomically).
        names: the parameters to draw, in order; default all of ``table``.
        log_x: names of the parameters to draw on a log x axis (w0, wa, flops).

    Returns:
        The :class:`matplotlib.figure.Figure`, one axes per parameter.

    Raises:
        ValueError: for an empty ``table`` or ``names``, a name not in
            ``table``, or values that :func:`plot_error_vs_parameter` rejects.
    """
    if not isinstance(table, Mapping) or not table:
        raise ValueError("table must be a non-empty mapping of parameter name -> values.")
    names = list(table) if names is None else list(names)
    if not names:
        raise ValueError("names must list at least one parameter of table.")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"names must be parameters of table; {unknown} are not (table has {list(table)}).")
    if isinstance(log_x, str) or any(n not in names for n in log_x):
        raise ValueError(f"log_x must be a collection of names being drawn; got {log_x!r}.")
    columns = {}
    for name in names:
        columns[name] = _parameter_and_errors(f"table[{name!r}]", table[name], errors)[0]
        _check_log_x(f"table[{name!r}]", columns[name], name in log_x)
    errors = analysis.finite_values("errors", errors)
    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    fig = _new_figure((4.0 * ncols, 3.2 * nrows))
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        span = analysis.good_range(columns[name], errors)
        _draw_error_vs_parameter(ax, columns[name], errors, name, span, name in log_x)
    return _finish(fig, path)


def _draw_error_vs_parameter(ax, values, errors, name, span, log_x) -> None:
    low, median, high = span
    ax.axvspan(low, high, color="C1", alpha=0.2, label=f"good range [{low:.4g}, {high:.4g}]")
    ax.axvline(median, color="C1", linestyle="--", linewidth=1, label=f"median {median:.4g}")
    ax.scatter(values, errors, s=8, alpha=0.6, color="C0", label="models")
    best = int(np.argmin(errors))
    best_label = f"best: {values[best]:.4g} ({errors[best]:.2f})"
    ax.plot([values[best]], [errors[best]], "*", markersize=12, color="C3", label=best_label)
    if log_x:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        # Ticks written plainly (20, 50, 2e+08), at 1, 2, 5 x 10^k over at most
        # two decades (widths, slopes), where decades alone give one or two ticks.
        narrow = np.log10(values.max() / values.min()) <= 2
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5) if narrow else (1.0,)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(name)
    ax.set_ylabel("error")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)


def _good_range(values, errors, good_range):
    if good_range is None:
        return analysis.good_range(values, errors)
    try:
        span = tuple(float(v) for v in good_range)
    except (TypeError, ValueError):
        span = ()
    if len(span) != 3 or not all(math.isfinite(v) for v in span) or not span[0] <= span[1] <= span[2]:
        raise ValueError(
            f"good_range must be finite (low, median, high) with low <= median <= high; got {good_range!r}."
        )
    return span


def plot_width_fit(
    block_widths: Sequence[float], fit=None, path: Optional[str] = None, *, title: Optional[str] = None
):
    """Plot a network's per-block widths, and a RegNet fit of them.

    Block index ``j`` on x, width on a log (base 2) y axis.  Given ``fit``,
    also the linear widths ``u_j = w0 + wa*j`` (dashed) and the quantised
    widths they generate (steps), with ``e_fit`` in the legend.

    Args:
        block_widths: the width of each block, in order.
        fit: ``None``, or any object with attributes ``w0``, ``wa``, ``wm``,
            ``depth`` and ``e_fit`` (a ``fitting.RegNetFit``); its quantised
            widths are its ``block_widths`` attribute when it has one, else
            :func:`~keras_regnet.architecture.config.generate_block_widths`.
        path: if given, the PNG to write (atomically).
        title: the axes' title.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        ValueError: for empty, non-finite or non-positive ``block_widths``,
            or a ``fit`` lacking an attribute or with ``w0 <= 0``,
            ``wa < 0``, ``wm <= 1`` or a ``depth`` that is not a positive
            integer.
    """
    widths = analysis.finite_values("block_widths", block_widths)
    if np.any(widths <= 0):
        raise ValueError("block_widths must be positive (widths are drawn on a log axis).")
    fit_widths = None if fit is None else _fit_lines(fit)
    fig = _new_figure((6.0, 4.0))
    ax = fig.add_subplot()
    j = np.arange(widths.size)
    ax.plot(j, widths, "o-", drawstyle="steps-mid", color="C0", label="block widths")
    if fit_widths is not None:
        linear, quantised = fit_widths
        linear_label = f"u_j = w0 + wa*j (w0={fit.w0:g}, wa={fit.wa:.2f})"
        ax.plot(np.arange(linear.size), linear, "--", color="C1", label=linear_label)
        fit_label = f"quantised fit (wm={fit.wm:.3f}, d={fit.depth}, e_fit={fit.e_fit:.4f})"
        ax.plot(np.arange(quantised.size), quantised, drawstyle="steps-mid", color="C3", label=fit_label)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("block index j")
    ax.set_ylabel("width (channels)")
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _finish(fig, path)


def _fit_lines(fit) -> Tuple[np.ndarray, np.ndarray]:
    """The fit's linear widths ``w0 + wa*j`` and its quantised widths, after checking it."""
    missing = [a for a in FIT_ATTRIBUTES if not hasattr(fit, a)]
    if missing:
        raise ValueError(f"fit must have attributes {FIT_ATTRIBUTES}; {type(fit).__name__} lacks {missing}.")
    depth = check_int("fit.depth", fit.depth)
    for attr, ok, allowed in (
        ("w0", lambda v: v > 0, "> 0"),
        ("wa", lambda v: v >= 0, ">= 0"),
        ("wm", lambda v: v > 1, "> 1"),
        ("e_fit", lambda v: True, "finite"),
    ):
        value = getattr(fit, attr)
        number = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
        if not number or not math.isfinite(value) or not ok(value):
            raise ValueError(f"fit.{attr} must be a finite number {allowed}; got fit.{attr}={value!r}.")
    linear = fit.w0 + fit.wa * np.arange(depth, dtype=float)
    quantised = getattr(fit, "block_widths", None)
    if quantised is None:
        quantised = generate_block_widths(depth, fit.w0, fit.wa, fit.wm)
    quantised = analysis.finite_values("fit.block_widths", quantised)
    if np.any(quantised <= 0):
        raise ValueError("fit.block_widths must be positive (widths are drawn on a log axis).")
    return linear, quantised


def _populations(name, populations) -> dict:
    if not isinstance(populations, Mapping) or not populations:
        raise ValueError(f"{name} must be a non-empty mapping of space name -> errors; got {populations!r:.80}.")
    return {key: analysis.finite_values(f"{name}[{key!r}]", errors) for key, errors in populations.items()}


def _parameter_and_errors(values_name, values, errors):
    values, errors = analysis.finite_values(values_name, values), analysis.finite_values("errors", errors)
    analysis.check_same_length(values_name, values, "errors", errors)
    return values, errors



def _check_name(name) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string (the parameter's name); got name={name!r}.")


def _check_log_x(name, values, log_x) -> None:
    if log_x and np.any(values <= 0):
        raise ValueError(f"{name} must be positive to be drawn on a log x axis (log_x).")


def _new_figure(size):
    # A bare Figure (no pyplot): no global state and no display needed.
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=110, layout="constrained")


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig
