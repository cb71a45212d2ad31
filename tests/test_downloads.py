"""Downloads and the weights cache under hostile conditions, against a loopback server.

Slow, stalled, erroring and lying servers; files in the cache that changed
or were planted; trust on first use where no checksum is published.
"""

import hashlib
import os
import time

import h5py
import hostile_files as hf
import numpy as np
import pycls_reference as pr
import pytest

import keras_regnet
from keras_regnet.weights import resolve as weights_lib
from keras_regnet.weights.download import DownloadError
from keras_regnet.errors import InvalidFileError, UnsafeFileError

NAME = "RegNetX-200MF"
FILE = "RegNetX-200MF_dds_8gpu.pyth"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch_model = pr.pycls_model(keras_regnet.published_models()[NAME].config, seed=3)
    path = tmp_path_factory.mktemp("ck") / FILE
    pr.torch.save({"epoch": 100, "model_state": torch_model.state_dict()}, path)
    return path.read_bytes()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models" / "keras_regnet"


def _serve(monkeypatch, server, body, sha256=None, **behaviour):
    """Point the manifest's pycls entry for NAME at the server, which serves ``body``."""
    entries = {n: {src: dict(e) for src, e in srcs.items()} for n, srcs in weights_lib.manifest().items()}
    server.files["/" + FILE] = body
    if behaviour:
        server.behaviour["/" + FILE] = behaviour
    entries[NAME]["pycls"].update(url=server.url("/" + FILE), sha256=sha256)
    monkeypatch.setattr(weights_lib, "manifest", lambda: entries)


def _files(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@pytest.mark.parametrize(
    "behaviour, limits, message",
    [
        ({"stall_after": 1000}, {"KERAS_REGNET_DOWNLOAD_TIMEOUT": "1"}, r"stalled: no data for 1 s"),
        (
            {"trickle": 0.01},
            {"KERAS_REGNET_DOWNLOAD_TIMEOUT": "5", "KERAS_REGNET_DOWNLOAD_DEADLINE": "1"},
            r"did not finish within 1 s .*KERAS_REGNET_DOWNLOAD_DEADLINE",
        ),
    ],
    ids=["stalled", "trickling"],
)
def test_slow_servers_hit_a_deadline(server, checkpoint, cache, monkeypatch, behaviour, limits, message):
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    _serve(monkeypatch, server, checkpoint, **behaviour)
    start = time.monotonic()
    with pytest.raises(DownloadError, match=message):
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert time.monotonic() - start < 15
    assert _files(cache) == []


def test_bad_deadline_setting_is_named(server, checkpoint, cache, monkeypatch):
    monkeypatch.setenv("KERAS_REGNET_DOWNLOAD_DEADLINE", "soon")
    _serve(monkeypatch, server, checkpoint)
    with pytest.raises(ValueError, match=r"KERAS_REGNET_DOWNLOAD_DEADLINE must be a positive number of seconds; got .*'soon'"):
        keras_regnet.RegNetX200MF(weights="imagenet")


def test_server_error(server, checkpoint, cache, monkeypatch):
    _serve(monkeypatch, server, checkpoint, status=500)
    with pytest.raises(DownloadError, match=r"HTTP 500"):
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert _files(cache) == []


def test_short_content_length_without_checksum_is_refused_not_cached(server, checkpoint, cache, monkeypatch):
    # The server declares half the length: the client stops there, and with no published
    # checksum only parsing the file before it enters the cache catches the damage.
    _serve(monkeypatch, server, checkpoint, declared_length=len(checkpoint) // 2)
    with pytest.raises(InvalidFileError, match=r"the downloaded file was refused and not kept") as err:
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert err.value.path == server.url("/" + FILE)
    assert _files(cache) == []


def test_trust_on_first_use(server, checkpoint, cache, monkeypatch):
    _serve(monkeypatch, server, checkpoint)
    digest = hashlib.sha256(checkpoint).hexdigest()
    model = keras_regnet.RegNetX200MF(weights="imagenet")
    assert _files(cache) == [FILE, FILE + ".sha256", "RegNetX200MF_pycls.weights.h5"]
    assert (cache / (FILE + ".sha256")).read_text() == f"{digest}  {FILE}\n"  # sha256sum -c format
    with h5py.File(cache / "RegNetX200MF_pycls.weights.h5") as f:
        assert f.attrs[weights_lib.SOURCE_SHA256_ATTR] == digest

    # The checkpoint changes on disk: refused, with the recorded and the actual hash.
    (cache / "RegNetX200MF_pycls.weights.h5").unlink()
    tampered = checkpoint[:-1] + bytes([checkpoint[-1] ^ 1])
    (cache / FILE).write_bytes(tampered)
    with pytest.raises(InvalidFileError, match=r"trust on first use") as err:
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert digest in str(err.value) and hashlib.sha256(tampered).hexdigest() in str(err.value)

    # Deleted, and the server now serves other bytes: the re-download must match the record.
    (cache / FILE).unlink()
    server.files["/" + FILE] = tampered
    with pytest.raises(DownloadError, match=f"expected SHA-256 {digest}"):
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert _files(cache) == [FILE + ".sha256"]

    # The right bytes again: converted, and the converted entry is used next time without a request.
    server.files["/" + FILE] = checkpoint
    again = keras_regnet.RegNetX200MF(weights="imagenet")
    requests = len(server.requests)
    cached = keras_regnet.RegNetX200MF(weights="imagenet")
    assert len(server.requests) == requests
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(cached.predict_on_batch(x), model.predict_on_batch(x))
    np.testing.assert_array_equal(again.predict_on_batch(x), model.predict_on_batch(x))


def test_converted_entry_from_another_source_is_converted_again(server, checkpoint, cache, monkeypatch):
    _serve(monkeypatch, server, checkpoint)
    reference = keras_regnet.RegNetX200MF(weights="imagenet")
    converted = cache / "RegNetX200MF_pycls.weights.h5"
    # A converted entry that does not carry the trusted file's hash (planted, or from an older
    # version) holding other weights: not used; converted again from the checkpoint.
    keras_regnet.RegNetX200MF().save_weights(converted)
    model = keras_regnet.RegNetX200MF(weights="imagenet")
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict_on_batch(x), reference.predict_on_batch(x))
    with h5py.File(converted) as f:
        assert f.attrs[weights_lib.SOURCE_SHA256_ATTR] == hashlib.sha256(checkpoint).hexdigest()


def test_planted_hostile_checkpoint_in_the_cache(server, cache, monkeypatch, tmp_path):
    marker = tmp_path / "MARKER"
    cache.mkdir(parents=True)
    evil = hf.main_object_positions(hf.payloads(str(marker))["os.system"])["state-dict value"]
    hf.write_legacy(cache / FILE, evil)
    _serve(monkeypatch, server, b"unused")
    with pytest.raises(UnsafeFileError, match=r"posix\.system|os\.system"):
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert not marker.exists()
    assert server.requests == []
    assert _files(cache) == [FILE]  # no hash recorded for it, nothing converted


def test_hostile_download_is_refused_and_not_kept(server, cache, monkeypatch, tmp_path):
    marker = tmp_path / "MARKER"
    evil = hf.write_zip(tmp_path / "evil.pyth", hf.main_object_positions(hf.payloads(str(marker))["builtins.exec"])["top"])
    _serve(monkeypatch, server, evil.read_bytes())
    with pytest.raises(UnsafeFileError, match=r"(__builtin__|builtins)\.exec"):
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert not marker.exists()
    assert _files(cache) == []


def test_record_weight_hashes_tool(server, checkpoint, tmp_path):
    import json
    import subprocess
    import sys

    from importlib import resources

    manifest = json.loads((resources.files("keras_regnet.weights") / "manifest.json").read_text())
    server.files["/a.pyth"] = checkpoint
    server.files["/b.pyth"] = b"other bytes"
    manifest["models"]["RegNetX-200MF"]["pycls"]["url"] = server.url("/a.pyth")
    manifest["models"]["RegNetX-400MF"]["pycls"]["url"] = server.url("/b.pyth")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    tool = os.path.join(os.path.dirname(__file__), "..", "weights", "record_hashes.py")
    proc = subprocess.run(
        [sys.executable, tool, "--manifest", str(path), "--source", "pycls", "--models", "RegNetX-200MF,RegNetX-400MF"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    updated = json.loads(path.read_text())["models"]
    assert updated["RegNetX-200MF"]["pycls"]["sha256"] == hashlib.sha256(checkpoint).hexdigest()
    assert updated["RegNetX-400MF"]["pycls"]["sha256"] == hashlib.sha256(b"other bytes").hexdigest()
    assert updated["RegNetX-600MF"]["pycls"]["sha256"] is None  # not asked for
    assert "RegNetX-200MF" in proc.stdout
