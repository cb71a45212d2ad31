"""weights='imagenet': download, checksum, conversion and cache, against a loopback server.

The server (127.0.0.1, random port) serves a pycls-style checkpoint that the
test makes from a randomised pycls model; the manifest's URL is pointed at it.
"""

import hashlib
import socket

import numpy as np
import pytest
from conftest import require

import keras_regnet
from keras_regnet.weights import resolve as weights_lib
from keras_regnet.weights.download import DownloadError

pr = require("pycls_reference")
NAME = "RegNetX-200MF"


@pytest.fixture
def checkpoint(tmp_path_factory):
    """(bytes of a pycls checkpoint of RegNetX-200MF, the pycls model)."""
    torch_model = pr.pycls_model(keras_regnet.published_models()[NAME].config, seed=5)
    path = tmp_path_factory.mktemp("ck") / "RegNetX-200MF_dds_8gpu.pyth"
    pr.torch.save({"epoch": 100, "model_state": torch_model.state_dict()}, path)
    return path.read_bytes(), torch_model


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "models" / "keras_regnet"


def _point_manifest(monkeypatch, url, sha256):
    entries = {name: {src: dict(e) for src, e in srcs.items()} for name, srcs in weights_lib.manifest().items()}
    entries[NAME]["pycls"].update(url=url, sha256=sha256)
    monkeypatch.setattr(weights_lib, "manifest", lambda: entries)


def test_download_convert_cache(server, checkpoint, keras_home, monkeypatch):
    data, torch_model = checkpoint
    server.files["/pycls/RegNetX-200MF_dds_8gpu.pyth"] = data
    _point_manifest(monkeypatch, server.url("/pycls/RegNetX-200MF_dds_8gpu.pyth"), hashlib.sha256(data).hexdigest())
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    expected = pr.pycls_logits(torch_model, x)

    model = keras_regnet.RegNetX200MF(weights="imagenet", classifier_activation=None)
    assert len(server.requests) == 1
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=1e-4, atol=1e-4)
    cached = keras_home / "RegNetX200MF_pycls.weights.h5"
    assert cached.is_file() and (keras_home / "RegNetX-200MF_dds_8gpu.pyth").is_file()
    assert not list(keras_home.glob("*.part")) and not list(keras_home.glob(".tmp-*"))

    # Second call: the converted cache, no request.
    again = keras_regnet.get_model("RegNetX-200MF", weights="imagenet:pycls", classifier_activation=None)
    assert len(server.requests) == 1
    np.testing.assert_array_equal(again.predict_on_batch(x), model.predict_on_batch(x))

    # Without the top: converted from the cached checkpoint, still no request.
    backbone = keras_regnet.RegNetX200MF(weights="imagenet", include_top=False, pooling="avg")
    assert len(server.requests) == 1
    assert (keras_home / "RegNetX200MF_pycls_notop.weights.h5").is_file()
    np.testing.assert_allclose(
        backbone.get_layer("s4_b7_c_conv").kernel.numpy(), model.get_layer("s4_b7_c_conv").kernel.numpy()
    )


def test_checksum_mismatch_caches_nothing(server, checkpoint, keras_home, monkeypatch):
    server.files["/ck.pyth"] = checkpoint[0]
    _point_manifest(monkeypatch, server.url("/ck.pyth"), "0" * 64)
    with pytest.raises(DownloadError, match=r"Checksum mismatch for http://127\.0\.0\.1:\d+/ck\.pyth"):
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert list(keras_home.iterdir()) == []


def test_truncated_download_caches_nothing(server, checkpoint, keras_home, monkeypatch):
    server.files["/ck.pyth"] = checkpoint[0]
    server.truncate.add("/ck.pyth")
    _point_manifest(monkeypatch, server.url("/ck.pyth"), None)
    with pytest.raises(DownloadError, match=r"(truncated|interrupted)"):
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert list(keras_home.iterdir()) == []


def test_404(server, keras_home, monkeypatch):
    _point_manifest(monkeypatch, server.url("/missing.pyth"), None)
    with pytest.raises(DownloadError, match=r"missing\.pyth failed: HTTP 404"):
        keras_regnet.RegNetX200MF(weights="imagenet")
    assert list(keras_home.iterdir()) == []


def test_no_network_names_url_and_where_to_place_the_file(keras_home, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/RegNetX-200MF_dds_8gpu.pyth"
    _point_manifest(monkeypatch, url, None)
    with pytest.raises(DownloadError) as err:
        keras_regnet.RegNetX200MF(weights="imagenet")
    message = str(err.value)
    assert f"Could not download {url}" in message
    assert str(keras_home / "RegNetX-200MF_dds_8gpu.pyth") in message


def test_file_placed_by_hand_is_used_and_checked(checkpoint, keras_home, monkeypatch):
    data, torch_model = checkpoint
    keras_home.mkdir(parents=True)
    (keras_home / "RegNetX-200MF_dds_8gpu.pyth").write_bytes(data)
    _point_manifest(monkeypatch, "http://127.0.0.1:9/RegNetX-200MF_dds_8gpu.pyth", hashlib.sha256(data).hexdigest())
    model = keras_regnet.RegNetX200MF(weights="imagenet", classifier_activation=None)
    x = np.random.default_rng(1).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(model.predict_on_batch(x), pr.pycls_logits(torch_model, x), rtol=1e-4, atol=1e-4)

    (keras_home / "RegNetX200MF_pycls.weights.h5").unlink()
    _point_manifest(monkeypatch, "http://127.0.0.1:9/RegNetX-200MF_dds_8gpu.pyth", "f" * 64)
    with pytest.raises(ValueError, match="does not match the published checksum"):
        keras_regnet.RegNetX200MF(weights="imagenet")


def test_imagenet_argument_errors():
    with pytest.raises(ValueError, match=r"include_top=True has a 1000-class ImageNet classifier; got classes=10"):
        keras_regnet.RegNetY800MF(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match=r"Unknown weights source in weights='imagenet:timm'"):
        keras_regnet.RegNetY800MF(weights="imagenet:timm")


def test_tf_keras_source_top_and_notop_files(server, keras_home, monkeypatch, tmp_path):
    tf_keras = require("tf_keras")
    top, notop = tmp_path / "top.h5", tmp_path / "notop.h5"
    reference = tf_keras.applications.RegNetX002(weights=None)
    reference.save_weights(str(top))
    tf_keras.applications.RegNetX002(weights=None, include_top=False).save_weights(str(notop))
    server.files["/regnetx002.h5"] = top.read_bytes()
    server.files["/regnetx002_notop.h5"] = notop.read_bytes()
    entries = {n: {src: dict(e) for src, e in srcs.items()} for n, srcs in weights_lib.manifest().items()}
    entries[NAME]["tf-keras"].update(
        url=server.url("/regnetx002.h5"), sha256=hashlib.sha256(top.read_bytes()).hexdigest(),
        url_notop=server.url("/regnetx002_notop.h5"), sha256_notop=hashlib.sha256(notop.read_bytes()).hexdigest(),
    )
    monkeypatch.setattr(weights_lib, "manifest", lambda: entries)

    model = keras_regnet.RegNetX200MF(weights="imagenet:tf-keras", classifier_activation=None)
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    expected = reference.predict_on_batch(x)
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=1e-4, atol=1e-4)
    backbone = keras_regnet.RegNetX200MF(weights="imagenet:tf-keras", include_top=False)
    assert server.requests == ["/regnetx002.h5", "/regnetx002_notop.h5"]
    assert type(backbone.get_layer("preprocessing")).__name__ == "Rescaling"
    assert sorted(p.name for p in keras_home.glob("*.weights.h5")) == [
        "RegNetX200MF_tf-keras.weights.h5", "RegNetX200MF_tf-keras_notop.weights.h5"
    ]
    # The cache hit rebuilds the tf-keras variant too.
    cached = keras_regnet.RegNetX200MF(weights="imagenet:tf-keras", classifier_activation=None)
    np.testing.assert_allclose(cached.predict_on_batch(x), expected, rtol=1e-4, atol=1e-4)
    assert len(server.requests) == 2


def test_torchvision_source_checks_the_hash_prefix_in_the_file_name(server, keras_home, monkeypatch, tmp_path):
    # A torchvision-format state dict (keys renamed from a pycls model; the
    # mapping itself is checked against torchvision by tools/check_torchvision_parity.py).
    from keras_regnet.weights.convert import torch_module_name

    name = "RegNetY-400MF"
    torch_model = pr.pycls_model(keras_regnet.published_models()[name].config)
    keras_model = keras_regnet.get_model(name)
    rename = {}
    for layer in keras_model.layers:
        if layer.weights:
            rename[torch_module_name(layer.name, "pycls")] = torch_module_name(layer.name, "torchvision")
    state = {}
    for key, value in torch_model.state_dict().items():
        module, _, param = key.rpartition(".")
        state[f"{rename[module]}.{param}"] = value
    path = tmp_path / "regnet_y_400mf.pth"
    pr.torch.save(state, path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    server.files["/regnet_y_400mf-x.pth"] = data
    entries = {n: {src: dict(e) for src, e in srcs.items()} for n, srcs in weights_lib.manifest().items()}
    monkeypatch.setattr(weights_lib, "manifest", lambda: entries)

    entries[name]["torchvision-v2"].update(url=server.url("/regnet_y_400mf-x.pth"), sha256_prefix="00000000")
    with pytest.raises(DownloadError, match=r"expected a SHA-256 starting with 00000000"):
        keras_regnet.get_model(name, weights="imagenet:torchvision-v2")
    assert list(keras_home.iterdir()) == []

    entries[name]["torchvision-v2"].update(sha256_prefix=digest[:8])
    model = keras_regnet.get_model(name, weights="imagenet:torchvision-v2")
    expected = torch_model.s2.b1.f.b.weight.detach().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.get_layer("s2_b1_b_conv").kernel.numpy(), expected)
    # torchvision models see RGB: the stem is not flipped.
    np.testing.assert_array_equal(
        model.get_layer("stem_conv").kernel.numpy(), torch_model.stem.conv.weight.detach().numpy().transpose(2, 3, 1, 0)
    )
    assert (keras_home / "RegNetY400MF_torchvision-v2.weights.h5").is_file()
