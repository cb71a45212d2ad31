"""Per-epoch curves and a summary table of the 100-epoch CIFAR-10 runs (docs/results.md).

Reads the ``log.csv`` of each run, the package's (``keras-regnet train``:
Keras's CSVLogger, 0-based ``epoch``, accuracies in [0, 1]) and pycls's
(``benchmarks/pycls_cifar10_reference.py``: 1-based ``epoch``, errors in %),
and writes a PNG of validation top-1 accuracy and training loss per epoch,
then prints a Markdown table (final and best validation top-1, epochs,
summed epoch wall time when logged).

    python benchmarks/compare_cifar_runs.py --png docs/results_cifar100.png \\
        keras-fp32=runs/results100/keras_float32_seed0 pycls-fp32=runs/results100/pycls_fp32
"""

from __future__ import annotations

import argparse
import csv
import os

from keras_regnet.architecture.plotting import save_figure


def read_run(directory: str) -> dict:
    """``{"epoch": [...], "val_top1": [...], "loss": [...], "epoch_s": [...] or None}`` of one run."""
    with open(os.path.join(directory, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    if rows and "val_top1_err" in rows[0]:  # pycls driver
        return dict(
            epoch=[int(r["epoch"]) for r in rows], val_top1=[1 - float(r["val_top1_err"]) / 100 for r in rows],
            loss=[float(r["loss"]) for r in rows], epoch_s=[float(r["epoch_s"]) for r in rows],
        )
    return dict(
        epoch=[int(r["epoch"]) + 1 for r in rows], val_top1=[float(r["val_accuracy"]) for r in rows],
        loss=[float(r["loss"]) for r in rows], epoch_s=None,
    )


def plot(runs: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top1, loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in runs.items():
        top1.plot(run["epoch"], run["val_top1"], label=f"{name} (final {run['val_top1'][-1]:.3f})")
        loss.plot(run["epoch"], run["loss"], label=name)
    top1.set(xlabel="epoch", ylabel="validation top-1 accuracy", title="Held-out validation (2,000 images)")
    loss.set(xlabel="epoch", ylabel="training loss", title="Training loss (augmented batches)", yscale="log")
    for axis in (top1, loss):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def table(runs: dict) -> str:
    lines = ["| run | epochs | final val top-1 | best val top-1 | summed epoch time |", "|---|---:|---:|---:|---:|"]
    for name, run in runs.items():
        seconds = f"{sum(run['epoch_s']) / 60:.1f} min" if run["epoch_s"] else "see results.json"
        lines.append(f"| {name} | {run['epoch'][-1]} | {run['val_top1'][-1]:.4f} | {max(run['val_top1']):.4f} | {seconds} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="NAME=DIR")
    p.add_argument("--png", required=True)
    args = p.parse_args(argv)
    runs = {name: read_run(directory) for name, directory in (r.split("=", 1) for r in args.runs)}
    plot(runs, args.png)
    print(table(runs))


if __name__ == "__main__":
    main()
