"""Read PyTorch checkpoints without torch, and without running pickled code.

``torch.save`` files are pickles whose tensors point at raw storages.  A
pickle can name any Python callable and call it while loading, so an
untrusted checkpoint loaded with plain ``pickle`` (or old ``torch.load``)
can run arbitrary code.  This reader uses a restricted unpickler that only
rebuilds tensors (as numpy arrays) and plain containers; any other global a
file names is refused with :class:`UnsafeCheckpointError`.

Both on-disk formats are supported:

* the zip format (PyTorch >= 1.6): ``<archive>/data.pkl`` plus one raw file
  per storage under ``<archive>/data/``;
* the legacy format (PyTorch < 1.6, which the 2020 pycls checkpoints may
  use): a magic number, protocol version and system-info pickles, the main
  pickle, the list of storage keys, then each storage as an 8-byte element
  count followed by its raw bytes.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, Dict

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> numpy dtype of its elements.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # raw bits; widened to float32 on rebuild
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint names a Python global outside the tensor whitelist."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A lazily filled flat array (legacy files read storages after the pickle)."""

    def __init__(self, storage_type: _StorageType, numel: int):
        self.type = storage_type
        self.numel = numel
        self.array = None


def _rebuild_tensor(storage: _Storage, offset, size, stride, *unused):
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpointError(f"Tensor built from {type(storage).__name__}, not a storage.")
    if storage.array is None:
        # Legacy files store the data after the pickle: build once it is read.
        return _PendingTensor((storage, offset, size, stride))
    return _tensor_from_storage(storage, offset, size, stride)


def _tensor_from_storage(storage: _Storage, offset, size, stride):
    if storage.array is None:
        raise pickle.UnpicklingError("A tensor refers to a storage whose data is not in the file.")
    flat = storage.array
    if storage.type.name == "BFloat16Storage":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    if len(size) == 0:
        return flat[offset].copy()
    itemsize = flat.dtype.itemsize
    needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset
    if needed > flat.size:
        raise pickle.UnpicklingError("tensor extends past the end of its storage (truncated file?)")
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.array(view)  # own, contiguous copy


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
    return data


def _rebuild_tensor_v1(storage, offset, size, stride):
    return _rebuild_tensor(storage, offset, size, stride)


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v1,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    # Protocol-2 pickles store bytes as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): lambda s, enc="utf-8": s.encode(enc),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: Dict[str, _Storage], load_storage):
        super().__init__(file, encoding="latin1")
        self._storages = storages
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"Refusing to load the global {module}.{name} from the checkpoint: only tensors "
            "and plain containers are read, because other globals could run code. "
            "Is this file really a PyTorch checkpoint from a trusted source?"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"Unknown persistent id {pid!r} in checkpoint.")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"Storage of unsupported type {storage_type!r}.")
        key = str(key)
        if key not in self._storages:
            storage = _Storage(storage_type, int(numel))
            self._load_storage(key, storage)
            self._storages[key] = storage
        storage = self._storages[key]
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # legacy storage view: (view_key, offset, numel)
            raise UnsafeCheckpointError("Legacy storage views are not supported.")
        return storage


def load(path) -> Any:
    """Load a ``torch.save`` file as Python objects with numpy arrays for tensors.

    Raises:
        UnsafeCheckpointError: the file names globals other than tensor
            rebuilders, storages and plain containers.
        ValueError: the file is not a PyTorch checkpoint or is truncated.
    """
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as f:
        return _load_legacy(f, path)


def _load_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise ValueError(f"{path!r} is a zip file but not a PyTorch checkpoint (no data.pkl).")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder_name = f"{prefix}byteorder"
        little = byteorder_name not in names or zf.read(byteorder_name).strip() == b"little"

        def load_storage(key, storage):
            try:
                raw = zf.read(f"{prefix}data/{key}")
            except KeyError:
                raise ValueError(f"{path!r}: storage {key!r} is missing from the archive.") from None
            dtype = storage.type.dtype.newbyteorder("<" if little else ">")
            expected = storage.numel * dtype.itemsize
            if len(raw) < expected:
                raise ValueError(f"{path!r}: storage {key!r} is truncated.")
            storage.array = np.frombuffer(raw[:expected], dtype=dtype).astype(storage.type.dtype)

        try:
            return _materialise(_RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), {}, load_storage).load())
        except (EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path!r} is a damaged PyTorch checkpoint: {e}") from e


def _load_legacy(f, path):
    def read_pickle():
        return _RestrictedUnpickler(f, {}, lambda key, storage: None).load()

    try:
        magic = pickle.Unpickler(f).load() if _peek_is_int_pickle(f) else None
        if magic != LEGACY_MAGIC_NUMBER:
            raise ValueError(f"{path!r} is not a PyTorch checkpoint (no zip archive, no legacy magic number).")
        if read_pickle() != LEGACY_PROTOCOL_VERSION:
            raise ValueError(f"{path!r}: unsupported legacy PyTorch protocol version.")
        read_pickle()  # sys_info: byte order and type sizes (always little-endian here)
        storages: Dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(f, storages, lambda key, storage: None).load()
        keys = read_pickle()
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise ValueError(f"{path!r}: storage key {key!r} listed but never used.")
            header = f.read(8)
            if len(header) < 8:
                raise ValueError(f"{path!r} is truncated (storage {key!r} missing).")
            (numel,) = struct.unpack("<q", header)
            nbytes = numel * storage.type.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) < nbytes:
                raise ValueError(f"{path!r} is truncated (storage {key!r} is short).")
            storage.array = np.frombuffer(raw, dtype=storage.type.dtype.newbyteorder("<")).astype(
                storage.type.dtype
            )
    except EOFError as e:
        raise ValueError(f"{path!r} is truncated or not a PyTorch checkpoint.") from e
    # Tensors were rebuilt while unpickling, before their data was read: rebuild again.
    return _materialise(obj)


def _peek_is_int_pickle(f):
    """Legacy files start with a protocol-2 pickle of an int (PROTO 2, LONG1)."""
    start = f.tell()
    head = f.read(2)
    f.seek(start)
    return head == b"\x80\x02"


def _materialise(obj):
    if isinstance(obj, _PendingTensor):
        return obj.build()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v)
        return out
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v) for v in obj)
    return obj


class _PendingTensor:
    def __init__(self, args):
        self.args = args

    def build(self):
        return _tensor_from_storage(*self.args)
