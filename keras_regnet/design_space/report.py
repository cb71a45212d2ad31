"""``analyze_sweeps``: compare the error distributions of sweeps and write plots and a summary.

Reads sweep results files (:mod:`keras_regnet.design_space.sweep`), one per
design space, and writes into a folder:

* ``edf.png``: the error EDFs (n, min and mean in the legend; the KS
  statistic of the first two), and ``edf_normalized.png`` with
  complexity-normalised EDFs when asked;
* ``<space>_parameters.png``: error against each parameter of the space,
  with its bootstrap good range;
* ``summary.json`` and ``summary.md``: per space n, min / median / mean
  error and expected best-of-k; KS statistics of every pair; good ranges.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from keras_regnet.architecture.config import check_int
from keras_regnet.atomic import write_text
from keras_regnet.design_space.analysis import expected_best_of_k, good_range, ks_statistic
from keras_regnet.design_space.sweep import completed, config_from_record, load_results

REGNET_PARAMETERS = ("depth", "w0", "wa", "wm", "group_width")
BEST_OF = (1, 2, 4, 8, 16, 32, 64, 128)


def parameter_table(trials: List[dict]) -> Dict[str, np.ndarray]:
    """The parameters of each trial's network, for error-vs-parameter plots and good ranges.

    RegNets: the generator's ``depth, w0, wa, wm, group_width``.  AnyNets:
    total depth, first and last stage widths, the first stage's bottleneck
    ratio and group width.  Both: flops.
    """
    configs = [config_from_record(t["config"]) for t in trials]
    table: Dict[str, list] = {}
    for cfg, trial in zip(configs, trials):
        if hasattr(cfg, "w0"):
            row = {name: getattr(cfg, name) for name in REGNET_PARAMETERS}
        else:
            row = {"depth": sum(cfg.depths), "w_first": cfg.widths[0], "w_last": cfg.widths[-1],
                   "bottleneck_ratio": cfg.bottleneck_ratios[0], "group_width": cfg.group_widths[0]}
        row["flops"] = trial["complexity"]["flops"]
        for name, value in row.items():
            table.setdefault(name, []).append(value)
    return {name: np.asarray(values, float) for name, values in table.items()}


def analyze_sweeps(paths: Sequence[str], out_dir: str, *, normalize_bins: Optional[int] = None) -> dict:
    """Analyse sweep results files (one per space) into plots and a summary in ``out_dir``.

    Args:
        paths: sweep results files; each must have at least 2 finished trials.
        out_dir: the folder for the plots and the summary (created).
        normalize_bins: also plot complexity-normalised EDFs over this many
            flops bins.

    Returns:
        The summary (also ``summary.json``), with its Markdown in ``"markdown"``.

    Raises:
        ValueError: no paths, a space given twice, or a sweep with fewer
            than 2 finished trials.
    """
    from keras_regnet.design_space.plots import plot_edfs, plot_error_vs_parameters

    if isinstance(paths, str) or not paths:
        raise ValueError(f"paths must be a non-empty list of sweep results files; got paths={paths!r}.")
    if normalize_bins is not None:
        check_int("normalize_bins", normalize_bins)
    diverged: Dict[str, int] = {}
    populations = _populations(paths, diverged)
    os.makedirs(out_dir, exist_ok=True)
    errors = {space: np.array([t["error"] for t in trials]) for space, trials in populations.items()}
    flops = {space: np.array([t["complexity"]["flops"] for t in trials], float) for space, trials in populations.items()}
    plot_edfs(errors, os.path.join(out_dir, "edf.png"), title="error EDFs")
    if normalize_bins:
        plot_edfs(errors, os.path.join(out_dir, "edf_normalized.png"), complexity=flops, bins=normalize_bins,
                  title="complexity-normalised error EDFs")
    spaces = {}
    for space, trials in populations.items():
        table = parameter_table(trials)
        plot_error_vs_parameters(table, errors[space], os.path.join(out_dir, f"{space}_parameters.png"),
                                 log_x={"w0", "wa", "flops", "w_first", "w_last"} & set(table))
        spaces[space] = {**_space_summary(trials, errors[space], table), "diverged": diverged[space]}
    ks = {f"{a} vs {b}": ks_statistic(errors[a], errors[b]) for a, b in itertools.combinations(errors, 2)}
    summary = {"sweeps": list(paths), "spaces": spaces, "ks": ks}
    summary["markdown"] = summary_markdown(summary)
    write_text(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=1))
    write_text(os.path.join(out_dir, "summary.md"), summary["markdown"])
    return summary


def _populations(paths, diverged: Dict[str, int]) -> Dict[str, List[dict]]:
    """The finished trials of each sweep, by space; ``diverged`` gets each space's count of diverged trials."""
    populations = {}
    for path in paths:
        results = load_results(path)
        space = results["spec"]["space"]
        if space in populations:
            raise ValueError(f"two sweeps of {space} given ({path}); give one results file per space.")
        trials = completed(results)
        diverged[space] = sum(t.get("status") == "diverged" for t in results["trials"])
        if len(trials) < 2:
            raise ValueError(f"{path} has {len(trials)} finished trial(s); an EDF needs at least 2.")
        populations[space] = trials
    return populations


def _space_summary(trials, errors, table) -> dict:
    ks = [k for k in BEST_OF if k <= len(errors)]
    return {
        "n": len(trials),
        "min_error": float(errors.min()),
        "median_error": float(np.median(errors)),
        "mean_error": float(errors.mean()),
        "expected_best_of_k": dict(zip(map(str, ks), map(float, expected_best_of_k(errors, ks)))),
        "good_ranges": {name: good_range(values, errors) for name, values in table.items()},
        "wall_s": float(sum(t["wall_s"] for t in trials)),
    }


def summary_markdown(summary: dict) -> str:
    """The summary as Markdown tables."""
    lines = ["| space | n | diverged | min error (%) | median | mean | trial time (s, total) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for space, s in summary["spaces"].items():
        lines.append(f"| {space} | {s['n']} | {s['diverged']} | {s['min_error']:.2f} | {s['median_error']:.2f} | "
                     f"{s['mean_error']:.2f} | {s['wall_s']:.0f} |")
    lines += ["", "| spaces | KS statistic |", "|---|---:|"]
    lines += [f"| {pair} | {value:.3f} |" for pair, value in summary["ks"].items()]
    lines += ["", "| space | parameter | good range (2.5%, 50%, 97.5%) |", "|---|---|---|"]
    for space, s in summary["spaces"].items():
        for name, (low, mid, high) in s["good_ranges"].items():
            lines.append(f"| {space} | {name} | {low:.4g}, {mid:.4g}, {high:.4g} |")
    return "\n".join(lines) + "\n"
