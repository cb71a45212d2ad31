"""keras-regnet evaluate: pycls's eval transform, exact error counting, tfds mock data, image folders."""

import dataclasses
import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from keras_regnet import evaluation
from keras_regnet.cli.main import main
from keras_regnet.data.transforms_tf import eval_resize_crop
from keras_regnet.data.transforms_numpy import eval_resize_crop as numpy_eval_resize_crop
from keras_regnet.architecture.preprocessing import imagenet_classes
from conftest import require  # noqa: E402

pycls_transforms = require("pycls.datasets.transforms")
tfds = require("tensorflow_datasets")


def pycls_eval(image_uint8, size=224):
    """pycls's test-time transform (datasets/imagenet.py): float image, scale 256, centre crop."""
    return pycls_transforms.center_crop(size, pycls_transforms.scale(round(size * 256 / 224), image_uint8.astype(np.float32)))


@settings(max_examples=40, deadline=None)
@given(st.integers(32, 700), st.integers(32, 700), st.sampled_from([224, 160]))
def test_numpy_eval_transform_equals_pycls(h, w, size):
    image = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    np.testing.assert_allclose(numpy_eval_resize_crop(image, size), pycls_eval(image, size), atol=1e-3)


@pytest.mark.parametrize("shape", [(375, 500), (500, 333), (256, 301), (224, 224), (257, 911), (64, 80)])
def test_tf_eval_transform_equals_pycls(shape):
    image = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    ours = eval_resize_crop(tf.constant(image), 224).numpy()
    assert ours.shape == (224, 224, 3)
    # OpenCV's and TensorFlow's bilinear kernels agree to float rounding.
    np.testing.assert_allclose(ours, pycls_eval(image), atol=0.02)


# ---------------------------------------------------------------- exact counting


def colour_classifier():
    """1000-way 'model' whose ranking is known: red -> 0, 1, 2, 3, 4, ...; green -> 1, 0, 2, ...

    Average colour into a dense layer: logit_j = mean channel j for j < 3,
    minus a small j-dependent bias that fixes the order of the rest.
    """
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    head = keras.layers.Dense(1000, activation="softmax", name="predictions")
    model = keras.Model(inputs, head(x), name="colour_classifier")
    kernel = np.zeros((3, 1000), np.float32)
    kernel[0, 0] = kernel[1, 1] = kernel[2, 2] = 1.0 / 255.0
    head.set_weights([kernel, -np.arange(1000, dtype=np.float32) * 1e-3])
    return model


def write_image(path, rgb, size=(300, 400), fmt="JPEG"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full(size + (3,), rgb, np.uint8)).save(path, fmt, quality=100)


def test_folder_errors_are_counted_exactly(tmp_path):
    wnid = [c[0] for c in imagenet_classes()]
    red, green = (255, 0, 0), (0, 255, 0)
    # class 0 folder: 3 red (right) + 1 green (top-1 wrong, top-5 right: green ranks 1, 0, ...)
    for i in range(3):
        write_image(tmp_path / "val" / wnid[0] / f"r{i}.jpg", red)
    write_image(tmp_path / "val" / wnid[0] / "g.png", green, fmt="PNG")
    # class 4 folder: red ranks 0, 1, 2, 3, 4 -> top-1 wrong, top-5 right
    write_image(tmp_path / "val" / wnid[4] / "r.jpg", red, size=(500, 280))
    # class 999 folder: wrong twice
    write_image(tmp_path / "val" / wnid[999] / "r.jpg", red)
    model_file = str(tmp_path / "colour.keras")
    colour_classifier().save(model_file)

    result = evaluation.evaluate(model_file, data=str(tmp_path), batch_size=4, verbose=0)
    assert result["num_images"] == 6
    assert result["top1_err"] == pytest.approx(100 * 3 / 6)  # green, class-4 red, class-999 red
    assert result["top5_err"] == pytest.approx(100 * 1 / 6)  # class-999 red only
    assert result["published_top1_err"] is None and result["top1_err_diff"] is None

    paths = evaluation.write_report([result], str(tmp_path / "out"))
    assert json.loads(open(paths[0]).read())[0]["top5_err"] == pytest.approx(100 / 6)
    assert "| 50.00 | – | – | 16.67 |" in open(paths[1]).read()


def test_folder_must_name_imagenet_ids_or_match_classes(tmp_path):
    for name in ("cat", "dog"):
        write_image(tmp_path / name / "a.jpg", (1, 2, 3))
    with pytest.raises(ValueError, match="2 class folders but the model has 1000 classes"):
        evaluation.evaluate(colour_classifier(), data=str(tmp_path), verbose=0)
    with pytest.raises(ValueError, match="no class subfolders"):
        evaluation.evaluate(colour_classifier(), data=str(tmp_path / "cat"), verbose=0)


# ---------------------------------------------------------------- tfds


def test_tfds_mock_imagenet_matches_pycls_preprocessing(tmp_path):
    """imagenet2012 validation via tfds (mock data): the errors pycls's transform + the same model give."""
    from keras_regnet import get_model

    net = get_model("RegNetX-200MF")  # random weights
    # What loading the published checkpoint records (the download itself is tested in test_imagenet_weights.py).
    published = dataclasses.replace(net.model_info, weights="imagenet:pycls", dataset="imagenet")
    with tfds.testing.mock_data(num_examples=10):
        random_result = evaluation.evaluate(net, "imagenet2012", batch_size=4, manual_dir=str(tmp_path), verbose=0)
        net.model_info = published
        result = evaluation.evaluate(net, "imagenet2012", batch_size=4, manual_dir=str(tmp_path), verbose=0)
        examples = list(tfds.builder("imagenet2012").as_dataset(split="validation", as_supervised=True).as_numpy_iterator())
        fed = list(evaluation.open_eval_data("imagenet2012", 1000, batch_size=10, manual_dir=str(tmp_path)).dataset.as_numpy_iterator())
    assert result["model"] == "RegNetX-200MF" and result["data"] == "imagenet2012:validation"
    assert result["num_images"] == len(examples) == 10
    assert result["published_top1_err"] == pytest.approx(31.088) and result["published_top5_err"] == pytest.approx(11.342)
    assert result["top1_err_diff"] == pytest.approx(result["top1_err"] - 31.088)
    # Random weights are not the published model: its own numbers only.
    assert random_result["top1_err"] == result["top1_err"] and random_result["published_top1_err"] is None
    assert random_result["model"] == "regnetx200mf" and random_result["top1_err_diff"] is None
    # What the model is fed equals pycls's transform (OpenCV) of the tfds images.
    images = np.stack([pycls_eval(image) for image, _ in examples])
    labels = np.array([label for _, label in examples])
    (fed_images, fed_labels), = fed
    np.testing.assert_array_equal(fed_labels, labels)
    np.testing.assert_allclose(fed_images, images, atol=0.02)
    # And the errors are counted from the model's ranking of those images.
    best = np.argsort(-net.predict_on_batch(images), axis=1)[:, :5]
    assert result["top1_err"] == pytest.approx(100 * np.mean(best[:, 0] != labels))
    assert result["top5_err"] == pytest.approx(100 * np.mean(~np.any(best == labels[:, None], axis=1)))


def test_tfds_bad_input(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset data='no_such_dataset_xyz'"):
        evaluation.evaluate(colour_classifier(), data="no_such_dataset_xyz", verbose=0)
    with pytest.raises(ValueError, match="manual_dir"):
        evaluation.evaluate(colour_classifier(), data="imagenet2012", data_dir=str(tmp_path), verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        evaluation.evaluate(colour_classifier(), data=str(tmp_path), batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="no such .keras file"):
        evaluation.evaluate(str(tmp_path / "missing.keras"), data=str(tmp_path), verbose=0)


def test_cli_evaluate_all_writes_zoo_page(tmp_path, capsys):
    zoo_page = tmp_path / "model_zoo.md"
    with tfds.testing.mock_data(num_examples=3):
        rc = main([
            "evaluate", "--all", "--models", "RegNetX-200MF,RegNetY-200MF", "--weights", "none",
            "--data", "imagenet2012", "--manual-dir", str(tmp_path), "--batch-size", "3",
            "--output-dir", str(tmp_path / "eval"), "--zoo-page", str(zoo_page),
        ])
    assert rc == 0
    results = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert [r["model"] for r in results] == ["RegNetX-200MF", "RegNetY-200MF"]
    assert all(r["num_images"] == 3 for r in results)
    page = zoo_page.read_text()
    assert "| RegNetX-200MF | 0.20 | 2.7 | 3 |" in page and "| 31.09 |" in page  # flops, params, published top-1
    assert "| RegNetY-200MF | 0.20 | 3.2 | 3 |" in page
    assert "keras-regnet evaluate --all" in page
    out = capsys.readouterr().out
    assert "RegNetY-200MF" in out and "evaluation.json" in out


def test_cli_evaluate_requires_model_or_all(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--data", "x"])
    assert "give either --model or --all" in capsys.readouterr().err


def test_jpeg_decode_in_folder_matches_pillow(tmp_path):
    """Folder images are decoded by TensorFlow; make sure the decoded pixels are the file's (lossless PNG)."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (240, 230, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    (tmp_path / "n01440764").mkdir()
    (tmp_path / "n01440764" / "x.png").write_bytes(buf.getvalue())
    data = evaluation.open_eval_data(str(tmp_path), 1000, batch_size=1)
    (image, label), = list(data.dataset.as_numpy_iterator())
    assert label[0] == 0 and data.num_images == 1
    np.testing.assert_allclose(image[0], pycls_eval(pixels), atol=0.02)


def test_cli_evaluate_offline_weights_error_is_a_message(tmp_path, monkeypatch, capsys):
    from keras_regnet.weights import download

    def offline(url, dest, **kwargs):
        raise download.DownloadError(f"Could not download {url} (no network). Place the file at {dest}.")

    monkeypatch.setattr(download, "fetch", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # no cached weights
    write_image(tmp_path / "data" / "n01440764" / "a.jpg", (1, 2, 3))
    assert main(["evaluate", "--model", "RegNetX-200MF", "--data", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert "keras-regnet: error: Could not download https://" in err and "Traceback" not in err
