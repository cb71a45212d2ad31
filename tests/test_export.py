"""Export for serving: TF Serving SavedModel (two signatures), TFLite, ONNX; parity and bad input."""

import io
import os
from collections import Counter

import keras
import numpy as np
import pytest
from conftest import require
import tensorflow as tf
from PIL import Image

from keras_regnet import export as ex
from keras_regnet.atomic import current_umask
from keras_regnet import get_model
from keras_regnet.cli.main import main
from keras_regnet.architecture.layers import GroupedConv2D
from keras_regnet.architecture.preprocessing import imagenet_classes

RNG = np.random.default_rng(0)


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def model():
    """RegNetY-200MF (grouped convs + SE) with random weights and random BN statistics."""
    keras.utils.set_random_seed(0)
    net = get_model("RegNetY-200MF")
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(RNG.normal(0, 0.1, c).astype("float32"))
            layer.moving_variance.assign(RNG.uniform(0.5, 1.5, c).astype("float32"))
    return net


@pytest.fixture(scope="module")
def images():
    return RNG.uniform(0, 255, (3, 224, 224, 3)).astype("float32")


def conv_layer_counts(net):
    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    return len(convs), sum(isinstance(layer, GroupedConv2D) and layer.groups > 1 for layer in convs)


def encoded(shape, fmt):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, shape + (3,), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


# ---------------------------------------------------------------- SavedModel


def test_saved_model_for_tf_serving(model, images, tmp_path):
    pycls_transforms = require("pycls.datasets.transforms")
    base = tmp_path / "regnet"
    path = ex.export_saved_model(model, str(base), top_k=3)
    assert path == str(base / "1")
    assert {"saved_model.pb", "variables"} <= set(os.listdir(path))  # TF Serving's MODEL_DIR/VERSION layout
    # Readable by a server running as another user (not mkdtemp's 0700).
    assert os.stat(path).st_mode & 0o777 == 0o777 & ~current_umask()

    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", ex.BYTES_SIGNATURE}
    expected = model.predict_on_batch(images)
    for batch in (images, images[:1]):  # any batch size
        out = loaded.signatures["serving_default"](images=tf.constant(batch))
        assert rel_err(out["predictions"], expected[: len(batch)]) < 1e-5

    # Encoded bytes: decode, pycls's eval transform, predict, top-k.
    blobs = [encoded((300, 400), "JPEG"), encoded((500, 333), "PNG"), encoded((224, 224), "JPEG")]
    out = loaded.signatures[ex.BYTES_SIGNATURE](image_bytes=tf.constant(blobs))
    decoded = [tf.io.decode_image(b, channels=3).numpy() for b in blobs]
    crops = np.stack([pycls_transforms.center_crop(224, pycls_transforms.scale(256, d.astype(np.float32))) for d in decoded])
    probs = model.predict_on_batch(crops)
    top = np.argsort(-probs, axis=1)[:, :3]
    np.testing.assert_array_equal(out["classes"].numpy(), top)
    np.testing.assert_allclose(out["probabilities"].numpy(), np.take_along_axis(probs, top, 1), rtol=1e-3, atol=1e-6)
    names = [name for _, name in imagenet_classes()]
    assert [n.decode() for n in out["class_names"].numpy()[0]] == [names[i] for i in top[0]]

    # The next export is version 2; an existing version is refused unless overwrite.
    assert ex.export_saved_model(model, str(base), top_k=1) == str(base / "2")
    with pytest.raises(FileExistsError, match="overwrite"):
        ex.export_saved_model(model, str(base), version=1)
    assert ex.export_saved_model(model, str(base), version="1", overwrite=True) == str(base / "1")
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary directories left


def test_saved_model_bad_input(model, tmp_path):
    for version in ("abc", 0, -1, "1.5", True):
        with pytest.raises(ValueError, match="version must be a positive integer"):
            ex.export_saved_model(model, str(tmp_path), version=version)
    with pytest.raises(ValueError, match="top_k must be an integer in"):
        ex.export_saved_model(model, str(tmp_path), top_k=0)
    with pytest.raises(ValueError, match="class_names has 2 entries"):
        ex.export_saved_model(model, str(tmp_path), class_names=["a", "b"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        ex.export_saved_model(model, str(tmp_path / "file"))
    assert os.listdir(tmp_path) == ["file"]


def test_interrupted_export_leaves_no_version_directory(model, tmp_path, monkeypatch):
    def write_then_die(self, filepath, **kwargs):
        with open(os.path.join(filepath, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt  # the process is stopped mid-write

    # ExportArchive() returns a backend-specific subclass: patch that.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        ex.export_saved_model(model, str(tmp_path / "m"), version=3)
    assert os.listdir(tmp_path / "m") == []  # neither "3" nor a temporary directory


# ---------------------------------------------------------------- TFLite


def tflite_run(path, batch):
    interpreter = tf.lite.Interpreter(model_path=path)
    # The model's own ops (after allocation XNNPACK shows as DELEGATE nodes).
    ops = Counter(op["op_name"] for op in interpreter._get_ops_details())
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], batch.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], batch)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), ops


def test_tflite_float32_parity_and_native_grouped_convs(model, images, tmp_path):
    path = ex.export_tflite(model, str(tmp_path / "m.tflite"))
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()  # not mkstemp's 0600
    out, ops = tflite_run(path, images)
    assert rel_err(out, model.predict_on_batch(images)) <= 1e-4
    convs, grouped = conv_layer_counts(model)
    assert grouped > 0
    assert ops["CONV_2D"] == convs  # one native op per (grouped) convolution
    assert not {"SPLIT", "SPLIT_V", "CONCATENATION"} & set(ops)  # no split/concat rewrite
    assert not any(name.startswith(("Flex", "DELEGATE", "CUSTOM")) for name in ops)


@pytest.mark.parametrize("quantization, max_size_ratio", [("float16", 0.55), ("dynamic_int8", 0.3)])
def test_tflite_quantized(model, images, tmp_path, quantization, max_size_ratio):
    fp32 = ex.export_tflite(model, str(tmp_path / "fp32.tflite"))
    path = ex.export_tflite(model, str(tmp_path / f"{quantization}.tflite"), quantization=quantization)
    assert os.path.getsize(path) < max_size_ratio * os.path.getsize(fp32)
    out, _ = tflite_run(path, images)
    expected = model.predict_on_batch(images)
    # Quantized weights change the numbers a little, not the ranking's top.
    assert rel_err(out, expected) < (1e-2 if quantization == "float16" else 0.2)
    assert np.corrcoef(out.ravel(), expected.ravel())[0, 1] > 0.9


def test_tflite_bad_input(model, tmp_path):
    with pytest.raises(ValueError, match="quantization must be one of"):
        ex.export_tflite(model, str(tmp_path / "m.tflite"), quantization="int4")
    with pytest.raises(ValueError, match="must end with '.tflite'"):
        ex.export_tflite(model, str(tmp_path / "m.tfl"))
    (tmp_path / "m.tflite").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite"):
        ex.export_tflite(model, str(tmp_path / "m.tflite"))
    assert (tmp_path / "m.tflite").read_bytes() == b"old"


# ---------------------------------------------------------------- ONNX


def test_onnx_parity_and_native_grouped_convs(model, images, tmp_path):
    ort = require("onnxruntime")
    onnx = require("onnx")
    path = ex.export_onnx(model, str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()  # the preprocessing constants are folded in, not inputs
    for batch in (images, images[:1]):
        (out,) = session.run(None, {inp.name: batch})
        assert rel_err(out, model.predict_on_batch(batch)) <= 1e-4
    graph = onnx.load(path).graph
    ops = Counter(node.op_type for node in graph.node)
    convs, grouped = conv_layer_counts(model)
    assert ops["Conv"] == convs
    groups = [a.i for node in graph.node if node.op_type == "Conv" for a in node.attribute if a.name == "group"]
    assert sum(g > 1 for g in groups) == grouped
    assert not {"Split", "Concat"} & set(ops)


def test_onnx_refuses_a_tf2onnx_that_fails_on_numpy_2(model, tmp_path, monkeypatch):
    tf2onnx = require("tf2onnx")
    monkeypatch.setattr(tf2onnx, "__version__", "1.16.1")  # folds Cast with np.cast, gone in numpy 2
    with pytest.raises(ImportError, match=r"needs tf2onnx>=1.17 .*found 1.16.1"):
        ex.export_onnx(model, str(tmp_path / "m.onnx"))
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- CLI


def test_cli_export_onnx_and_errors(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export", "--model", "RegNetX-200MF", "--weights", "none", "--format", "onnx",
                 "--output", str(out), "--image-size", "96"]) == 0
    assert out.stat().st_size > 1_000_000 and "wrote" in capsys.readouterr().out
    cases = [
        (["--format", "pytorch", "--output", str(tmp_path / "y")], "format must be one of ('saved_model', 'tflite', 'onnx')"),
        (["--format", "onnx", "--output", str(out)], "exists; pass overwrite=True (--overwrite)"),
        (["--format", "saved_model", "--output", str(tmp_path / "sm"), "--version", "v1"], "version must be a positive integer"),
        (["--format", "tflite", "--output", str(tmp_path / "z.onnx")], "must end with '.tflite'"),
    ]
    for extra, message in cases:
        assert main(["export", "--model", "RegNetX-200MF", "--weights", "none"] + extra) == 2
        assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["x.onnx"]
