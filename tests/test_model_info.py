"""A trained model evaluates and serves as itself: ModelInfo in the .keras file, read by evaluate, export, decode.

The trained model is the README's main job scaled down (RegNetX-200MF, the
embedded CIFAR-10 subset, 32x32, stride-1 stem, one epoch).  The images it is
evaluated and served on are the subset's validation split: real CIFAR-10
JPEG files, as the dataset ships them, that training never saw.
"""

import csv
import dataclasses
import io
import json
import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from conftest import require

import keras_regnet
from keras_regnet import evaluation
from keras_regnet import export as ex
from keras_regnet.architecture.model_info import ModelInfo, RegNetModel, model_info
from keras_regnet.architecture.preprocessing import decode_predictions
from keras_regnet.cli.main import main
from keras_regnet.data import augment, transforms_numpy, transforms_tf
from keras_regnet.data.cifar10 import embedded_cifar10_jpegs
from keras_regnet.errors import InvalidFileError
from keras_regnet.safe_io import load_keras_model

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def held_out():
    """The embedded validation split's JPEG files (1,000 real CIFAR-10 images training never saw)."""
    return embedded_cifar10_jpegs("validation")


def keras_top1(model, images):
    return np.argmax(model.predict(np.stack(images), batch_size=250, verbose=0), axis=1)


def tf_decoded(files, size, transform):
    """Decoded with TensorFlow's decoder (the serving signature's) and transformed as the model says."""
    return [augment.eval_image(transforms_tf, transforms_tf.decode_image(f), size, transform).numpy() for f in files]


# ---------------------------------------------------------------- what train() writes


def test_trained_checkpoint_carries_classes_size_transform_and_validation(trained):
    out, results = trained
    for name in ("best.keras", "last.keras"):
        model = load_keras_model(str(out / name))
        info = model.model_info
        assert isinstance(model, RegNetModel)
        assert info.class_names == tuple(CIFAR_CLASSES) and info.dataset == results["data"]
        assert (info.image_size, info.eval_transform, info.weights) == (32, "center_crop", "trained")
        assert info.preprocessing == "imagenet_mean_std" and info.preprocessing_in_model
        assert info.architecture == "custom"  # the stride-1 stem is not the published RegNetX-200MF
    rows = list(csv.DictReader(open(out / "log.csv")))
    validation = load_keras_model(str(out / "best.keras")).model_info.validation
    assert validation["epoch"] == 1 and validation["num_images"] == 1000
    assert validation["top1_err"] == pytest.approx(100 * (1 - float(rows[0]["val_accuracy"])), abs=1e-4)
    assert validation["top5_err"] == pytest.approx(100 * (1 - float(rows[0]["val_top5_accuracy"])), abs=1e-4)


def test_plain_keras_load_model_restores_the_info(trained):
    out, _ = trained
    model = keras.saving.load_model(str(out / "best.keras"))  # keras_regnet is imported
    assert model.model_info == load_keras_model(str(out / "best.keras")).model_info


def test_builders_record_architecture_weights_and_preprocessing():
    info = keras_regnet.RegNetY200MF(input_shape=(64, 64, 3), classes=10).model_info
    assert (info.architecture, info.weights, info.dataset, info.image_size) == ("RegNetY-200MF", "random", None, 64)
    custom = keras_regnet.RegNet(keras_regnet.RegNetConfig(depth=6, w0=24, wa=36.0, wm=2.5, group_width=8), include_preprocessing=False)
    assert custom.model_info.architecture == "custom" and not custom.model_info.preprocessing_in_model


def test_older_keras_file_loads_with_imagenet_defaults():
    """The 0.1.0 file (a plain functional model) loads; its info is today's default."""
    model = load_keras_model(os.path.join(FIXTURES, "keras_regnet-0.1.0.keras"))
    assert not isinstance(model, RegNetModel)
    info = model_info(model)
    assert info.weights == "unknown" and info.eval_transform == "resize_crop" and info.class_names is None
    assert info.image_size == model.input.shape[1]


# ---------------------------------------------------------------- hostile or damaged info


def rewrite_config(src, dst, change):
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    change(config["config"]["keras_regnet_info"])
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return dst


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda i: i.update(eval_transform="__import__('os').system('x')"), "eval_transform must be one of"),
        (lambda i: i.update(class_names=[{"class_name": "Lambda"}]), "Lambda layer, which carries code"),
        (lambda i: i.update(class_names=[1, 2]), "class_names must be"),
        (lambda i: i.update(image_size="224"), "image_size must be"),
        (lambda i: i.update(exec="print(1)"), "unknown entries"),
        (lambda i: i.update(validation={"top1_err": "1; rm"}), "validation"),
    ],
)
def test_malformed_info_is_refused_with_a_clear_error(trained, tmp_path, change, message):
    out, _ = trained
    bad = rewrite_config(out / "best.keras", tmp_path / "bad.keras", change)
    with pytest.raises((InvalidFileError, ValueError), match=message):
        load_keras_model(str(bad))


# ---------------------------------------------------------------- evaluate


def class_folders(root, files, labels, classes):
    for i, (data, label) in enumerate(zip(files, labels)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.jpg").write_bytes(data)
    return root


def test_evaluate_trained_model_on_class_folders_reports_its_own_numbers(trained, held_out, tmp_path):
    out, _ = trained
    files, labels, classes = held_out
    keep = np.isin(labels, [8, 1, 3])  # a subset of the classes: folders map by name, not by position
    root = class_folders(tmp_path / "data", [f for f, k in zip(files, keep) if k], labels[keep], classes)
    model = load_keras_model(str(out / "best.keras"))
    result = evaluation.evaluate(str(out / "best.keras"), data=str(root), batch_size=50, verbose=0)
    # The same count, made here: TensorFlow's decoder, the model's own transform.
    predicted = keras_top1(model, tf_decoded([f for f, k in zip(files, keep) if k], 32, "center_crop"))
    expected = 100 * np.mean(predicted != labels[keep])
    assert result["num_images"] == int(keep.sum()) == 300
    assert result["top1_err"] == pytest.approx(expected, abs=1e-9)
    assert (result["image_size"], result["eval_transform"]) == (32, "center_crop")
    assert result["published_top1_err"] is None and result["top1_err_diff"] is None
    assert result["training_validation"] == dict(model.model_info.validation)
    table = evaluation.markdown_table([result])
    assert "training val top-1 err" in table and "published" not in table


def test_evaluate_refuses_folders_that_are_not_the_models_classes(trained, held_out, tmp_path):
    out, _ = trained
    files, labels, classes = held_out
    root = class_folders(tmp_path / "data", files[:3], labels[:3], ["zebra"] * 10)
    with pytest.raises(ValueError, match=r"folders \['zebra'\] are not among the model's classes \(airplane"):
        evaluation.evaluate(str(out / "best.keras"), data=str(root), verbose=0)


def test_cli_evaluate_prints_training_validation_beside_its_measurement(trained, held_out, tmp_path, capsys):
    out, _ = trained
    files, labels, classes = held_out
    root = class_folders(tmp_path / "data", files[:200], labels[:200], classes)
    assert main(["evaluate", "--model", str(out / "best.keras"), "--data", str(root), "--output-dir", str(tmp_path / "e")]) == 0
    printed = capsys.readouterr().out
    assert "training val top-1 err" in printed and "published" not in printed
    report = json.loads((tmp_path / "e" / "evaluation.json").read_text())[0]
    assert report["training_validation"]["num_images"] == 1000


# ---------------------------------------------------------------- serving and decoding


def bytes_signature(model, tmp_path, **options):
    path = ex.export_saved_model(model, str(tmp_path / "serving"), **options)
    return tf.saved_model.load(path).signatures[ex.BYTES_SIGNATURE]


def test_serving_bytes_uses_the_trained_models_transform_and_names(trained, held_out, tmp_path):
    """Same decoder on both sides: the bytes signature's top-1 equals Keras's on every image."""
    out, _ = trained
    files, _, _ = held_out
    model = load_keras_model(str(out / "best.keras"))
    served = bytes_signature(model, tmp_path)(image_bytes=tf.constant(files))
    top1 = served["classes"].numpy()[:, 0]
    assert np.array_equal(top1, keras_top1(model, tf_decoded(files, 32, "center_crop")))
    names = served["class_names"].numpy()[:, 0].astype(str)
    assert list(names) == [CIFAR_CLASSES[i] for i in top1]
    # Before, the ImageNet resize + crop was applied to these 32x32 images: it changes many answers,
    # so this test fails on the old behaviour.
    old = keras_top1(model, tf_decoded(files, 32, "resize_crop"))
    assert np.mean(old == top1) < 0.995


def image_sensitive_head(model, images, seed=1):
    """A random head over standardised features, so the random model's answers vary with the image.

    At initialisation nearly every image gets the same class (the pooled
    features share one large image-independent part), which would make
    agreement trivial; standardising the features over ``images`` removes it.
    """
    head = model.get_layer("predictions")
    features = keras.Model(model.input, head.input).predict(np.stack(images), verbose=0)
    mean, std = features.mean(0), features.std(0) + 1e-6
    w = np.random.default_rng(seed).normal(0, 1, head.kernel.shape).astype("float32")
    head.kernel.assign(w / std[:, None])
    head.bias.assign(-(mean / std) @ w)
    return model


def resized_jpegs(files, rng):
    """Real images at ImageNet-like sizes: enlarged to random shapes with Pillow, re-encoded as JPEG."""
    out = []
    for data in files:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        size = (int(rng.integers(240, 400)), int(rng.integers(240, 400)))
        buf = io.BytesIO()
        image.resize(size, Image.BICUBIC).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def test_serving_bytes_of_a_224_model_agrees_with_keras_on_real_jpegs(held_out, tmp_path):
    """A 224 ImageNet-style model; Keras side decoded with Pillow and the numpy transform (another implementation)."""
    files = resized_jpegs(held_out[0][:200], np.random.default_rng(0))
    pillow = [augment.eval_image(transforms_numpy, np.asarray(Image.open(io.BytesIO(f)).convert("RGB")), 224, "resize_crop") for f in files]
    keras.utils.set_random_seed(1)
    model = image_sensitive_head(keras_regnet.RegNetX200MF(), pillow)
    served = bytes_signature(model, tmp_path)(image_bytes=tf.constant(files))["classes"].numpy()[:, 0]
    keras_side = keras_top1(model, pillow)
    assert len(set(keras_side)) >= 5  # the model's answers depend on the image
    assert np.mean(served == keras_side) >= 0.995
    squashed = [tf.image.resize(tf.io.decode_jpeg(f), (224, 224)).numpy() for f in files]  # a different transform
    assert np.mean(keras_top1(model, squashed) == keras_side) < 0.995


@pytest.fixture
def without_preprocessing():
    """``(model built with include_preprocessing=False, pixels in [0, 255], its outputs on them normalised by hand)``."""
    keras.utils.set_random_seed(2)
    model = keras_regnet.RegNetX200MF(input_shape=(32, 32, 3), classes=10, include_preprocessing=False)
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    normalised = (pixels / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return model, pixels, model.predict(normalised.astype("float32"), verbose=0)


def test_exports_add_the_preprocessing_a_model_lacks(without_preprocessing, tmp_path):
    """Every export takes pixels in [0, 255]: a model without its normalisation gets it in front."""
    model, pixels, expected = without_preprocessing
    path = ex.export_tflite(model, str(tmp_path / "m.tflite"))
    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    served = tf.saved_model.load(ex.export_saved_model(model, str(tmp_path / "sm"))).signatures["serving_default"]
    np.testing.assert_allclose(served(images=tf.constant(pixels))["predictions"].numpy(), expected, atol=1e-5)


def test_decode_predictions_uses_the_models_classes(trained):
    out, _ = trained
    model = load_keras_model(str(out / "best.keras"))
    preds = np.eye(10, dtype="float32")[[8, 1]]
    decoded = decode_predictions(preds, top=2, model=model)
    assert decoded[0][0] == ("ship", "ship", 1.0) and decoded[1][0][0] == "automobile"
    with pytest.raises(ValueError, match=r"shape \(samples, 10\)"):
        decode_predictions(np.zeros((1, 1000)), model=model)
    imagenet = keras_regnet.RegNetX200MF()
    assert decode_predictions(np.eye(1000)[[1]], top=1, model=imagenet)[0][0] == ("n01443537", "goldfish", 1.0)


def test_model_info_round_trips_and_checks_its_fields():
    info = ModelInfo(architecture="custom", weights="trained", class_names=("a", "b"), image_size=48, eval_transform="center_crop",
                     validation={"epoch": 3, "top1_err": 12.5, "top5_err": None, "num_images": 10, "data": "x"})
    assert ModelInfo.from_config(json.loads(json.dumps(info.to_config()))) == info
    with pytest.raises(ValueError, match="image_size must be an integer"):
        dataclasses.replace(info, image_size=True)
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        dataclasses.replace(info, preprocessing="caffe")
    assert info.labels(2) == [("a", "a"), ("b", "b")]
    with pytest.raises(ValueError, match="has 3 classes but its info names 2"):
        info.labels(3)


def test_onnx_export_adds_the_preprocessing_a_model_lacks(without_preprocessing, tmp_path):
    ort = require("onnxruntime")
    model, pixels, expected = without_preprocessing
    session = ort.InferenceSession(ex.export_onnx(model, str(tmp_path / "m.onnx")))
    got = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
