"""Opening archives from outside the package without trusting them.

* :func:`check_member_names`: zip member names that are absolute or climb
  out of the archive are refused (nothing here extracts, but a later tool
  might);
* :func:`load_npz`: ``.npz`` data files, refusing pickled (object) arrays
  and arrays whose header declares more bytes than the file holds, before
  anything is allocated;
* :func:`load_keras_model`: ``.keras`` model files, whose ``config.json`` is
  checked against an allow-list (Keras's own layers and the classes this
  package registers; no ``Lambda``, no other module) before Keras reads it
  with ``safe_mode=True``.

PyTorch checkpoints have their own reader, :mod:`keras_regnet.torch_checkpoint`.
Every refusal raises :class:`~keras_regnet.errors.InvalidFileError` (or
:class:`~keras_regnet.errors.UnsafeFileError`) naming the file.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from keras_regnet.errors import InvalidFileError, UnsafeFileError, reading

MAX_CONFIG_BYTES = 64 << 20
# Keras layers that carry code (Python bytecode, a torch module, a JAX/TF
# function or graph) or that load further files.
CODE_CARRYING_CLASSES = frozenset({"Lambda", "__lambda__", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "TFSMLayer"})
# Keras modules that are not modelling code (downloads, file I/O, configuration).
NON_MODELLING_MODULES = ("keras.utils", "keras.src.utils", "keras.saving", "keras.src.saving", "keras.config", "keras.src.backend.config")
KERAS_ARCHIVE_MEMBERS = re.compile(r"^(config\.json|metadata\.json|model\.weights\.(h5|npz|json)|model\.weights_\d+\.h5|assets(/.*)?)$")


def check_member_names(path, names: Iterable[str]) -> None:
    """Refuse zip member names that are absolute, climb out of the archive or hold NUL."""
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or "\x00" in name or re.match(r"^[A-Za-z]:", name):
            raise UnsafeFileError(path, f"the archive has a member named {name!r}, outside the archive")


def _open_zip(path, what: str) -> zipfile.ZipFile:
    with reading(path, f"is not a valid {what}: a damaged zip archive"):
        archive = zipfile.ZipFile(path)
    check_member_names(path, archive.namelist())
    return archive


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    """(shape, dtype) from an ``.npy`` member's header, without reading its data."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    return shape, dtype


def load_npz(path, keys: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (``keys``: these, each required), checked first.

    Raises:
        UnsafeFileError: an array holds Python objects (would need pickle).
        InvalidFileError: not an ``.npz`` archive, a member that is not
            ``.npy``, a declared size larger than the member, a missing key,
            damage.
    """
    with _open_zip(path, ".npz file") as archive:
        infos = {info.filename[: -len(".npy")]: info for info in archive.infolist() if info.filename.endswith(".npy")}
        others = [info.filename for info in archive.infolist() if not info.filename.endswith(".npy")]
        if others:
            raise InvalidFileError(path, f"is not an .npz file: member {others[0]!r} is not a .npy array")
        missing = [k for k in (keys or ()) if k not in infos]
        if missing:
            raise InvalidFileError(path, f"has no array {missing[0]!r} (it has {sorted(infos)})")
        wanted = list(keys) if keys else list(infos)
        with reading(path, "is a damaged .npz file"):
            for key in wanted:
                shape, dtype = _npy_header(archive, infos[key])
                if dtype.hasobject:
                    raise UnsafeFileError(path, f"array {key!r} holds Python objects, which load only through pickle")
                if int(np.prod(shape, dtype=object)) * dtype.itemsize > infos[key].file_size:
                    raise InvalidFileError(path, f"array {key!r} declares shape {shape} {dtype}, more than its {infos[key].file_size:,} bytes")
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in wanted}


def _registered(name: str) -> bool:
    import keras

    return name.startswith("keras_regnet>") and keras.saving.get_registered_object(name) is not None


def _check_serialized_object(path, obj: dict) -> None:
    """One ``{"module", "class_name", "config", "registered_name"}`` entry of a Keras config."""
    module, class_name = obj.get("module"), obj.get("class_name")
    registered = obj.get("registered_name")
    where = f"{module}.{class_name}" if module else str(class_name)
    if class_name in CODE_CARRYING_CLASSES:
        raise UnsafeFileError(path, f"its model config has a {class_name} layer, which carries code; refused")
    if isinstance(registered, str) and ">" in registered and not _registered(registered):
        raise UnsafeFileError(path, f"its model config names {registered!r}, which is not a class registered by keras_regnet")
    if module is None:
        return
    if not isinstance(module, str) or not isinstance(class_name, str):
        raise InvalidFileError(path, f"its model config has a malformed object {where!r}")
    if module == "keras" or module.startswith("keras."):
        if module.startswith(NON_MODELLING_MODULES):
            raise UnsafeFileError(path, f"its model config calls {where}, which is not modelling code; refused")
        return
    if module.startswith("keras_regnet.") and isinstance(registered, str) and _registered(registered):
        return
    if module == "builtins" and class_name == "function" and isinstance(obj.get("config"), str):
        return  # Keras looks such names up among its own activations, losses and metrics only
    raise UnsafeFileError(
        path, f"its model config names {where}, outside Keras and keras_regnet; loading it could import and run that code"
    )


def _walk_config(path, node, depth=0) -> None:
    if depth > 200:
        raise InvalidFileError(path, "its model config is nested too deeply")
    if isinstance(node, dict):
        if "class_name" in node:
            _check_serialized_object(path, node)
        for value in node.values():
            _walk_config(path, value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _walk_config(path, value, depth + 1)


def check_keras_archive(path) -> None:
    """Refuse a ``.keras`` file whose members or config could run or fetch code."""
    with _open_zip(path, ".keras file") as archive:
        names = archive.namelist()
        strange = [n for n in names if not KERAS_ARCHIVE_MEMBERS.match(n)]
        if strange:
            raise InvalidFileError(path, f"is not a Keras .keras file: unexpected member {strange[0]!r}")
        if "config.json" not in names:
            raise InvalidFileError(path, "is not a Keras .keras file (no config.json)")
        info = archive.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            raise InvalidFileError(path, f"has a {info.file_size:,}-byte config.json; a model config is far smaller")
        with reading(path, "has a damaged config.json"):
            config = json.loads(archive.read(info).decode("utf-8"))
    _walk_config(path, config)


def load_keras_model(path, compile: bool = False):
    """``keras.saving.load_model(path, safe_mode=True)`` after :func:`check_keras_archive`."""
    import keras

    import keras_regnet.training  # noqa: F401 - registers the classes a trained model's config names

    if not os.path.isfile(path):
        raise InvalidFileError(path, "no such .keras file")
    check_keras_archive(path)
    with reading(path, "could not be loaded as a Keras model"):
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
