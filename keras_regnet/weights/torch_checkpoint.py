"""Read PyTorch checkpoints without torch, and without running code from the file.

``torch.save`` files are pickles whose tensors point at raw storages.  A
pickle can name any Python callable and call it while loading, so an
untrusted checkpoint loaded with plain ``pickle`` (or ``torch.load`` with
``weights_only=False``) can run arbitrary code.  This module is the only
place in the package that unpickles anything, and every pickle it reads goes
through a restricted unpickler:

* the pickles that carry the checkpoint (the zip format's ``data.pkl``, the
  legacy format's main object) may name only the tensor rebuilders, the
  storage types, ``collections.OrderedDict`` and ``_codecs.encode`` (how
  protocol 2 writes ``bytes``); each is replaced by a function of ours that
  checks its arguments;
* the legacy format's bookkeeping pickles (protocol version, system info,
  storage keys) may name no global at all, and its magic number is compared
  byte for byte, never unpickled.

Before anything is unpickled, :mod:`pickletools` walks the opcodes to check
that every length the pickle declares lies inside the file, so no declared
size is ever allocated.  Storages must fit inside the file (a storage
declaring 10**12 elements is refused before any allocation), tensors inside
their storages, and all tensors together within a small multiple of the
file's size.

Both on-disk formats are read:

* the zip format (PyTorch >= 1.6): ``<archive>/data.pkl`` plus one
  uncompressed member per storage under ``<archive>/data/``;
* the legacy format (PyTorch < 1.6, which the 2020 pycls checkpoints may
  use): magic number, protocol version and system-info pickles, the main
  pickle, the list of storage keys, then each storage as an 8-byte element
  count followed by its raw bytes.

Whatever is wrong with a file (hostile globals, a bad zip, truncation,
nesting too deep, absurd sizes, wrong types) raises
:class:`~keras_regnet.errors.InvalidFileError` naming the file
(:class:`~keras_regnet.errors.UnsafeFileError` for content that could have
run code); nothing else escapes :func:`load`.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
import re
import struct
import zipfile
from typing import Any, Dict, Optional

import numpy as np

from keras_regnet.errors import PLACEHOLDER, InvalidFileError, UnsafeFileError, reading
from keras_regnet.safe_io import check_member_names

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
# The legacy format's first pickle, byte for byte, in each pickle protocol
# (torch writes protocol 2 unless told otherwise): compared, never unpickled.
LEGACY_MAGIC_PICKLES = tuple(pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1))
ZIP_SIGNATURE = b"PK\x03\x04"
HEADER_BYTES = max(len(m) for m in LEGACY_MAGIC_PICKLES)


def sniff(head: bytes) -> Optional[str]:
    """``"zip"``, ``"legacy"`` or ``None`` from a file's first :data:`HEADER_BYTES` bytes."""
    if head.startswith(ZIP_SIGNATURE):
        return "zip"
    if any(head.startswith(magic) for magic in LEGACY_MAGIC_PICKLES):
        return "legacy"
    return None

MAX_DIMS = 16  # tensor rank
MAX_NESTING = 64  # containers inside containers
# All tensors together may take at most this multiple of the storages' bytes
# (plus MIN_TENSOR_BUDGET): views of one storage are copied, and a file must
# not turn a small storage into terabytes of copies.
TENSOR_BUDGET_FACTOR = 2
MIN_TENSOR_BUDGET = 1 << 20
_STORAGE_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")

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


class _Frozen:
    """Objects the pickle can hold but not modify (its BUILD opcode sets attributes)."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise UnsafeFileError(PLACEHOLDER, f"the pickle tries to set {name!r} on a {type(self).__name__}")

    def _set(self, **values):
        for name, value in values.items():
            object.__setattr__(self, name, value)


class _StorageType(_Frozen):
    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self._set(name=name, dtype=np.dtype(_STORAGE_DTYPES[name]))


_STORAGE_TYPES = {name: _StorageType(name) for name in _STORAGE_DTYPES}


class _Storage(_Frozen):
    """A flat array; legacy files fill it after the pickle that declares it."""

    __slots__ = ("type", "numel", "array")

    def __init__(self, storage_type: _StorageType, numel: int):
        self._set(type=storage_type, numel=numel, array=None)


class _PendingTensor(_Frozen):
    """A tensor rebuilt once every storage's data has been read."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self._set(storage=storage, offset=offset, size=size, stride=stride)

    @property
    def nbytes(self):
        return math.prod(self.size) * (4 if self.storage.type.name == "BFloat16Storage" else self.storage.type.dtype.itemsize)

    def build(self) -> np.ndarray:
        storage, offset, size, stride = self.storage, self.offset, self.size, self.stride
        flat = storage.array
        if flat is None:
            raise ValueError("a tensor refers to a storage whose data is not in the file")
        if storage.type.name == "BFloat16Storage":
            flat = (flat.astype(np.uint32) << 16).view(np.float32)
        if math.prod(size) == 0:
            return np.zeros(size, flat.dtype)
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * flat.dtype.itemsize for s in stride), writeable=False
        )
        return np.array(view)  # own, contiguous copy


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """``torch._utils._rebuild_tensor_v2`` (and v1): checked arguments, data later."""
    if not isinstance(storage, _Storage):
        raise ValueError(f"a tensor is built from a {type(storage).__name__}, not a storage")
    if not (_is_int(offset) and offset >= 0):
        raise ValueError(f"a tensor has storage offset {offset!r}")
    size, stride = tuple(size), tuple(stride)
    if len(size) > MAX_DIMS or len(size) != len(stride):
        raise ValueError(f"a tensor has size {size!r} and stride {stride!r}")
    if not all(_is_int(v) and v >= 0 for v in size + stride):
        raise ValueError(f"a tensor has size {size!r} and stride {stride!r}")
    if math.prod(size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            raise ValueError(
                f"a tensor of size {size} reaches element {last} of a storage of {storage.numel} elements"
            )
    return _PendingTensor(storage, offset, size, stride)


def _rebuild_tensor_v1(storage, offset, size, stride):
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
    if not isinstance(data, _PendingTensor):
        raise ValueError(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


def _codecs_encode(text, encoding="utf-8"):
    """Protocol 2 stores ``bytes`` as ``_codecs.encode(str, "latin1")``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError(f"_codecs.encode called with {type(text).__name__}, {encoding!r}")
    return text.encode("latin1")


def _ordered_dict(*args):
    if args and not isinstance(args[0], (list, tuple)):
        raise ValueError(f"OrderedDict built from a {type(args[0]).__name__}")
    return collections.OrderedDict(*args)


_CHECKPOINT_GLOBALS = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v1,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("_codecs", "encode"): _codecs_encode,
}


def _refuse_global(module, name):
    return UnsafeFileError(
        PLACEHOLDER,
        f"Refusing to load the global {module}.{name}: it could run code. Only tensors, storages and plain "
        "containers are read from checkpoints, and nothing from this file was run. "
        "Is it really a PyTorch checkpoint from a trusted source?",
    )


class _PlainUnpickler(pickle.Unpickler):
    """Plain data only: numbers, strings, bytes, lists, tuples, dicts; no global, no persistent id."""

    def find_class(self, module, name):
        raise _refuse_global(module, name)

    def persistent_load(self, pid):
        raise UnsafeFileError(PLACEHOLDER, f"unexpected persistent id {pid!r} in a bookkeeping pickle")


class _CheckpointUnpickler(pickle.Unpickler):
    """Tensors (as pending numpy arrays) and plain containers; see ``_CHECKPOINT_GLOBALS``."""

    def __init__(self, file, declare_storage, legacy: bool):
        super().__init__(file, encoding="latin1")
        self._declare_storage = declare_storage
        self._legacy = legacy

    def find_class(self, module, name):
        if (module, name) in _CHECKPOINT_GLOBALS:
            return _CHECKPOINT_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise _refuse_global(module, name)

    def persistent_load(self, pid):
        # ("storage", type, key, location, numel) and, in legacy files, a view (always None here).
        if not (isinstance(pid, tuple) and len(pid) == (6 if self._legacy else 5) and pid[0] == "storage"):
            raise ValueError(f"unknown persistent id {pid!r}")
        _, storage_type, key, location, numel = pid[:5]
        if not any(storage_type is t for t in _STORAGE_TYPES.values()):
            raise ValueError(f"storage of unsupported type {storage_type!r}")
        if not (isinstance(key, str) and _STORAGE_KEY.match(key)) or not isinstance(location, str):
            raise ValueError(f"storage key {key!r} / location {location!r}")
        if not (_is_int(numel) and numel >= 0):
            raise ValueError(f"storage {key!r} declares {numel!r} elements")
        if self._legacy and pid[5] is not None:
            raise ValueError("legacy storage views are not supported")
        return self._declare_storage(key, storage_type, numel)


class _BoundedReader:
    """A file object whose ``read(n)`` never asks for more than the file holds."""

    def __init__(self, f, size: int):
        self._f, self._size = f, size

    def read(self, n=-1):
        left = max(self._size - self._f.tell(), 0)
        return self._f.read(left if n is None or n < 0 else min(n, left))

    def readline(self):
        return self._f.readline(max(self._size - self._f.tell(), 0))

    def tell(self):
        return self._f.tell()


MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


def _check_opcodes(stream) -> None:
    """Walk a pickle's opcodes up to STOP: every declared length must lie inside ``stream``.

    Memo indices are checked too: a pickler numbers memo entries from 0, one
    per PUT, so an index beyond the opcode's byte position is forged, and
    the unpickler would grow its memo table to that size (a 1 KB file asked
    for 1.7 GB; found by tests/test_hostile_files.py).
    """
    for opcode, arg, position in pickletools.genops(stream):
        if opcode.name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            raise ValueError("out-of-band buffers are not part of a checkpoint")
        if opcode.name in MEMO_PUTS and not (isinstance(arg, int) and 0 <= arg <= (position or 0)):
            raise ValueError(f"memo index {arg!r} at byte {position} cannot come from a pickler")


def _unpickle(data: bytes, unpickler_cls, *args):
    _check_opcodes(io.BytesIO(data))
    return unpickler_cls(io.BytesIO(data), *args).load()


class _Reader:
    """Shared state of one read: declared storages and the byte budgets."""

    def __init__(self, path, size: int):
        self.path, self.size = path, size
        self.storages: Dict[str, _Storage] = {}
        self.storage_bytes = 0

    def declare(self, key, storage_type, numel):
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(storage_type, numel)
        elif storage.type is not storage_type or storage.numel != numel:
            raise ValueError(f"storage {key!r} is declared twice, differently")
        return storage

    def take_bytes(self, key, nbytes):
        """Count ``nbytes`` of storage data against the file's size, before reading them."""
        self.storage_bytes += nbytes
        if self.storage_bytes > self.size:
            raise ValueError(
                f"storage {key!r} declares {nbytes:,} bytes; the storages would need more than the "
                f"file's {self.size:,} bytes (absurd size or truncated file)"
            )

    def materialise(self, obj):
        budget = TENSOR_BUDGET_FACTOR * self.storage_bytes + MIN_TENSOR_BUDGET
        return _Materialiser(budget)(obj, 0)


class _Materialiser:
    """Replace pending tensors by arrays: shared objects once, nesting and bytes bounded."""

    def __init__(self, budget: int):
        self.memo: Dict[int, Any] = {}
        self.budget = budget

    def __call__(self, obj, depth):
        if depth > MAX_NESTING:
            raise ValueError(f"containers are nested more than {MAX_NESTING} deep")
        if id(obj) in self.memo:
            return self.memo[id(obj)]
        if isinstance(obj, _PendingTensor):
            self.budget -= obj.nbytes
            if self.budget < 0:
                raise ValueError("its tensors would take far more memory than its storages hold")
            out = self.memo[id(obj)] = obj.build()
        elif isinstance(obj, dict):
            out = self.memo[id(obj)] = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
            for k, v in obj.items():
                out[k] = self(v, depth + 1)
        elif isinstance(obj, list):
            out = self.memo[id(obj)] = []
            out.extend(self(v, depth + 1) for v in obj)
        elif isinstance(obj, tuple):
            out = tuple(self(v, depth + 1) for v in obj)
            self.memo[id(obj)] = out
        else:
            out = obj
        return out


def load(path) -> Any:
    """Load a ``torch.save`` file as Python objects with numpy arrays for tensors.

    Raises:
        UnsafeFileError: the file names a global other than the tensor
            rebuilders, storage types and plain containers (nothing is run).
        InvalidFileError: anything else is wrong: not a PyTorch checkpoint,
            truncated, damaged zip, absurd sizes, nesting too deep, a file
            that cannot be read.
    """
    with reading(path, "is damaged or not a PyTorch checkpoint"), open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(HEADER_BYTES)
        f.seek(0)
        reader = _Reader(path, size)
        if sniff(head) == "zip":
            return _load_zip(f, reader)
        if sniff(head) == "legacy":
            return _load_legacy(f, reader, next(m for m in LEGACY_MAGIC_PICKLES if head.startswith(m)))
        raise InvalidFileError(path, "is not a PyTorch checkpoint (neither torch.save's zip format nor its legacy format)")


def _load_zip(f, reader: _Reader):
    with zipfile.ZipFile(f) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        check_member_names(reader.path, infos)
        pickles = [n for n in infos if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"a zip file with {len(pickles)} data.pkl members, not a PyTorch checkpoint")
        prefix = pickles[0][: -len("data.pkl")]

        def member(name, nbytes: Optional[int] = None) -> bytes:
            info = infos.get(name)
            if info is None:
                raise ValueError(f"member {name!r} is missing from the archive")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise ValueError(f"member {name!r} is compressed; torch.save writes members uncompressed")
            if info.header_offset + info.file_size > reader.size:
                raise ValueError(f"member {name!r} extends past the end of the file (truncated?)")
            nbytes = info.file_size if nbytes is None else nbytes
            if nbytes > info.file_size:
                raise ValueError(f"member {name!r} holds {info.file_size:,} bytes; {nbytes:,} are needed")
            with zf.open(info) as m:
                data = m.read(nbytes)
            if len(data) != nbytes:
                raise ValueError(f"member {name!r} is truncated")
            return data

        order = "<"
        if prefix + "byteorder" in infos:
            byteorder = member(prefix + "byteorder").strip()
            if byteorder not in (b"little", b"big"):
                raise ValueError(f"unknown byte order {byteorder[:20]!r}")
            order = "<" if byteorder == b"little" else ">"

        def declare(key, storage_type, numel):
            fresh = key not in reader.storages
            storage = reader.declare(key, storage_type, numel)
            if fresh:
                nbytes = numel * storage_type.dtype.itemsize
                reader.take_bytes(key, nbytes)
                raw = member(f"{prefix}data/{key}", nbytes)
                storage._set(array=np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder(order)).astype(storage_type.dtype))
            return storage

        obj = _unpickle(member(pickles[0]), _CheckpointUnpickler, declare, False)
        return reader.materialise(obj)


def _load_legacy(f, reader: _Reader, magic: bytes):
    bounded = _BoundedReader(f, reader.size)

    def next_pickle() -> bytes:
        start = f.tell()
        _check_opcodes(bounded)
        end = f.tell()
        f.seek(start)
        return f.read(end - start)

    f.seek(len(magic))
    if _unpickle(next_pickle(), _PlainUnpickler) != LEGACY_PROTOCOL_VERSION:
        raise ValueError("unsupported legacy PyTorch protocol version")
    sys_info = _unpickle(next_pickle(), _PlainUnpickler)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    order = "<" if little else ">"
    obj = _unpickle(next_pickle(), _CheckpointUnpickler, reader.declare, True)
    keys = _unpickle(next_pickle(), _PlainUnpickler)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or len(set(keys)) != len(keys):
        raise ValueError("the list of storage keys is not a list of distinct strings")
    for key in keys:
        storage = reader.storages.get(key)
        if storage is None:
            raise ValueError(f"storage key {key!r} is listed but never used")
        header = f.read(8)
        if len(header) < 8:
            raise ValueError(f"the file is truncated (storage {key!r} missing)")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise ValueError(f"storage {key!r} holds {numel} elements but was declared with {storage.numel}")
        nbytes = numel * storage.type.dtype.itemsize
        reader.take_bytes(key, nbytes)
        raw = bounded.read(nbytes)
        if len(raw) < nbytes:
            raise ValueError(f"the file is truncated (storage {key!r} is short)")
        storage._set(array=np.frombuffer(raw, dtype=storage.type.dtype.newbyteorder(order)).astype(storage.type.dtype))
    return reader.materialise(obj)
