"""The 24 published RegNetX/RegNetY models (pycls model zoo) as data.

``architecture/regnet_zoo.json`` is carried over from pycls (configs/dds_baselines,
MODEL_ZOO.md, dev/model_complexity.json, dev/model_error.json): the generator
parameters plus the published stage layout, complexity, ImageNet error and
training batch size / learning rate of every model.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
from importlib import resources
from typing import Dict, Tuple

from keras_regnet.architecture.config import RegNetConfig


@dataclasses.dataclass(frozen=True)
class PublishedModel:
    """A row of the pycls model zoo."""

    name: str  # the paper's name, e.g. "RegNetY-1.6GF"
    config: RegNetConfig
    flops: int  # multiply-adds at 224x224
    params: int
    acts: int
    top1_err: float
    top5_err: float
    train_batch_size: int
    base_lr: float
    url: str
    stage_depths: Tuple[int, ...]
    stage_widths: Tuple[int, ...]
    stage_group_widths: Tuple[int, ...]

    @property
    def function_name(self) -> str:
        """Python name of the builder, e.g. ``RegNetY1_6GF``."""
        return function_name(self.name)


def function_name(paper_name: str) -> str:
    """``"RegNetY-1.6GF"`` -> ``"RegNetY1_6GF"``."""
    return paper_name.replace("-", "").replace(".", "_")


def _normalise(name: str) -> str:
    # "RegNetY-1.6GF", "RegNetY1_6GF", "regnety_1.6gf" all map to "regnety1_6gf";
    # the decimal point must survive ("1.6GF" is not "16GF").
    key = re.sub(r"[\s-]", "", name.lower().replace(".", "_"))
    return re.sub(r"^regnet([xy])_", r"regnet\1", key)


# JSON key (pycls's names) -> our field name.
_CONFIG_KEYS = {
    "depth": "depth",
    "w0": "w0",
    "wa": "wa",
    "wm": "wm",
    "group_w": "group_width",
    "bot_mul": "bottleneck_ratio",
    "se_ratio": "se_ratio",
    "stem_w": "stem_width",
}
_MODEL_KEYS = {
    "name": "name",
    "flops": "flops",
    "params": "params",
    "acts": "acts",
    "top1_err_exact": "top1_err",
    "top5_err_exact": "top5_err",
    "train_batch_size": "train_batch_size",
    "base_lr": "base_lr",
    "url": "url",
}
_STAGE_KEYS = {"stage_depths": "stage_depths", "stage_widths": "stage_widths", "stage_groups": "stage_group_widths"}


@functools.lru_cache(maxsize=None)
def published_models() -> Dict[str, PublishedModel]:
    """All published models keyed by the paper's name, in zoo order."""
    text = resources.files("keras_regnet.architecture").joinpath("regnet_zoo.json").read_text()
    rows = json.loads(text)["models"]
    models = {}
    for row in rows:
        cfg = RegNetConfig(**{field: row[key] for key, field in _CONFIG_KEYS.items()})
        fields = {field: row[key] for key, field in _MODEL_KEYS.items()}
        fields.update({field: tuple(row[key]) for key, field in _STAGE_KEYS.items()})
        models[row["name"]] = PublishedModel(config=cfg, **fields)
    return models


def list_models() -> list:
    """The paper's names of the 24 published models, RegNetX first, by size."""
    return list(published_models())


def lookup(name: str) -> PublishedModel:
    """Find a published model by the paper's name or the builder's name.

    Matching ignores case and punctuation, so ``"RegNetY-1.6GF"``,
    ``"RegNetY1_6GF"`` and ``"regnety_1.6gf"`` are the same model.

    Raises:
        ValueError: unknown name; the message suggests the closest ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a model name string; got name={name!r}.")
    by_key = {_normalise(m.name): m for m in published_models().values()}
    model = by_key.get(_normalise(name))
    if model is not None:
        return model
    candidates = list(published_models()) + [m.function_name for m in published_models().values()]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown RegNet model name={name!r}.{hint} "
        f"Known models: {', '.join(list_models())} "
        "(builder names such as 'RegNetY800MF' work too)."
    )

