"""The torch-free, code-execution-free PyTorch checkpoint reader."""

import collections
import os
import pickle
import zipfile

import numpy as np
import pytest
from conftest import require

from keras_regnet.weights import torch_checkpoint
from keras_regnet.errors import UnsafeFileError as UnsafeCheckpointError

torch = require("torch")


def _state():
    g = torch.Generator().manual_seed(0)
    return collections.OrderedDict(
        conv=torch.randn(4, 3, 3, 3, generator=g),
        strided=torch.arange(20, dtype=torch.int64)[2:14:3],  # offset + stride into a storage
        transposed=torch.randn(3, 5, generator=g).t(),  # non-contiguous
        scalar=torch.tensor(2.5, dtype=torch.float64),
        param=torch.nn.Parameter(torch.ones(2)),
        half=torch.randn(4, generator=g).half(),
        bf16=torch.randn(3, generator=g).bfloat16(),
        flags=torch.tensor([True, False]),
        int32=torch.tensor([1, -2], dtype=torch.int32),
        empty=torch.zeros(0, 3),
    )


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_round_trip(tmp_path, zip_format):
    state = _state()
    shared = state["conv"][1]  # a view sharing the storage of another tensor
    path = tmp_path / "ck.pyth"
    torch.save(
        {"epoch": 7, "model_state": state, "shared": shared, "cfg": "MODEL:\n  TYPE: regnet\n", "raw": b"\x00\x01"},
        path,
        _use_new_zipfile_serialization=zip_format,
    )
    out = torch_checkpoint.load(str(path))
    assert out["epoch"] == 7 and out["cfg"].startswith("MODEL") and out["raw"] == b"\x00\x01"
    assert isinstance(out["model_state"], collections.OrderedDict)
    assert list(out["model_state"]) == list(state)
    for key, tensor in state.items():
        expected = tensor.detach().float().numpy() if key == "bf16" else tensor.detach().numpy()
        got = out["model_state"][key]
        assert got.dtype == expected.dtype, key
        np.testing.assert_array_equal(got, expected, err_msg=key)
    np.testing.assert_array_equal(out["shared"], shared.numpy())


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickle_that_would_run_code_is_refused(tmp_path, zip_format, monkeypatch):
    path = tmp_path / "evil.pyth"
    torch.save({"model_state": {"w": torch.ones(1)}, "x": _RunsCode()}, path, _use_new_zipfile_serialization=zip_format)
    called = []  # were the reader to run the payload, it would land here
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load the global (posix|os|nt)\.system"):
        torch_checkpoint.load(str(path))
    assert not called


def test_crafted_data_pkl_with_builtins_eval_is_refused(tmp_path):
    payload = pickle.dumps(collections.OrderedDict(), protocol=2).replace(
        b"ccollections\nOrderedDict", b"cbuiltins\neval"
    )
    path = tmp_path / "crafted.pyth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        torch_checkpoint.load(str(path))


def test_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "ck.pyth"
    torch.save({"model_state": {"w": torch.randn(1000)}}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    cut = tmp_path / "cut.pyth"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match="truncated"):
        torch_checkpoint.load(str(cut))
    other = tmp_path / "other.bin"
    other.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        torch_checkpoint.load(str(other))
