"""The REST round trip a TF Serving user makes, end to end, against the exported SavedModel's signatures.

A RegNet is exported with ``export_saved_model`` and served by
tests/tf_serving_rest.py, an emulator of TF Serving's documented REST API
(https://www.tensorflow.org/tfx/serving/api_rest): ``tensorflow_model_server``
cannot be installed here. The client side is what a user writes: JSON over
``urllib.request``, images base64-encoded as ``{"b64": ...}``, nothing from
keras_regnet. Answers are compared with a direct call of the loaded signature
and with the Keras model itself.
"""

import base64
import json
import shutil
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_regnet
from keras_regnet.data import augment, transforms_tf
from keras_regnet.data.cifar10 import embedded_cifar10_jpegs
from keras_regnet.export import export_saved_model
from tf_serving_rest import TFServingREST

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TOP_K = 5
NUM_IMAGES = 32


# ---------------------------------------------------------------- what the tests share


def cifar_jpegs(n: int = NUM_IMAGES):
    """``n`` real CIFAR-10 images as their JPEG bytes (the embedded validation split), and the class names."""
    files, _, classes = embedded_cifar10_jpegs("validation")
    return files[:: len(files) // n][:n], classes


def build_model():
    """RegNetX-200MF for 32x32 CIFAR-10, seed 0, classifier kernel scaled so top-k ranks are far apart."""
    keras.utils.set_random_seed(0)
    model = keras_regnet.RegNetX200MF(input_shape=(32, 32, 3), classes=10)
    head = model.get_layer("predictions")
    # At initialisation the softmax is ~0.1 everywhere (gaps ~1e-6); a wider
    # spread makes "same top-k" a real check rather than a tie-break.
    head.kernel.assign(head.kernel * 100.0)
    return model


def request(url: str, payload=None, body: bytes = None):
    """``(HTTP status, JSON answer)`` of a GET (no payload) or a JSON POST, as any HTTP client sends it."""
    if payload is not None:
        body = json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            assert response.headers["Content-Type"] == "application/json"
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            assert error.headers["Content-Type"] == "application/json"
            return error.code, json.load(error)


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


def keras_top_k(model, jpegs):
    """The Keras model's top-k on the JPEGs decoded as the signature decodes them and given the model's eval transform."""
    transform = model.model_info.eval_transform
    images = np.stack([augment.eval_image(transforms_tf, transforms_tf.decode_image(j), 32, transform).numpy() for j in jpegs])
    probabilities = model.predict(images, verbose=0)
    classes = np.argsort(-probabilities, axis=1, kind="stable")[:, :TOP_K]
    return classes, np.take_along_axis(probabilities, classes, axis=1)


@pytest.fixture(scope="module")
def cifar():
    return cifar_jpegs()


@pytest.fixture(scope="module")
def model():
    return build_model()


@pytest.fixture(scope="module")
def model_dir(model, cifar, tmp_path_factory):
    """The model exported once for the module: ``.../regnet/1``."""
    base = tmp_path_factory.mktemp("serving") / "regnet"
    export_saved_model(model, str(base), class_names=cifar[1], top_k=TOP_K)
    return base


@pytest.fixture
def tf_serving(model_dir):
    """The emulated model server on ``model_dir`` as model ``regnet``, closed after the test."""
    server = TFServingREST(model_dir, model_name="regnet")
    yield server
    server.close()


# ---------------------------------------------------------------- the round trip


def test_jpeg_bytes_round_trip_matches_the_signature_and_keras(tf_serving, model, model_dir, cifar):
    jpegs, class_names = cifar
    assert class_names == CIFAR10_CLASSES
    status, answer = request(
        tf_serving.url("/v1/models/regnet:predict"),
        {"signature_name": "serving_bytes", "instances": [{"image_bytes": b64(j)} for j in jpegs]},
    )
    assert status == 200 and list(answer) == ["predictions"]
    rows = answer["predictions"]
    assert len(rows) == NUM_IMAGES and all(set(row) == {"classes", "class_names", "probabilities"} for row in rows)
    classes = np.array([row["classes"] for row in rows])
    probabilities = np.array([row["probabilities"] for row in rows], dtype=np.float32)
    assert classes.shape == probabilities.shape == (NUM_IMAGES, TOP_K)
    assert [row["class_names"] for row in rows] == [[CIFAR10_CLASSES[c] for c in row] for row in classes]

    # The same bytes through the loaded signature, as the server calls it.
    direct = tf.saved_model.load(str(model_dir / "1")).signatures["serving_bytes"](image_bytes=tf.constant(jpegs))
    np.testing.assert_array_equal(classes, direct["classes"].numpy())
    np.testing.assert_allclose(probabilities, direct["probabilities"].numpy(), rtol=0, atol=1e-6)

    # The Keras model on the same images.
    keras_classes, keras_probabilities = keras_top_k(model, jpegs)
    np.testing.assert_array_equal(classes, keras_classes)
    np.testing.assert_allclose(probabilities, keras_probabilities, rtol=0, atol=1e-6)
    assert np.all(np.diff(probabilities, axis=1) <= 0) and probabilities[:, 0].min() > 0.15  # ranked, not ~uniform (0.1)

    # A single named input may also be given bare: a list of {"b64": ...} values.
    status, bare = request(
        tf_serving.url("/v1/models/regnet:predict"),
        {"signature_name": "serving_bytes", "instances": [b64(j) for j in jpegs[:3]]},
    )
    assert status == 200 and bare["predictions"] == rows[:3]


def test_pixels_row_and_columnar_match_model_predict(tf_serving, model, cifar):
    pixels = np.stack([tf.io.decode_jpeg(j, channels=3).numpy() for j in cifar[0][:4]])  # uint8 (4, 32, 32, 3)
    expected = model.predict(pixels.astype(np.float32), verbose=0)
    nested = pixels.tolist()  # JSON numbers; TF Serving takes whole numbers for DT_FLOAT

    status, row = request(tf_serving.url("/v1/models/regnet:predict"), {"instances": nested})
    assert status == 200 and list(row) == ["predictions"]
    np.testing.assert_allclose(np.array(row["predictions"], np.float32), expected, rtol=0, atol=1e-6)

    for inputs in ({"images": nested}, nested):  # named, or the one input bare
        status, columnar = request(
            tf_serving.url("/v1/models/regnet/versions/1:predict"),
            {"signature_name": "serving_default", "inputs": inputs},
        )
        assert status == 200 and list(columnar) == ["outputs"]
        np.testing.assert_allclose(np.array(columnar["outputs"], np.float32), expected, rtol=0, atol=1e-6)
    assert columnar["outputs"] == row["predictions"]  # one output: the bare tensor either way


def test_model_status_and_metadata(tf_serving):
    available = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    for path in ("/v1/models/regnet", "/v1/models/regnet/versions/1"):
        assert request(tf_serving.url(path)) == (200, {"model_version_status": [available]})

    status, metadata = request(tf_serving.url("/v1/models/regnet/metadata"))
    assert status == 200
    assert metadata["model_spec"] == {"name": "regnet", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "serving_bytes"} <= set(signatures)

    def tensors(signature, side):
        return {
            name: (info["dtype"], [int(d["size"]) for d in info["tensor_shape"]["dim"]])
            for name, info in signatures[signature][side].items()
        }

    assert tensors("serving_default", "inputs") == {"images": ("DT_FLOAT", [-1, 32, 32, 3])}
    assert tensors("serving_default", "outputs") == {"predictions": ("DT_FLOAT", [-1, 10])}
    assert tensors("serving_bytes", "inputs") == {"image_bytes": ("DT_STRING", [-1])}
    assert tensors("serving_bytes", "outputs") == {
        "classes": ("DT_INT32", [-1, TOP_K]),
        "class_names": ("DT_STRING", [-1, TOP_K]),
        "probabilities": ("DT_FLOAT", [-1, TOP_K]),
    }
    assert signatures["serving_bytes"]["method_name"] == "tensorflow/serving/predict"
    assert request(tf_serving.url("/v1/models/regnet/versions/1/metadata")) == (200, metadata)


def test_only_the_latest_version_is_served_by_default(model_dir, tmp_path):
    base = tmp_path / "regnet"
    for version in ("1", "2"):
        shutil.copytree(model_dir / "1", base / version)
    payload = {"inputs": np.zeros((1, 32, 32, 3)).tolist()}
    server = TFServingREST(base, model_name="regnet")
    try:
        assert [v["version"] for v in request(server.url("/v1/models/regnet"))[1]["model_version_status"]] == ["2"]
        assert request(server.url("/v1/models/regnet/versions/2:predict"), payload)[0] == 200
        assert request(server.url("/v1/models/regnet/versions/1:predict"), payload) == (
            404, {"error": "Servable not found for request: Specific(regnet, 1)"}
        )
        assert request(server.url("/v1/models/regnet/versions/1")) == (
            404, {"error": "Could not find version 1 of model regnet"}
        )
    finally:
        server.close()


def test_errors_answer_400_or_404_with_an_error_message(tf_serving):
    predict = tf_serving.url("/v1/models/regnet:predict")
    image = np.zeros((32, 32, 3)).tolist()
    cases = [  # (url, body, HTTP status, part of the error message)
        (predict, b"{not json", 400, "JSON Parse error:"),
        (predict, b"", 400, "JSON Parse error: The document is empty"),
        (predict, b"[1, 2]", 400, "JSON Value: [1,2] Is not object"),
        (predict, {"signature_name": "nope", "instances": [image]}, 400,
         'Serving signature name: "nope" not found in signature def'),
        (predict, {"instances": [{"pixels": image}]}, 400,
         "Failed to process element: 0 key: pixels of 'instances' list. Error: INVALID_ARGUMENT: "
         "JSON object: does not have named input: pixels"),
        (predict, {"inputs": {"pixels": [image]}}, 400, "Missing named input: images in 'inputs' object."),
        (predict, {"instances": [image], "inputs": [image]}, 400, "JSON Value: "),
        (predict, {"signature_name": "serving_default"}, 400, "Missing 'inputs' or 'instances' key"),
        (predict, {"instances": [image, image[:5]]}, 400, "Failed to process element: 1 of 'instances' list. "
         "Error: INVALID_ARGUMENT: Expecting tensor size: 3072 but got: 480"),
        (predict, {"instances": ["cat.jpg"]}, 400, "Failed to process element: 0 of 'instances' list. Error: "
         'INVALID_ARGUMENT: JSON Value: "cat.jpg" Type: String is not of expected type: float'),
        (predict, {"signature_name": "serving_bytes", "instances": [{"b64": "***"}]}, 400, "Unable to base64 decode"),
        (predict, {"signature_name": "serving_bytes", "instances": [b64(b"not an image")]}, 400,
         "Unknown image file format"),  # from the decoder in the graph
        (tf_serving.url("/v1/models/nope:predict"), {"instances": [image]}, 404,
         "Servable not found for request: Latest(nope)"),
        (tf_serving.url("/v1/models/regnet/versions/7:predict"), {"instances": [image]}, 404,
         "Servable not found for request: Specific(regnet, 7)"),
        (tf_serving.url("/v1/models/nope"), None, 404, "Could not find any versions of model nope"),
        (tf_serving.url("/v1/models/regnet/versions/7/metadata"), None, 404,
         "Servable not found for request: Specific(regnet, 7)"),
    ]
    for url, body, expected_status, message in cases:
        if isinstance(body, dict):
            status, answer = request(url, payload=body)
        else:
            status, answer = request(url, body=body)
        assert (status, list(answer)) == (expected_status, ["error"]), (url, body, answer)
        assert message in answer["error"], (body, answer)


def test_outputs_named_bytes_come_back_base64(tmp_path):
    """TF Serving's rule, checked on the emulator: string outputs are text unless the name ends in ``_bytes``."""

    class Echo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data_bytes")])
        def echo(self, data_bytes):
            return {"as_text": data_bytes, "raw_bytes": data_bytes, "length": tf.strings.length(data_bytes)}

    module = Echo()
    tf.saved_model.save(module, str(tmp_path / "echo" / "1"), signatures={"serving_default": module.echo})
    server = TFServingREST(tmp_path / "echo", model_name="echo")
    try:
        url = server.url("/v1/models/echo:predict")
        status, rows = request(url, {"instances": [b64(b"\x00\xffbin"), "text"]})
        assert status == 200
        assert rows == {
            "predictions": [
                {"as_text": "\x00\ufffdbin", "length": 5, "raw_bytes": b64(b"\x00\xffbin")},
                {"as_text": "text", "length": 4, "raw_bytes": b64(b"text")},
            ]
        }
        status, columns = request(url, {"inputs": ["text"]})
        assert (status, columns) == (200, {"outputs": {"as_text": ["text"], "length": [4], "raw_bytes": [b64(b"text")]}})
    finally:
        server.close()
