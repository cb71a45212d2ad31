"""Evaluate RegNets against the published ImageNet errors (pycls's eval protocol).

Images get pycls's eval transform (shorter side to 256, bilinear; centre crop
224: :func:`keras_regnet.input_pipeline.eval_resize_crop`), then top-1 and
top-5 error are counted over the whole split and set beside the numbers the
pycls model zoo publishes.

Data:
  * a TensorFlow Datasets name (``imagenet2012``: its ``validation`` split;
    ImageNet needs ``manual_dir`` with the downloaded archives);
  * a directory of class subfolders (``DIR/<class>/<image>``, or ``DIR/val/``
    / ``DIR/validation/`` holding them).  Folders named by WordNet id
    (``n01440764``) map to those ImageNet labels, any subset of them;
    otherwise there must be one folder per model class, in label order when
    sorted.
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


@dataclasses.dataclass
class EvalData:
    """Batched (image, label) pairs ready for a model, and what they are."""

    dataset: object  # tf.data.Dataset of (float32 images, int labels)
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
    from keras_regnet.data import tf_pipeline as ip

    if not isinstance(data, str) or not data:
        raise ValueError(f"data must be a TensorFlow Datasets name or a directory; got data={data!r}.")
    check_int("batch_size", batch_size)
    if limit is not None:
        check_int("limit", limit)
    if os.path.isdir(data):
        root = next((os.path.join(data, s) for s in ("val", "validation") if os.path.isdir(os.path.join(data, s))), data)
        classes = ip.subfolders(root)
        if not classes:
            raise ValueError(f"data={data!r} has no class subfolders (expected DIR/<class>/<image>).")
        labels_of = _directory_labels(data, classes, num_classes)
        files, labels = ip.list_class_folder(root, classes)
        if not files:
            raise ValueError(f"data={data!r} contains no images with extensions {ip.IMAGE_EXTENSIONS}.")
        labels = [labels_of[classes[i]] for i in labels]
        dataset, num, description = ip.decode_files(files, labels), len(files), f"{root} ({len(classes)} classes)"
    else:
        builder = ip.prepare_tfds(data, data_dir, manual_dir)
        split = split or ip.validation_split_name(builder)
        known = builder.info.splits  # empty when TFDS has no split metadata (e.g. mock data)
        if known and split not in known:
            raise ValueError(f"split must be one of {sorted(builder.info.splits)} for data={data!r}; got split={split!r}.")
        if builder.info.features["label"].num_classes != num_classes:
            raise ValueError(
                f"data={data!r} has {builder.info.features['label'].num_classes} classes; the model has {num_classes}."
            )
        dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        num, description = (known[split].num_examples if known else None), f"{data}:{split}"
    if limit is not None:
        dataset, num = dataset.take(limit), (min(num, limit) if num is not None else None)
    dataset = dataset.map(
        lambda image, label: (ip.eval_resize_crop(image, image_size), label), num_parallel_calls=ip.AUTOTUNE
    )
    return EvalData(dataset.batch(batch_size).prefetch(ip.AUTOTUNE), num, description)


def _published(name: str):
    from keras_regnet.architecture.zoo import lookup

    try:
        return lookup(name)
    except ValueError:
        return None


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
    num_classes = net.output.shape[-1]
    if len(net.output.shape) != 2:
        raise ValueError(f"model must output class scores (batch, classes); its output shape is {net.output.shape}.")
    eval_data = open_eval_data(data, num_classes, image_size, batch_size, split, data_dir, manual_dir, limit)
    k = min(5, num_classes)
    top1 = top5 = seen = 0
    bar = keras.utils.Progbar(eval_data.num_images, unit_name="image") if verbose else None
    start = time.perf_counter()
    for images, labels in eval_data.dataset.as_numpy_iterator():
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
        raise ValueError(f"data={data!r} yielded no images to evaluate.")
    result = {
        "model": name,
        "weights": weights_text,
        "data": eval_data.description,
        "num_images": seen,
        "image_size": image_size,
        "top1_err": 100.0 * (1 - top1 / seen),
        "top5_err": 100.0 * (1 - top5 / seen),
        "published_top1_err": None,
        "published_top5_err": None,
        "top1_err_diff": None,
        "top5_err_diff": None,
        "seconds": seconds,
        "images_per_second": seen / seconds,
    }
    published = _published(name)
    if published is not None:
        result["model"] = published.name
        result.update(published_top1_err=published.top1_err, published_top5_err=published.top5_err)
        result["top1_err_diff"] = result["top1_err"] - published.top1_err
        result["top5_err_diff"] = result["top5_err"] - published.top5_err
    return result


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
