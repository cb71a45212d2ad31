"""A hostile-input corpus, generated (never committed as files).

* :class:`Call` objects pickle as "call this global with these arguments";
  :func:`payloads` gives one per way of running code (``os.system``,
  ``subprocess``, ``exec``/``eval``, ``getattr`` chains, ``importlib``, a
  pickle inside a pickle, ``torch.storage._load_from_bytes``, a function of
  keras_regnet's own that writes files).  Each would create ``marker``.
* :func:`write_zip` / :func:`write_legacy` write ``torch.save``'s two
  formats with any pickle protocol, and let a payload stand anywhere: in
  every pickle of the legacy format, at every nesting level of the main
  object, as a tensor's storage or size argument, with storages that lie
  about their size.  Benign output loads with ``torch.load(weights_only=True)``
  (checked in test_hostile_files.py), so the writer is faithful to torch.
* :func:`keras_archive` rewrites a real ``.keras`` file's config or members.
"""

from __future__ import annotations

import builtins
import collections
import importlib
import io
import json
import os
import pickle
import struct
import subprocess
import zipfile

import numpy as np
import torch

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class Call:
    """Pickles as ``func(*args)``; ``func`` may itself be a :class:`Call`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __call__(self, *args):  # pickle insists that the reduced callable be callable
        raise AssertionError("never called in the test process")


def payloads(marker: str) -> dict:
    """Name -> an object whose unpickling would create the file ``marker``."""
    touch = f"touch {marker}"
    write = f"open({marker!r}, 'w').close()"
    inner = _dumps(Call(os.system, touch), 2)
    from keras_regnet import atomic

    return {
        "os.system": Call(os.system, touch),
        "subprocess.Popen": Call(subprocess.Popen, ["touch", marker]),
        "subprocess.check_output": Call(subprocess.check_output, ["touch", marker]),
        "builtins.exec": Call(builtins.exec, write),
        "builtins.eval": Call(builtins.eval, write),
        "builtins.open": Call(builtins.open, marker, "w"),
        "getattr(__import__('os'), 'system')": Call(Call(builtins.getattr, Call(builtins.__import__, "os"), "system"), touch),
        "getattr(importlib.import_module('subprocess'), 'call')": Call(
            Call(builtins.getattr, Call(importlib.import_module, "subprocess"), "call"), ["touch", marker]
        ),
        "pickle.loads(pickle)": Call(pickle.loads, inner),
        "torch.storage._load_from_bytes": Call(torch.storage._load_from_bytes, legacy_bytes(Call(os.system, touch))),
        "keras_regnet.atomic.write_text": Call(atomic.write_text, marker, "pwned"),
    }


class Tensor:
    """A tensor to write: its data, and the storage/size/stride the pickle will declare."""

    def __init__(self, array, declared_numel=None, storage=None, size=None, stride=None, offset=0):
        self.array = np.ascontiguousarray(array, np.float32)
        self.declared_numel = self.array.size if declared_numel is None else declared_numel
        self.storage = storage  # a payload in place of the storage, if given
        self.size = tuple(self.array.shape) if size is None else size
        self.stride = tuple(s // 4 for s in self.array.strides) if stride is None else stride
        self.offset = offset


class _StorageRef:
    def __init__(self, key, tensor):
        self.key, self.tensor = key, tensor


class _Pickler(pickle.Pickler):
    """torch.save's pickling of tensors, plus :class:`Call` payloads."""

    def __init__(self, file, protocol, legacy, storages):
        super().__init__(file, protocol=protocol)
        self.legacy, self.storages = legacy, storages

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            pid = ("storage", torch.FloatStorage, obj.key, "cpu", obj.tensor.declared_numel)
            return pid + (None,) if self.legacy else pid
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Call):
            return obj.func, obj.args
        if isinstance(obj, Tensor):
            key = str(len(self.storages))
            self.storages.append((key, obj))
            storage = obj.storage if obj.storage is not None else _StorageRef(key, obj)
            args = (storage, obj.offset, obj.size, obj.stride, False, collections.OrderedDict())
            return torch._utils._rebuild_tensor_v2, args
        return NotImplemented


def _dumps(obj, protocol, legacy=False, storages=None):
    buf = io.BytesIO()
    _Pickler(buf, protocol, legacy, storages if storages is not None else []).dump(obj)
    return buf.getvalue()


def write_zip(path, obj, protocol=2, extra_members=(), prefix="archive/", data_pkl=None):
    """torch.save's zip format; ``data_pkl`` replaces the pickled ``obj`` if given."""
    storages = []
    pkl = _dumps(obj, protocol, storages=storages) if data_pkl is None else data_pkl
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(prefix + "data.pkl", pkl)
        zf.writestr(prefix + "byteorder", "little")
        zf.writestr(prefix + "version", "3\n")
        for key, tensor in storages:
            zf.writestr(f"{prefix}data/{key}", tensor.array.tobytes())
        for name, data in extra_members:
            zf.writestr(name, data)
    return path


def write_legacy(path, obj, protocol=2, replace=None):
    """torch.save's legacy format; ``replace`` maps a pickle position to what to pickle there instead.

    Positions: ``magic``, ``protocol``, ``sys_info``, ``keys``.
    """
    with open(path, "wb") as f:
        f.write(legacy_bytes(obj, protocol, replace))
    return path


def legacy_bytes(obj, protocol=2, replace=None) -> bytes:
    """The bytes :func:`write_legacy` writes."""
    replace = replace or {}
    storages = []
    main = _dumps(obj, protocol, legacy=True, storages=storages)
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = [
        _dumps(replace.get("magic", MAGIC), protocol),
        _dumps(replace.get("protocol", 1001), protocol),
        _dumps(replace.get("sys_info", sys_info), protocol),
        main,
        _dumps(replace.get("keys", [key for key, _ in storages]), protocol),
    ]
    for _, tensor in storages:
        parts.append(struct.pack("<q", tensor.declared_numel) + tensor.array.tobytes())
    return b"".join(parts)


def benign_checkpoint(seed=0):
    """A small pycls-like checkpoint object: a state dict, an optimizer state, a config string."""
    rng = np.random.default_rng(seed)
    state = collections.OrderedDict(
        [("stem.conv.weight", Tensor(rng.standard_normal((4, 3, 3, 3)))), ("stem.bn.weight", Tensor(np.ones(4)))]
    )
    optimizer = {"state": {0: {"momentum_buffer": Tensor(rng.standard_normal(4))}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    return {"epoch": 3, "model_state": state, "optimizer_state": optimizer, "cfg": "MODEL:\n  TYPE: regnet\n"}


def main_object_positions(payload):
    """Position name -> a checkpoint object holding ``payload`` there (every nesting level)."""
    positions = {}
    positions["top"] = payload
    ck = benign_checkpoint()
    ck["extra"] = payload
    positions["checkpoint value"] = ck
    ck = benign_checkpoint()
    ck[payload] = 1
    positions["checkpoint key"] = ck
    ck = benign_checkpoint()
    ck["model_state"]["s1.b1.f.a.weight"] = payload
    positions["state-dict value"] = ck
    ck = benign_checkpoint()
    ck["optimizer_state"]["param_groups"][0]["params"].append([[payload]])
    positions["optimizer list, depth 5"] = ck
    ck = benign_checkpoint()
    ck["model_state"]["stem.bn.bias"] = Tensor(np.zeros(4), storage=payload)
    positions["tensor storage argument"] = ck
    ck = benign_checkpoint()
    ck["model_state"]["stem.bn.bias"] = Tensor(np.zeros(4), size=(payload,), stride=(1,))
    positions["tensor size argument"] = ck
    return positions


def corpus(directory, marker):
    """Write every (payload, format, position, protocol) case under ``directory``; yield (case id, path)."""
    os.makedirs(directory, exist_ok=True)
    n = 0
    for name, payload in payloads(marker).items():
        for protocol in PROTOCOLS:
            for position, obj in main_object_positions(payload).items():
                for fmt, write in (("zip", write_zip), ("legacy", write_legacy)):
                    n += 1
                    path = write(os.path.join(directory, f"{n}.pyth"), obj, protocol)
                    yield f"{name} | {fmt} | main pickle: {position} | protocol {protocol}", path
            for position in ("magic", "protocol", "sys_info", "keys"):
                n += 1
                path = write_legacy(os.path.join(directory, f"{n}.pyth"), benign_checkpoint(), protocol, {position: payload})
                yield f"{name} | legacy | {position} pickle | protocol {protocol}", path


def keras_archive(source, dest, edit_config=None, extra_members=()):
    """Copy a ``.keras`` zip, passing its config through ``edit_config`` and adding members."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "config.json" and edit_config is not None:
                data = json.dumps(edit_config(json.loads(data))).encode()
            zout.writestr(info.filename, data)
        for name, data in extra_members:
            zout.writestr(name, data)
    return dest


def npz_with_object_array(path, marker):
    """A CIFAR-style .npz whose ``train_labels`` is a pickled object array that would run a payload."""
    labels = np.empty(2, object)
    labels[0] = Call(os.system, f"touch {marker}")
    labels[1] = 1

    class _Writer(pickle.Pickler):
        def reducer_override(self, obj):
            return (obj.func, obj.args) if isinstance(obj, Call) else NotImplemented

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (2,)})
    _Writer(buf, protocol=3).dump(labels)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train_labels.npy", buf.getvalue())
        for key, value in (("train_jpeg", np.zeros(4, np.uint8)), ("train_offsets", np.array([0, 2, 4])), ("classes", np.array(["a", "b"]))):
            member = io.BytesIO()
            np.save(member, value)
            zf.writestr(f"{key}.npy", member.getvalue())
    return path
