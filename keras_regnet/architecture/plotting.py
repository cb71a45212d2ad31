"""Pictures of the design space: how the generator turns (w0, wa, wm) into stages."""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from keras_regnet.atomic import atomic_path
from keras_regnet.architecture.config import RegNetConfig
from keras_regnet.architecture.zoo import lookup


def plot_block_widths(models: Sequence[Union[str, RegNetConfig]], path: str) -> str:
    """Plot per-block widths of one or more RegNets and save a PNG.

    For each model: the continuous widths ``u_j = w0 + wa*j`` (dashed), the
    quantised widths ``w_j`` (steps) and the final stage widths after the
    group-width adjustment (dots at each stage's first block).

    Args:
        models: published names and/or :class:`RegNetConfig` objects.
        path: output PNG path (written atomically).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not models:
        raise ValueError("models must name at least one model or config.")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for i, item in enumerate(models):
        label, cfg = (item, lookup(item).config) if isinstance(item, str) else (f"custom {i + 1}", item)
        color = f"C{i % 10}"
        j = np.arange(cfg.depth + 1)  # one past the last block closes the last step
        ax.plot(j, cfg.w0 + cfg.wa * j, "--", color=color, alpha=0.6)
        ax.step(j, cfg.block_widths + cfg.block_widths[-1:], where="post", color=color, label=label)
        starts = np.cumsum((0,) + cfg.stage_depths[:-1])
        ax.plot(starts, cfg.stage_widths, "o", color=color)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("block index j")
    ax.set_ylabel("width (channels)")
    ax.set_title("RegNet widths: u_j = w0 + wa*j (dashed), quantised w_j (steps), stages (dots)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str) -> str:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
