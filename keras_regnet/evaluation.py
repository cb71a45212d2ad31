"""Evaluate RegNets against the published ImageNet errors (pycls's eval protocol).

Images get the model's own eval transform (its
:class:`~keras_regnet.architecture.model_info.ModelInfo`; by default pycls's:
shorter side to 256, bilinear, centre crop 224;
:func:`keras_regnet.data.augment.eval_image`), then top-1 and top-5 error are
counted over the whole split and, for a published model with the published
weights, set beside the numbers the pycls model zoo publishes; for a trained
model, beside the validation error its training run recorded.

Data (:func:`keras_regnet.data.open_eval_source`):
  * a TensorFlow Datasets name (``imagenet2012``: its ``validation`` split;
    ImageNet needs ``manual_dir`` with the downloaded archives; TensorFlow
    backend only);
  * a directory of class subfolders (``DIR/<class>/<image>``, or ``DIR/val/``
    / ``DIR/validation/`` holding them), on every backend.  Folders named by
    WordNet id (``n01440764``) map to those ImageNet labels, any subset of
    them; folders named by the model's class names (a model trained by
    ``keras-regnet train`` knows them) map by name; otherwise there must be
    one folder per model class, in label order when sorted.
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
from keras_regnet.architecture.model_info import ModelInfo, compares_with_published, model_info
from keras_regnet.architecture.models import MIN_INPUT_SIZE
from keras_regnet.architecture.zoo import lookup
from keras_regnet.data import Examples, Source, eval_batches, numpy_batches, open_eval_source
from keras_regnet.data.geometry import eval_scale_size


@dataclasses.dataclass
class EvalData:
    """Batched (image, label) pairs ready for a model, and what they are."""

    dataset: object  # (float32 images, int labels): tf.data.Dataset on TensorFlow, keras.utils.PyDataset otherwise
    num_images: Optional[int]  # None: not known before reading
    description: str


def _is_imagenet_id(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def _directory_labels(root: str, folders: List[str], info: ModelInfo, num_classes: int) -> Dict[str, int]:
    """Each class folder's label in the model's order: by class name where the model knows its names.

    A model with class names (a trained model's, or ImageNet's WordNet ids
    for 1000 classes) maps folders by name, any subset of them; a model
    without them needs one folder per class, in label order when sorted.
    """
    ids = [class_id for class_id, _ in info.labels(num_classes)]
    by_name = info.class_names is not None or (num_classes == 1000 and all(_is_imagenet_id(c) for c in folders))
    if by_name:
        index = {class_id: i for i, class_id in enumerate(ids)}
        unknown = [c for c in folders if c not in index]
        if unknown:
            raise ValueError(
                f"data={root!r}: folders {unknown[:5]} are not among the model's classes "
                f"({', '.join(ids[:10])}{', ...' if len(ids) > 10 else ''})."
            )
        return {c: index[c] for c in folders}
    if len(folders) != num_classes:
        raise ValueError(
            f"data={root!r} has {len(folders)} class folders but the model has {num_classes} classes; name the "
            "folders by ImageNet WordNet id (e.g. n01440764) or give one folder per model class."
        )
    return {c: i for i, c in enumerate(folders)}


def _model_labelled(source: Source, data: str, info: ModelInfo, num_classes: int) -> Examples:
    """The source's split with labels in the model's class order."""
    examples = source.validation
    if examples.tfds_split is not None:  # the dataset's own labels
        if source.num_classes != num_classes:
            raise ValueError(f"data={data!r} has {source.num_classes} classes; the model has {num_classes}.")
        return examples
    label_of = _directory_labels(data, source.class_names, info, num_classes)
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
    *,
    info: Optional[ModelInfo] = None,
) -> EvalData:
    """Open ``data`` (directory or tfds name) for evaluation at ``image_size``.

    ``info``: the model's :class:`~keras_regnet.architecture.model_info.ModelInfo`,
    whose eval transform and class names are used (default: ImageNet's,
    pycls's resize + centre crop).
    """
    check_int("batch_size", batch_size)
    if limit is not None:
        check_int("limit", limit)
    info = info or ModelInfo(image_size=image_size)
    source = open_eval_source(data, split=split, data_dir=data_dir, manual_dir=manual_dir)
    examples = _model_labelled(source, data, info, num_classes)
    if limit is not None:
        examples = examples.take(limit)
    batches = eval_batches(examples, image_size, batch_size, transform=info.eval_transform)
    return EvalData(batches, examples.count, source.description)


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


def _compare_with_published(result: dict, info: ModelInfo, num_classes: int) -> dict:
    """Fill in the published errors and the differences where the published table applies (:func:`compares_with_published`)."""
    if not compares_with_published(info, num_classes):
        return result
    published = lookup(info.architecture)
    result["model"] = published.name
    result.update(published_top1_err=published.top1_err, published_top5_err=published.top5_err)
    result["top1_err_diff"] = result["top1_err"] - published.top1_err
    result["top5_err_diff"] = result["top5_err"] - published.top5_err
    return result


def _info_for_evaluation(net, image_size: Optional[int]) -> ModelInfo:
    info = model_info(net)
    if image_size is None:
        return info
    check_int("image_size", image_size, minimum=MIN_INPUT_SIZE)
    return dataclasses.replace(info, image_size=image_size)


def evaluate(
    model,
    data: str = "imagenet2012",
    weights: Optional[str] = "imagenet",
    batch_size: int = 100,
    image_size: Optional[int] = None,
    split: Optional[str] = None,
    data_dir: Optional[str] = None,
    manual_dir: Optional[str] = None,
    limit: Optional[int] = None,
    verbose: int = 1,
) -> dict:
    """Top-1 / top-5 error of ``model`` on ``data``, with the model's own eval transform.

    The model's :class:`~keras_regnet.architecture.model_info.ModelInfo`
    (saved in its ``.keras`` file) gives the image size, the eval transform
    and the class names that class folders are matched to; models without
    it get ImageNet's (pycls's resize + centre crop at 224).  The published
    errors are set beside the measurement only for a published architecture
    with the published (pycls) ImageNet weights; a trained model's own
    validation error, when its file records it, is reported instead.

    Args:
        model: a published model name (``"RegNetY-800MF"`` or
            ``"RegNetY800MF"``, built with ``weights``), a path to a
            ``.keras`` file, or a ``keras.Model``.
        data: a TensorFlow Datasets name or a directory of class folders.
        weights: weights for a model given by name (see :func:`RegNet`).
        batch_size: images per batch.
        image_size: evaluation size; default the model's (224 for ImageNet).
        split: tfds split (default ``validation``, else ``test``).
        data_dir, manual_dir: TensorFlow Datasets directories.
        limit: evaluate only the first ``limit`` images.
        verbose: 1 shows a progress bar.

    Returns:
        A dict: ``model``, ``weights``, ``data``, ``num_images``,
        ``image_size``, ``eval_transform``, ``top1_err``/``top5_err``
        (percent), the published ``published_top1_err``/``published_top5_err``
        and the differences (measured - published) where the table applies
        (else ``None``), ``training_validation`` (the training run's
        validation errors at the saved epoch, or ``None``), ``seconds`` and
        ``images_per_second``.
    """
    from keras_regnet.architecture.models import model_from_argument

    net, name, weights_text = model_from_argument(model, weights)
    if len(net.output.shape) != 2:
        raise ValueError(f"model must output class scores (batch, classes); its output shape is {net.output.shape}.")
    num_classes = net.output.shape[-1]
    info = _info_for_evaluation(net, image_size)
    eval_data = open_eval_data(data, num_classes, info.image_size, batch_size, split, data_dir, manual_dir, limit, info=info)
    seen, top1_err, top5_err, seconds = _count_errors(net, eval_data, verbose)
    if seen == 0:
        raise ValueError(f"data={data!r} yielded no images to evaluate.")
    result = {
        "model": name,
        "weights": weights_text,
        "data": eval_data.description,
        "num_images": seen,
        "image_size": info.image_size,
        "eval_transform": info.eval_transform,
        "top1_err": top1_err,
        "top5_err": top5_err,
        "published_top1_err": None,
        "published_top5_err": None,
        "top1_err_diff": None,
        "top5_err_diff": None,
        "training_validation": None if info.validation is None else dict(info.validation),
        "seconds": seconds,
        "images_per_second": seen / seconds,
    }
    return _compare_with_published(result, info, num_classes)


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


def _training_cells(r) -> str:
    v = r.get("training_validation") or {}
    epoch = v.get("epoch")
    return f" {_fmt(v.get('top1_err'))} | {_fmt(v.get('top5_err'))} | {epoch if epoch is not None else '–'} |"


def markdown_table(results: Sequence[dict]) -> str:
    """The results as a Markdown table (errors in percent).

    Published models get the published errors and the differences
    (measured - published) beside theirs; trained models the validation
    errors their training run recorded (at the epoch saved).
    """
    published = any(r.get("published_top1_err") is not None for r in results)
    if published or not any(r.get("training_validation") for r in results):
        lines = ["| model | weights " + _ERROR_HEADER, "|---|---|" + _ERROR_RULE]
        lines += [f"| {r['model']} | {r['weights']} |" + _error_cells(r) for r in results]
        return "\n".join(lines) + "\n"
    lines = [
        "| model | weights | images | top-1 err | top-5 err | training val top-1 err | training val top-5 err | epoch |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['weights']} | {r['num_images']:,} | {_fmt(r['top1_err'])} | {_fmt(r['top5_err'])} |"
        + _training_cells(r)
        for r in results
    ]
    return "\n".join(lines) + "\n"


def _transform_text(r) -> str:
    size = r.get("image_size", 224)
    if r.get("eval_transform", "resize_crop") == "center_crop":
        return f"central {size}x{size} at the images' own scale"
    return f"pycls eval transform (shorter side {eval_scale_size(size)}, centre crop {size})"


def write_report(results: Sequence[dict], output_dir: str, stem: str = "evaluation") -> List[str]:
    """Write ``STEM.json`` and ``STEM.md`` (atomically) into ``output_dir``; return their paths."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = write_text(os.path.join(output_dir, f"{stem}.json"), json.dumps(list(results), indent=2) + "\n")
    data = sorted({r["data"] for r in results})
    transforms = sorted({_transform_text(r) for r in results})
    header = f"# Evaluation\n\nData: {', '.join(data)}; {'; '.join(transforms)}.\n\n"
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
        # The published columns always; the differences only where they apply (published weights).
        row = {**r, "published_top1_err": m.top1_err, "published_top5_err": m.top5_err}
        lines.append(f"| {m.name} | {m.flops / 1e9:.2f} | {m.params / 1e6:.1f} |" + _error_cells(row))
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
