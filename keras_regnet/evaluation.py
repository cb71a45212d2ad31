"""Evaluate RegNets against the published ImageNet errors (pycls's eval protocol).

Images get pycls's eval transform (shorter side to 256, bilinear; centre crop
224: ``eval_resize_crop`` of :mod:`keras_regnet.data.transforms_tf` /
:mod:`keras_regnet.data.transforms_numpy`), then top-1 and top-5 error are
counted over the whole split and, for a published model, set beside the
numbers the pycls model zoo publishes.

Data (:func:`keras_regnet.data.open_eval_source`):
  * a TensorFlow Datasets name (``imagenet2012``: its ``validation`` split;
    ImageNet needs ``manual_dir`` with the downloaded archives; TensorFlow
    backend only);
  * a directory of class subfolders (``DIR/<class>/<image>``, or ``DIR/val/``
    / ``DIR/validation/`` holding them), on every backend.  Folders named by
    WordNet id (``n01440764``) map to those ImageNet labels, any subset of
    them; otherwise there must be one folder per model class, in label order
    when sorted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Dict, List, Optional, Sequence

import keras
import numpy as np

from keras_regnet.atomic import write_text
from keras_regnet.architecture.config import check_int
from keras_regnet.data import Examples, Source, eval_batches, numpy_batches, open_eval_source


@dataclasses.dataclass
class EvalData:
    """Batched (image, label) pairs ready for a model, and what they are."""

    dataset: object  # (float32 images, int labels): tf.data.Dataset on TensorFlow, keras.utils.PyDataset otherwise
    num_images: Optional[int]  # None: not known before reading
    description: str


def _is_imagenet_id(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def _directory_labels(root: str, classes: List[str], num_classes: int) -> Dict[str, int]:
    from keras_regnet.architecture.preprocessing import imagenet_classes

    if all(_is_imagenet_id(c) for c in classes) and num_classes == 1000:
        index = {wnid: i for i, (wnid, _) in enumerate(imagenet_classes())}
        unknown = [c for c in classes if c not in index]
        if unknown:
            raise ValueError(f"data={root!r}: folders {unknown[:5]} are not ImageNet-1k WordNet ids.")
        return {c: index[c] for c in classes}
    if len(classes) != num_classes:
        raise ValueError(
            f"data={root!r} has {len(classes)} class folders but the model has {num_classes} classes; name the "
            "folders by ImageNet WordNet id (e.g. n01440764) or give one folder per model class."
        )
    return {c: i for i, c in enumerate(classes)}


def _model_labelled(source: Source, data: str, num_classes: int) -> Examples:
    """The source's split with labels in the model's class order."""
    examples = source.validation
    if examples.tfds_split is not None:  # the dataset's own labels
        if source.num_classes != num_classes:
            raise ValueError(f"data={data!r} has {source.num_classes} classes; the model has {num_classes}.")
        return examples
    label_of = _directory_labels(data, source.class_names, num_classes)
    model_labels = np.array([label_of[c] for c in source.class_names], np.int64)
    return dataclasses.replace(examples, labels=model_labels[examples.labels])


def open_eval_data(
    data: str,
    num_classes: int,
    image_size: int = 224,
    batch_size: int = 100,
    split: Optional[str] = None,
    data_dir: Optional[str] = None,
    manual_dir: Optional[str] = None,
    limit: Optional[int] = None,
) -> EvalData:
    """Open ``data`` (directory or tfds name) for evaluation with pycls's eval transform."""
    check_int("batch_size", batch_size)
    if limit is not None:
        check_int("limit", limit)
    source = open_eval_source(data, split=split, data_dir=data_dir, manual_dir=manual_dir)
    examples = _model_labelled(source, data, num_classes)
    if limit is not None:
        examples = examples.take(limit)
    return EvalData(eval_batches(examples, image_size, batch_size), examples.count, source.description)


def _published(name: str):
    from keras_regnet.architecture.zoo import lookup

    try:
        return lookup(name)
    except ValueError:
        return None


def _count_errors(net, eval_data: EvalData, verbose: int):
    """``(images, top-1 error, top-5 error, seconds)`` of ``net`` over ``eval_data`` (errors in percent)."""
    k = min(5, net.output.shape[-1])
    top1 = top5 = seen = 0
    bar = keras.utils.Progbar(eval_data.num_images, unit_name="image") if verbose else None
    start = time.perf_counter()
    for images, labels in numpy_batches(eval_data.dataset):
        scores = np.asarray(net.predict_on_batch(images))
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top1 += int(np.sum(best[:, 0] == labels))
        top5 += int(np.sum(np.any(best == labels[:, None], axis=1)))
        seen += len(labels)
        if bar is not None:
            bar.update(seen, [("top1_err", 100.0 * (1 - top1 / seen))])
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.update(seen, finalize=True)
    if seen == 0:
        return 0, None, None, seconds
    return seen, 100.0 * (1 - top1 / seen), 100.0 * (1 - top5 / seen), seconds


def _compare_with_published(result: dict, num_classes: int) -> dict:
    """Fill in the published errors and the differences when the model is a published ImageNet model.

    Published: named as one of the 24 models and with ImageNet's 1000 classes
    (a fine-tuned copy keeps the name but not the task).
    """
    published = _published(result["model"]) if num_classes == 1000 else None
    if published is not None:
        result["model"] = published.name
        result.update(published_top1_err=published.top1_err, published_top5_err=published.top5_err)
        result["top1_err_diff"] = result["top1_err"] - published.top1_err
        result["top5_err_diff"] = result["top5_err"] - published.top5_err
    return result


def evaluate(
    model,
    data: str = "imagenet2012",
    weights: Optional[str] = "imagenet",
    batch_size: int = 100,
    image_size: int = 224,
    split: Optional[str] = None,
    data_dir: Optional[str] = None,
    manual_dir: Optional[str] = None,
    limit: Optional[int] = None,
    verbose: int = 1,
) -> dict:
    """Top-1 / top-5 error of ``model`` on ``data``, beside the published numbers.

    Args:
        model: a published model name (``"RegNetY-800MF"`` or
            ``"RegNetY800MF"``, built with ``weights``), a path to a
            ``.keras`` file, or a ``keras.Model``.
        data: a TensorFlow Datasets name or a directory of class folders.
        weights: weights for a model given by name (see :func:`RegNet`).
        batch_size: images per batch.
        image_size: centre-crop size (224 as published).
        split: tfds split (default ``validation``, else ``test``).
        data_dir, manual_dir: TensorFlow Datasets directories.
        limit: evaluate only the first ``limit`` images.
        verbose: 1 shows a progress bar.

    Returns:
        A dict: ``model``, ``weights``, ``data``, ``num_images``,
        ``top1_err``/``top5_err`` (percent), the published
        ``published_top1_err``/``published_top5_err`` and the differences
        (measured - published) when the model is a published one (else
        ``None``), ``seconds`` and ``images_per_second``.
    """
    from keras_regnet.architecture.models import model_from_argument

    net, name, weights_text = model_from_argument(model, weights)
    if len(net.output.shape) != 2:
        raise ValueError(f"model must output class scores (batch, classes); its output shape is {net.output.shape}.")
    eval_data = open_eval_data(data, net.output.shape[-1], image_size, batch_size, split, data_dir, manual_dir, limit)
    seen, top1_err, top5_err, seconds = _count_errors(net, eval_data, verbose)
    if seen == 0:
        raise ValueError(f"data={data!r} yielded no images to evaluate.")
    result = {
        "model": name,
        "weights": weights_text,
        "data": eval_data.description,
        "num_images": seen,
        "image_size": image_size,
        "top1_err": top1_err,
        "top5_err": top5_err,
        "published_top1_err": None,
        "published_top5_err": None,
        "top1_err_diff": None,
        "top5_err_diff": None,
        "seconds": seconds,
        "images_per_second": seen / seconds,
    }
    return _compare_with_published(result, net.output.shape[-1])


def _fmt(value, spec=".2f", signed=False):
    if value is None:
        return "–"
    return format(value, ("+" if signed else "") + spec)


_ERROR_HEADER = "| images | top-1 err | published | diff | top-5 err | published | diff |"
_ERROR_RULE = "---:|---:|---:|---:|---:|---:|---:|"


def _error_cells(r) -> str:
    return (
        f" {r['num_images']:,} | {_fmt(r['top1_err'])} | {_fmt(r['published_top1_err'])} | "
        f"{_fmt(r['top1_err_diff'], signed=True)} | {_fmt(r['top5_err'])} | {_fmt(r['published_top5_err'])} | "
        f"{_fmt(r['top5_err_diff'], signed=True)} |"
    )


def markdown_table(results: Sequence[dict]) -> str:
    """The results as a Markdown table (errors in percent; diff = measured - published)."""
    lines = ["| model | weights " + _ERROR_HEADER, "|---|---|" + _ERROR_RULE]
    lines += [f"| {r['model']} | {r['weights']} |" + _error_cells(r) for r in results]
    return "\n".join(lines) + "\n"


def write_report(results: Sequence[dict], output_dir: str, stem: str = "evaluation") -> List[str]:
    """Write ``STEM.json`` and ``STEM.md`` (atomically) into ``output_dir``; return their paths."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = write_text(os.path.join(output_dir, f"{stem}.json"), json.dumps(list(results), indent=2) + "\n")
    data = sorted({r["data"] for r in results})
    header = f"# Evaluation\n\nData: {', '.join(data)}; pycls eval transform (shorter side 256, centre crop 224).\n\n"
    md_path = write_text(os.path.join(output_dir, f"{stem}.md"), header + markdown_table(results))
    return [json_path, md_path]


def write_zoo_page(results: Sequence[dict], path: str, command: str) -> str:
    """The model-zoo page (``docs/model_zoo.md``): measured vs published for the published models."""
    from keras_regnet.architecture.zoo import lookup

    lines = [
        "# Model zoo: measured ImageNet error vs the pycls model zoo",
        "",
        f"Measured with `{command}` (pycls eval transform: shorter side 256, centre crop 224;",
        "errors in percent, diff = measured - published).",
        "",
        "| model | GFLOPs | params (M) " + _ERROR_HEADER,
        "|---|---:|---:|" + _ERROR_RULE,
    ]
    for r in results:
        m = lookup(r["model"])
        lines.append(f"| {r['model']} | {m.flops / 1e9:.2f} | {m.params / 1e6:.1f} |" + _error_cells(r))
    return write_text(path, "\n".join(lines) + "\n")


def evaluate_all(output_dir: str, models: Optional[Sequence[str]] = None, zoo_page: Optional[str] = None, command: str = "", **kwargs) -> List[dict]:
    """Evaluate the published models (default: all 24) one after another.

    The report in ``output_dir`` is rewritten after every model, so an
    interrupted run keeps what it measured.  ``zoo_page``: also write the
    model-zoo Markdown page there.  ``kwargs`` go to :func:`evaluate`.
    """
    from keras_regnet.architecture.zoo import list_models, lookup

    names = [lookup(m).name for m in (models or list_models())]
    results = []
    for i, name in enumerate(names, 1):
        if kwargs.get("verbose", 1):
            print(f"[{i}/{len(names)}] {name}")
        results.append(evaluate(name, **kwargs))
        keras.backend.clear_session()  # 24 models would otherwise pile up in memory
        write_report(results, output_dir)
        if zoo_page:
            write_zoo_page(results, zoo_page, command)
    return results
