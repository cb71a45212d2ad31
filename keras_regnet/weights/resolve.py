"""The ``weights`` argument of the model builders, resolved in one place.

``weights`` may be:

* ``None``: random initialisation (as pycls).
* ``"imagenet"``: the official pycls 100-epoch checkpoint of a published
  model, downloaded once (progress bar, atomic write), converted, and cached
  as Keras weights under ``$KERAS_HOME/models/keras_regnet`` so later calls
  are offline and fast.  ``"imagenet:pycls"`` is the same.
* ``"imagenet:torchvision-v1"`` / ``"imagenet:torchvision-v2"``:
  torchvision's IMAGENET1K_V1/V2 weights, for the 11 published models whose
  torchvision architecture is identical to pycls's.
* ``"imagenet:tf-keras"``: tf-keras's ``keras.applications`` RegNet
  weights (same widths as pycls; trained with TensorFlow 'same' padding and
  inputs only rescaled to [0, 1], so the model is built that way).
* a path to a Keras ``.weights.h5`` file, a pycls checkpoint (``.pyth``; zip
  or legacy PyTorch format) or a tf-keras ``.h5`` file, recognised by
  content, not by extension.

Sources and checksums are in ``weights/manifest.json``.  A source's
*variant* (padding and preprocessing) decides how the model is built.

Every file is read as untrusted (see docs/weights.md, "Threat model"): a
file given as ``weights=`` is read and checked before the model is built,
and anything wrong with it raises :class:`~keras_regnet.errors.InvalidFileError`
naming the file.  Downloads are checked against the published SHA-256 where
one exists; where none does, the hash recorded at the first download
(``<file>.sha256`` beside it, trust on first use) is checked on every later
use, and converted cache entries carry the hash of the file they came from.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
from importlib import resources
from typing import Optional

import h5py
import numpy as np

from keras_regnet.weights import download
from keras_regnet.weights import torch_checkpoint
from keras_regnet.atomic import atomic_path, write_text
from keras_regnet.weights.convert import naming_of, set_tf_keras_weights, set_torch_state
from keras_regnet.errors import InvalidFileError, reading

IMAGENET = "imagenet"
DEFAULT_SOURCE = "pycls"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Attribute of our .weights.h5 files naming the source variant they need.
VARIANT_ATTR = "keras_regnet_variant"
# Attribute of converted cache entries: SHA-256 of the file they were converted from.
SOURCE_SHA256_ATTR = "keras_regnet_source_sha256"


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a weights source's model was built: padding and input preprocessing."""

    padding: str = "symmetric"  # layers.PADDING_STYLES
    preprocessing: str = "imagenet_mean_std"  # preprocessing.PREPROCESSING_STYLES


VARIANTS = {
    "pycls": Variant("symmetric", "imagenet_mean_std"),
    "torchvision-v1": Variant("symmetric", "imagenet_mean_std"),
    "torchvision-v2": Variant("symmetric", "imagenet_mean_std"),
    "tf-keras": Variant("same", "rescale_0_1"),
}


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """A validated ``weights`` argument."""

    kind: str  # "imagenet" or "file"
    source: str = DEFAULT_SOURCE  # where the weights come from (decides the variant)
    path: Optional[str] = None  # for "file"
    file_format: Optional[str] = None  # for "file": detect_format(path)
    model_name: Optional[str] = None  # paper name of the published model, if any
    # for a "torch" file: its state dict, read and checked before the model is built
    state: Optional[dict] = dataclasses.field(default=None, compare=False, repr=False)


def variant_of(spec: Optional[WeightsSpec]) -> Variant:
    """The build variant a ``weights`` argument needs (pycls's for ``None``)."""
    return VARIANTS[spec.source if spec is not None else DEFAULT_SOURCE]


@functools.lru_cache(maxsize=None)
def manifest() -> dict:
    """Weight sources per published model (URL, SHA-256, accuracy, license, converter)."""
    text = resources.files("keras_regnet.weights").joinpath("manifest.json").read_text()
    return json.loads(text)["models"]


def parse_weights_argument(weights, config, include_top: bool, classes: int) -> Optional[WeightsSpec]:
    """Validate ``weights`` before any model is built; ``None`` for random init."""
    from keras_regnet.architecture.zoo import published_models

    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "weights must be None, 'imagenet' (or 'imagenet:SOURCE') or the path to a "
            f"weights file; got weights={weights!r}."
        )
    weights = os.fspath(weights)
    if weights == IMAGENET or weights.startswith(IMAGENET + ":"):
        source = weights.partition(":")[2] or DEFAULT_SOURCE
        known = sorted(VARIANTS)
        if source not in known:
            raise ValueError(
                f"Unknown weights source in weights={weights!r}; known sources: "
                f"{', '.join(repr(IMAGENET + ':' + s) for s in known)}."
            )
        # The stem's stride (2, or 1 for small images) has no weights: the checkpoint fits either.
        published = next((p for p in published_models().values() if p.config == dataclasses.replace(config, stem_stride=2)), None)
        if published is None:
            raise ValueError(
                f"weights={weights!r} exists only for the 24 published models; this config is not "
                "one of them. Use weights=None or a weights file."
            )
        entry = manifest()[published.name].get(source)
        if entry is None or "incompatible" in entry:
            offered = [n for n, e in manifest().items() if source in e and "incompatible" not in e[source]]
            why = entry["incompatible"] if entry else f"{source} has no {published.name}"
            raise ValueError(
                f"weights={weights!r} cannot be used for {published.name}: {why}. "
                f"{source} weights fit: {', '.join(offered)}."
            )
        if include_top and classes != 1000:
            raise ValueError(
                f"weights={weights!r} with include_top=True has a 1000-class ImageNet classifier; "
                f"got classes={classes}. Use include_top=False and add your own head."
            )
        return WeightsSpec(IMAGENET, source=source, model_name=published.name)
    if not os.path.isfile(weights):
        raise ValueError(
            "weights must be None, 'imagenet' (or 'imagenet:SOURCE') or the path to an existing "
            f"weights file; no file at weights={weights!r}."
        )
    fmt = detect_format(weights)
    state = read_torch_state(weights) if fmt == "torch" else None
    return WeightsSpec("file", source=file_source(weights, fmt), path=weights, file_format=fmt, state=state)


def file_source(path: str, fmt: str) -> str:
    """The weights source whose build variant a weights file needs, from its content.

    ``fmt`` is the file's :func:`detect_format`. A tf-keras ``.h5`` needs
    ``"tf-keras"`` ('same' padding, inputs rescaled to [0, 1]); a PyTorch
    checkpoint ``"pycls"`` (torchvision's models are built the same way); a
    Keras ``.weights.h5`` the source recorded in it by
    :func:`save_weights_atomic` (``"pycls"`` when none is). The result is a
    key of :data:`VARIANTS`; ``keras-regnet convert`` records it in the file
    it writes so that loading that file builds the same variant.

    Raises:
        InvalidFileError: a ``.weights.h5`` names a variant this version does not know.
    """
    if fmt == "tf-keras-h5":
        return "tf-keras"
    if fmt == "keras":
        with reading(path):
            with h5py.File(path, "r") as f:
                source = f.attrs.get(VARIANT_ATTR, DEFAULT_SOURCE)
        source = source.decode() if isinstance(source, bytes) else str(source)
        if source not in VARIANTS:
            raise InvalidFileError(path, f"names an unknown variant {source!r} (known: {', '.join(sorted(VARIANTS))}).")
        return source
    return "pycls"


def read_torch_state(path: str) -> dict:
    """The state dict of a PyTorch checkpoint, read safely and checked: names to float arrays."""
    checkpoint = torch_checkpoint.load(path)
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise InvalidFileError(path, "is a PyTorch file but holds no state dict.")
    for key, value in state.items():
        if not isinstance(key, str):
            raise InvalidFileError(path, f"has a state-dict key {key!r} that is not a string.")
        if not isinstance(value, np.ndarray):
            raise InvalidFileError(path, f"parameter {key!r} is a {type(value).__name__}, not a tensor.")
        if value.dtype.kind != "f" and not key.endswith("num_batches_tracked"):
            raise InvalidFileError(path, f"parameter {key!r} has dtype {value.dtype}; RegNet parameters are floating point.")
    if naming_of(state) is None:
        raise InvalidFileError(
            path, f"is a PyTorch checkpoint but not a pycls or torchvision RegNet state dict (first key {next(iter(state))!r})."
        )
    return state


def load(model, spec: WeightsSpec, progress: bool = True) -> None:
    """Load the weights ``spec`` describes into ``model``."""
    if spec.kind == "file":
        load_file(model, spec.path, spec.file_format, state=spec.state)
        return
    include_top = _has_top(model)
    entry = manifest()[spec.model_name][spec.source]
    from keras_regnet.architecture.zoo import function_name

    # tf-keras publishes separate files without the classifier.
    suffix = "" if include_top or "url_notop" not in entry else "_notop"
    url, sha256, prefix = download.mirrored_url(entry["url" + suffix]), entry["sha256" + suffix], entry.get("sha256_prefix")
    raw = os.path.join(download.cache_dir(), os.path.basename(url))
    trusted = sha256 or recorded_sha256(raw)
    cached = os.path.join(
        download.cache_dir(),
        f"{function_name(spec.model_name)}_{spec.source}{'' if include_top else '_notop'}.weights.h5",
    )
    if os.path.isfile(cached):
        converted_from = _converted_from(cached)
        if converted_from and (trusted is None or converted_from == trusted):
            load_file(model, cached)
            return
        # Converted from another file than the one trusted now (or by an older version): convert again.
    if os.path.isfile(raw):
        digest = verify_cached_download(raw, url, sha256, prefix)
        load_file(model, raw)
        if trusted is None:
            record_sha256(raw, digest)
    else:
        with atomic_path(raw, suffix=".part") as tmp:
            # A re-download must match the hash recorded at the first one, if any.
            download.fetch(url, tmp, sha256=trusted, sha256_prefix=prefix, progress=progress, manual_path=raw)
            digest = download.sha256_of(tmp)
            try:
                load_file(model, tmp)  # a file that does not load never becomes a cache entry
            except InvalidFileError as e:
                raise type(e)(url, f"the downloaded file was refused and not kept: {e.reason}") from None
        if trusted is None:
            record_sha256(raw, digest)
    save_weights_atomic(model, cached, source=spec.source, source_sha256=digest)


def classifier_classes(spec: Optional[WeightsSpec]) -> Optional[int]:
    """How many classes the classifier of the weights ``spec`` names has (``None``: no classifier, or no weights).

    A RegNet's only two-dimensional weight is its classifier's: ``(classes,
    features)`` in PyTorch files, ``(features, classes)`` in Keras ones.
    """
    if spec is None:
        return None
    if spec.kind == IMAGENET:
        return 1000
    if spec.state is not None:
        heads = [a.shape[0] for a in spec.state.values() if getattr(a, "ndim", 0) == 2]
        return heads[0] if len(heads) == 1 else None
    shapes = []
    with reading(spec.path), h5py.File(spec.path, "r") as f:
        f.visititems(lambda _, obj: shapes.append(obj.shape) if isinstance(obj, h5py.Dataset) and obj.ndim == 2 else None)
    return shapes[0][1] if len(shapes) == 1 else None


def classifier_class_ids(spec: Optional[WeightsSpec]) -> Optional[list]:
    """The classifier's class ids where known: ImageNet's WordNet ids for ``imagenet`` weights, else ``None``."""
    if spec is not None and spec.kind == IMAGENET:
        from keras_regnet.architecture.preprocessing import imagenet_classes

        return [wnid for wnid, _ in imagenet_classes()]
    return None


def recorded_sha256(path: str) -> Optional[str]:
    """The SHA-256 recorded beside ``path`` at its first download (``<path>.sha256``), if any."""
    record = path + ".sha256"
    if not os.path.isfile(record):
        return None
    with open(record) as f:
        digest = f.read(200).split(" ")[0].strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InvalidFileError(record, "is not a SHA-256 record; delete it together with the file it describes.")
    return digest


def record_sha256(path: str, digest: str) -> None:
    """Trust on first use: keep the hash of a download that has no published one (``sha256sum -c`` format)."""
    write_text(path + ".sha256", f"{digest}  {os.path.basename(path)}\n")


def verify_cached_download(raw: str, url: str, sha256: Optional[str], prefix: Optional[str]) -> str:
    """Check a downloaded (or hand-placed) file before use; its SHA-256.

    Against the published hash where there is one, else against the hash
    recorded at its first use (the caller records it once the file has loaded).
    """
    digest = download.sha256_of(raw)
    problem = download.checksum_problem(digest, sha256, prefix)
    if problem:
        raise InvalidFileError(
            raw, f"does not match the published checksum of {url} ({problem}); delete it and call again to re-download."
        )
    if not sha256:
        recorded = recorded_sha256(raw)
        if recorded is not None and recorded != digest:
            raise InvalidFileError(
                raw,
                f"has SHA-256 {digest}, but {recorded} was recorded when it was first downloaded (trust on first "
                f"use; {url} publishes no checksum): it changed since. Delete it and {raw}.sha256 to download again.",
            )
    return digest


def _converted_from(cached: str) -> Optional[str]:
    with reading(cached):
        with h5py.File(cached, "r") as f:
            value = f.attrs.get(SOURCE_SHA256_ATTR)
    return value.decode() if isinstance(value, bytes) else (str(value) if value is not None else None)


def save_weights_atomic(model, path: str, source: str = DEFAULT_SOURCE, source_sha256: Optional[str] = None) -> str:
    """``model.save_weights`` through a temporary file renamed into place.

    ``source`` is recorded in the file so that ``weights=path`` later builds
    the variant (padding, preprocessing) these weights need;
    ``source_sha256``, the hash of the file the weights were converted from.
    """
    nbytes = sum(math.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights)
    with atomic_path(path, suffix=".weights.h5", nbytes=nbytes) as tmp:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as f:
            f.attrs[VARIANT_ATTR] = source
            if source_sha256:
                f.attrs[SOURCE_SHA256_ATTR] = source_sha256
    return path


def detect_format(path: str) -> str:
    """The format of a weights file, from its content (never from its extension).

    The one place the package decides what a weights file is: ``weights=PATH``,
    :func:`load_file` and ``keras-regnet convert`` all use it. Returns

    * ``"keras"``: a Keras 3 ``.weights.h5`` (HDF5 with a ``layers`` group);
    * ``"tf-keras-h5"``: a Keras 2 / tf-keras ``.h5`` (HDF5 with
      ``layer_names`` or ``model_weights``);
    * ``"torch"``: a PyTorch checkpoint, zip or legacy format (recognised by
      :func:`keras_regnet.weights.torch_checkpoint.sniff`; nothing is unpickled).

    Raises:
        InvalidFileError: the file cannot be read, or is none of these.
    """
    with reading(path):
        with open(path, "rb") as f:
            head = f.read(torch_checkpoint.HEADER_BYTES)
        if head[:8] == HDF5_SIGNATURE:
            with h5py.File(path, "r") as f:
                if "layers" in f:
                    return "keras"
                if "layer_names" in f.attrs or "model_weights" in f:
                    return "tf-keras-h5"
            raise InvalidFileError(path, "is an HDF5 file but not a Keras weights file.")
    if torch_checkpoint.sniff(head):
        return "torch"
    raise InvalidFileError(
        path,
        "is not a recognised weights file: expected a Keras '.weights.h5' file, a pycls or torchvision PyTorch "
        "checkpoint ('.pyth', '.pth') or a tf-keras '.h5' file.",
    )


def load_file(model, path: str, fmt: Optional[str] = None, state: Optional[dict] = None) -> None:
    """Load a weights file of any supported format (detected unless ``fmt`` is given).

    ``state``: the file's state dict when already read by :func:`read_torch_state`.

    Raises:
        InvalidFileError: the file is refused, damaged or does not fit ``model``.
    """
    fmt = fmt or detect_format(path)
    with reading(path):
        if fmt == "keras":
            check_weights_file(model, path)
            model.load_weights(path)
        elif fmt == "torch":
            state = state if state is not None else read_torch_state(path)
            set_torch_state(model, state, naming=naming_of(state), strict_head=_has_top(model))
        else:
            set_tf_keras_weights(model, path, strict_head=_has_top(model))


def _has_top(model) -> bool:
    return any(layer.name == "predictions" for layer in model.layers)


def _snake_case(class_name):
    # The same two substitutions as Keras's naming.to_snake_case:
    # "Conv2D" -> "conv2d", "BatchNormalization" -> "batch_normalization".
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _saved_layer_keys(model):
    """The group names Keras 3 gives each layer in a ``.weights.h5`` file.

    Keras names layers by snake-cased class name in model order, suffixing
    repeats with ``_1``, ``_2``, ... (``keras.saving`` container walking).
    """
    used = {}
    keys = []
    for layer in model.layers:
        key = _snake_case(type(layer).__name__)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys.append(key)
    return keys


def check_weights_file(model, path):
    """Raise ``ValueError`` naming the first layer whose saved shapes differ."""
    with h5py.File(path, "r") as f:
        if "layers" not in f:
            raise ValueError(f"weights={path!r} is not a Keras 3 '.weights.h5' file (no 'layers' group).")
        saved = f["layers"]
        expected_keys = set()
        for layer, key in zip(model.layers, _saved_layer_keys(model)):
            expected_keys.add(key)
            if not layer.weights:
                continue
            model_shapes = [tuple(w.shape) for w in layer.weights]
            if key not in saved or "vars" not in saved[key]:
                raise ValueError(
                    f"weights={path!r} does not fit model {model.name!r}: it has no "
                    f"weights for layer {layer.name!r} (shapes {model_shapes}). "
                    "Was it saved from another RegNet variant?"
                )
            vars_ = saved[key]["vars"]
            file_shapes = [tuple(vars_[str(i)].shape) for i in range(len(vars_))]
            if file_shapes != model_shapes:
                raise ValueError(
                    f"weights={path!r} does not fit model {model.name!r}: layer "
                    f"{layer.name!r} has shapes {model_shapes} in the model but "
                    f"{file_shapes} in the file. Was it saved from another RegNet variant?"
                )
        extra = [k for k in saved if k not in expected_keys and len(saved[k].get("vars", {}))]
        if extra:
            raise ValueError(
                f"weights={path!r} does not fit model {model.name!r}: the file has "
                f"weights for {len(extra)} more layers than the model (e.g. {extra[0]!r}). "
                "Was it saved from a deeper RegNet variant?"
            )
