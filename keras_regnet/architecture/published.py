"""Our generator and complexity counts against pycls's published table.

:func:`compare_with_published` gives one row per published model: the stage
layout the generator derives from the model's configuration and the flops,
params and activations :func:`~keras_regnet.architecture.complexity.complexity`
counts, next to the numbers pycls published, and whether all of them are
equal.  With ``build=True`` it also builds every Keras model and counts its
trainable parameters.  :func:`format_markdown` renders the rows as the table
``keras-regnet zoo`` prints.  Keras is imported only to build.
"""

from __future__ import annotations

import math
from typing import Dict, List

from keras_regnet.architecture.complexity import complexity
from keras_regnet.architecture.zoo import PublishedModel, published_models


def compare_with_published(build: bool = False, progress: bool = True) -> List[Dict]:
    """One row per published model: our numbers, pycls's, and whether they agree.

    Args:
        build: also build each Keras model (random weights) and count its
            trainable parameters (``keras_params``), which must equal the
            published parameter count too.  Takes minutes for the 24 models.
        progress: with ``build``, show a Keras progress bar.

    Returns:
        A list of dicts with ``name``, ``stage_depths``, ``stage_widths``,
        ``stage_group_widths``, ``flops``, ``params``, ``acts``, ``top1_err``,
        ``matches`` and, with ``build``, ``keras_params``.
    """
    models = list(published_models().values())
    if not build:
        return [_row(published) for published in models]
    import keras

    from keras_regnet.architecture.models import get_model

    bar = keras.utils.Progbar(len(models), unit_name="model") if progress else None
    rows = []
    for i, published in enumerate(models):
        row = _row(published)
        model = get_model(published.name)
        row["keras_params"] = sum(math.prod(w.shape) for w in model.trainable_weights)
        row["matches"] = row["matches"] and row["keras_params"] == published.params
        del model
        keras.backend.clear_session()  # free each model before building the next
        rows.append(row)
        if bar is not None:
            bar.update(i + 1)
    return rows


def _row(published: PublishedModel) -> Dict:
    cfg = published.config
    cx = complexity(cfg)
    return {
        "name": published.name,
        "stage_depths": cfg.stage_depths,
        "stage_widths": cfg.stage_widths,
        "stage_group_widths": cfg.stage_group_widths,
        "flops": cx["flops"],
        "params": cx["params"],
        "acts": cx["acts"],
        "top1_err": published.top1_err,
        "matches": (
            cfg.stage_depths == published.stage_depths
            and cfg.stage_widths == published.stage_widths
            and cfg.stage_group_widths == published.stage_group_widths
            and (cx["flops"], cx["params"], cx["acts"]) == (published.flops, published.params, published.acts)
        ),
    }


def format_markdown(rows: List[Dict]) -> str:
    """The rows of :func:`compare_with_published` as a Markdown table."""
    build = "keras_params" in rows[0]
    head = "| model | stage depths | stage widths | group widths | GFLOPs | params | acts |"
    sep = "|---|---|---|---|---:|---:|---:|"
    if build:
        head += " Keras params |"
        sep += "---:|"
    head += " top-1 err | = pycls |"
    sep += "---:|:---:|"
    lines = [head, sep]
    for r in rows:
        line = (
            f"| {r['name']} | {list(r['stage_depths'])} | {list(r['stage_widths'])} | "
            f"{list(r['stage_group_widths'])} | {r['flops'] / 1e9:.3f} | {r['params']:,} | "
            f"{r['acts']:,} |"
        )
        if build:
            line += f" {r['keras_params']:,} |"
        line += f" {r['top1_err']:.2f} | {'yes' if r['matches'] else 'NO'} |"
        lines.append(line)
    return "\n".join(lines) + "\n"
