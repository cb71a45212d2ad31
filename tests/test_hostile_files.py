"""Hostile PyTorch checkpoints never run code: the generated corpus, sizes, damage, mutation.

Every case asserts that the payload's marker file was not created and that
the only exception is the documented one, naming the file.  The corpus runs
through the reader and through a builder (``weights=``), which reads the
file before building anything.
"""

import collections
import io
import os
import pickle
import struct
import time
import tracemalloc
import zipfile

import hostile_files as hf
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_regnet.weights import torch_checkpoint
from keras_regnet import RegNet, RegNetConfig
from keras_regnet.errors import InvalidFileError, UnsafeFileError

TINY = RegNetConfig(depth=2, w0=8, wa=8.0, wm=2.0, group_width=8, stem_width=8)


def _refusal(load, path):
    """The exception ``load(path)`` raises, or a description of what went wrong instead."""
    try:
        load(path)
    except InvalidFileError as e:
        return e
    except BaseException as e:  # noqa: BLE001 - anything else is the failure being looked for
        return f"raised {type(e).__name__}: {e}"
    return "accepted the file"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_corpus_writer_is_faithful_to_torch(tmp_path, fmt, protocol):
    """Benign output of the corpus writer is a real checkpoint: torch and our reader agree on it."""
    write = hf.write_zip if fmt == "zip" else hf.write_legacy
    path = write(tmp_path / "ck.pyth", hf.benign_checkpoint(), protocol)
    # torch's weights-only unpickler knows protocols 2-3 only; these benign files were made just above.
    expected = torch.load(path, weights_only=protocol < 4)
    got = torch_checkpoint.load(path)
    assert got["epoch"] == expected["epoch"] == 3 and got["cfg"] == expected["cfg"]
    for key, tensor in expected["model_state"].items():
        np.testing.assert_array_equal(got["model_state"][key], tensor.numpy())
    np.testing.assert_array_equal(
        got["optimizer_state"]["state"][0]["momentum_buffer"], expected["optimizer_state"]["state"][0]["momentum_buffer"]
    )


def test_full_corpus_through_the_reader_and_a_builder(tmp_path):
    marker = tmp_path / "MARKER"
    cases = list(hf.corpus(tmp_path / "corpus", str(marker)))
    assert len(cases) == 11 * 6 * (7 * 2 + 4)  # payloads x protocols x (main positions x formats + legacy pickles)
    entry_points = {
        "reader": torch_checkpoint.load,
        "builder": lambda p: RegNet(TINY, input_shape=(32, 32, 3), weights=p),
    }
    failures, unsafe = [], 0
    for case, path in cases:
        for entry, load in entry_points.items():
            outcome = _refusal(load, path)
            if marker.exists():
                failures.append(f"{case} | {entry}: RAN THE PAYLOAD")
                marker.unlink()
            if not isinstance(outcome, InvalidFileError):
                failures.append(f"{case} | {entry}: {outcome}")
            elif outcome.path != path:
                failures.append(f"{case} | {entry}: error names {outcome.path!r}, not the file")
            elif isinstance(outcome, UnsafeFileError):
                unsafe += 1
            needs_unsafe = "protocol 0" not in case and "protocol 1" not in case and "magic" not in case
            if needs_unsafe and not isinstance(outcome, UnsafeFileError):
                failures.append(f"{case} | {entry}: refused as {type(outcome).__name__}, not UnsafeFileError: {outcome}")
    assert not failures, f"{len(failures)} of {2 * len(cases)} cases failed:\n" + "\n".join(failures[:30])
    assert unsafe >= 2 * 11 * 4 * 17  # protocols 2-5: every non-magic case is named unsafe


def test_the_refusal_names_the_global_and_says_nothing_ran(tmp_path):
    marker = tmp_path / "MARKER"
    path = hf.write_legacy(tmp_path / "evil.pyth", hf.benign_checkpoint(), 2, {"sys_info": hf.payloads(str(marker))["os.system"]})
    with pytest.raises(UnsafeFileError, match=r"evil\.pyth: Refusing to load the global (posix|os)\.system.*nothing from this file was run"):
        torch_checkpoint.load(path)
    assert not marker.exists()


def _peak_bytes(load, path):
    tracemalloc.start()
    try:
        outcome = _refusal(load, path)
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_storage_declaring_10e12_elements_fails_fast_and_allocates_nothing(tmp_path, fmt):
    ck = hf.benign_checkpoint()
    ck["model_state"]["stem.bn.weight"] = hf.Tensor(np.ones(4), declared_numel=10**12, size=(10**6, 10**6), stride=(10**6, 1))
    path = (hf.write_zip if fmt == "zip" else hf.write_legacy)(tmp_path / "huge.pyth", ck)
    start = time.perf_counter()
    outcome, peak = _peak_bytes(torch_checkpoint.load, path)
    assert isinstance(outcome, InvalidFileError) and "bytes" in outcome.reason, outcome
    assert peak < 4 << 20, f"peak {peak:,} bytes"
    assert time.perf_counter() - start < 2


def test_pickle_declaring_huge_bytes_allocates_nothing(tmp_path):
    # BINBYTES8 claiming 2**40 bytes: the opcode pre-scan refuses it before the unpickler allocates.
    data_pkl = b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc."
    path = hf.write_zip(tmp_path / "ck.pyth", None, data_pkl=data_pkl)
    outcome, peak = _peak_bytes(torch_checkpoint.load, path)
    assert isinstance(outcome, InvalidFileError) and peak < 4 << 20, (outcome, peak)


def test_many_views_of_one_storage_are_bounded(tmp_path):
    # 2,000 tensors viewing one 1 MB storage would be 2 GB of copies.
    base = np.zeros(1 << 18, np.float32)
    path = tmp_path / "views.pyth"
    shared = torch.from_numpy(base)
    torch.save({"model_state": {f"w{i}": shared[:] for i in range(2000)}}, path)
    outcome, peak = _peak_bytes(torch_checkpoint.load, str(path))
    assert isinstance(outcome, InvalidFileError) and "far more memory" in outcome.reason, outcome
    assert peak < 64 << 20


def test_shared_references_are_not_multiplied_and_deep_nesting_is_refused(tmp_path):
    # Each level holds the previous one twice: 2**60 paths, one object per level.
    level = []
    for _ in range(60):
        level = [level, level]
    path = hf.write_zip(tmp_path / "laughs.pyth", {"model_state": {}, "x": level})
    start = time.perf_counter()
    assert torch_checkpoint.load(path)["model_state"] == {}
    assert time.perf_counter() - start < 2
    deep = []
    for _ in range(200):
        deep = [deep]
    path = hf.write_legacy(tmp_path / "deep.pyth", {"x": deep})
    with pytest.raises(InvalidFileError, match="nested"):
        torch_checkpoint.load(path)


@pytest.mark.parametrize("name", ["../../escape/data.pkl", "/abs/data.pkl", "archive/../../escape", "C:/x/data.pkl"])
def test_zip_members_outside_the_archive_are_refused(tmp_path, name):
    path = hf.write_zip(tmp_path / "ck.pyth", hf.benign_checkpoint(), extra_members=[(name, b"x")])
    with pytest.raises(UnsafeFileError, match="outside the archive"):
        RegNet(TINY, input_shape=(32, 32, 3), weights=str(path))
    assert not (tmp_path.parent / "escape").exists()


def test_compressed_members_and_missing_storages_are_refused(tmp_path):
    good = hf.write_zip(tmp_path / "good.pyth", hf.benign_checkpoint())
    deflated = tmp_path / "deflated.pyth"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    with pytest.raises(InvalidFileError, match="compressed"):
        torch_checkpoint.load(deflated)
    gone = tmp_path / "gone.pyth"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(gone, "w") as zout:
        for info in zin.infolist():
            if not info.filename.endswith("data/0"):
                zout.writestr(info.filename, zin.read(info))
    with pytest.raises(InvalidFileError, match="missing"):
        torch_checkpoint.load(gone)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_truncated_at_every_eighth(tmp_path, fmt):
    path = (hf.write_zip if fmt == "zip" else hf.write_legacy)(tmp_path / "ck.pyth", hf.benign_checkpoint())
    data = open(path, "rb").read()
    for cut in sorted({len(data) * k // 8 for k in range(8)} | {1, 20, len(data) - 1}):
        short = tmp_path / f"cut{cut}.pyth"
        short.write_bytes(data[:cut])
        outcome = _refusal(torch_checkpoint.load, str(short))
        assert isinstance(outcome, InvalidFileError), f"cut at {cut}: {outcome}"


@pytest.mark.parametrize(
    "value, message",
    [("a string", "is a str, not a tensor"), (hf.Tensor(np.ones(2)), None), ([1, 2], "is a list, not a tensor")],
)
def test_state_dict_of_wrong_types_is_refused_before_the_build(tmp_path, value, message):
    ck = hf.benign_checkpoint()
    ck["model_state"]["stem.bn.bias"] = value
    path = hf.write_zip(tmp_path / "ck.pyth", ck)
    if message is None:  # a float tensor of the wrong shape: refused when assigned, naming the file
        message = "stem"
    with pytest.raises(InvalidFileError, match=message) as err:
        RegNet(TINY, input_shape=(32, 32, 3), weights=str(path))
    assert err.value.path == str(path)


def test_integer_parameters_are_refused(tmp_path):
    path = tmp_path / "ints.pyth"
    torch.save({"model_state": collections.OrderedDict([("stem.conv.weight", torch.ones(8, 3, 3, 3, dtype=torch.int32))])}, path)
    with pytest.raises(InvalidFileError, match="dtype int32"):
        RegNet(TINY, input_shape=(32, 32, 3), weights=str(path))


def _valid_bytes():
    import tempfile

    buf = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, write in (("zip", hf.write_zip), ("legacy", hf.write_legacy)):
            with open(write(os.path.join(tmp, fmt), hf.benign_checkpoint()), "rb") as f:
                buf[fmt] = f.read()
    with zipfile.ZipFile(io.BytesIO(buf["zip"])) as zf:
        buf["data.pkl"] = zf.read("archive/data.pkl")
        buf["storage"] = zf.read("archive/data/0")
    return buf


VALID = _valid_bytes()
edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"])), min_size=1, max_size=6)


def _mutate(data: bytes, changes, cut):
    data = bytearray(data)
    for position, value, kind in changes:
        i = position % (len(data) + 1)
        if kind == "insert":
            data.insert(i, value)
        elif data and kind == "delete":
            del data[min(i, len(data) - 1)]
        elif data:
            data[min(i, len(data) - 1)] = value
    return bytes(data[:cut] if cut is not None else data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["zip", "legacy", "data.pkl"]), changes=edits, cut=st.one_of(st.none(), st.integers(0, 4000)))
def test_mutated_checkpoints_give_only_the_documented_error_in_bounded_memory(tmp_path, target, changes, cut):
    path = tmp_path / "mutated.pyth"
    if target == "data.pkl":  # a valid zip around a mutated pickle: reaches the unpickler, not just the CRC check
        hf.write_zip(path, None, data_pkl=_mutate(VALID["data.pkl"], changes, cut), extra_members=[("archive/data/0", VALID["storage"])])
    else:
        path.write_bytes(_mutate(VALID[target], changes, cut))
    outcome, peak = _peak_bytes(torch_checkpoint.load, str(path))
    assert not isinstance(outcome, str) or outcome == "accepted the file", outcome
    assert peak < 16 << 20, f"peak {peak:,} bytes for a {path.stat().st_size:,}-byte file"


@pytest.mark.parametrize("target", ["legacy", "data.pkl"])
def test_a_forged_memo_index_is_refused_before_the_unpickler_grows_its_memo(tmp_path, target):
    """A LONG_BINPUT with index 10**8 in a 1 KB file: CPython's unpickler would size its memo table to it (1.7 GB)."""
    pickled = pickle.dumps({"a": [1.0, 2.0]}, protocol=2)
    forged = pickled.replace(b"q\x00", b"r" + struct.pack("<I", 10**8), 1)  # BINPUT 0 -> LONG_BINPUT 10**8
    assert forged != pickled and pickle.loads(forged) == {"a": [1.0, 2.0]}  # the unpickler itself accepts it
    path = tmp_path / "forged.pyth"
    if target == "data.pkl":
        hf.write_zip(path, None, data_pkl=forged, extra_members=[("archive/data/0", VALID["storage"])])
    else:  # the hypothesis-found case: one inserted zero byte turned a BINPUT into a huge LONG_BINPUT
        path.write_bytes(_mutate(VALID["legacy"], [(487, 0, "insert")], None))
    outcome, peak = _peak_bytes(torch_checkpoint.load, str(path))
    assert isinstance(outcome, InvalidFileError) and "memo index" in outcome.reason, outcome
    assert peak < 16 << 20, f"peak {peak:,} bytes"
