"""Fine-tuning from pretrained weights with ``keras-regnet train --weights``: head, recipe, phases, mirrors.

Real data (the embedded CIFAR-10 subset's JPEG files) and checkpoints the
tests make in pycls's layout (random weights; pycls's own code writes them).
"""

import csv
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
from conftest import require

import keras_regnet
from keras_regnet.architecture.preprocessing import imagenet_classes
from keras_regnet.cli.main import main
from keras_regnet.data.cifar10 import embedded_cifar10_jpegs
from keras_regnet.safe_io import load_keras_model
from keras_regnet.training import Recipe, train
from keras_regnet.training.finetune import choose_head, finetuning_recipe, pretrained_classifier, training_phases
from keras_regnet.weights.resolve import WeightsSpec

pr = require("pycls_reference")
NAME = "RegNetX-200MF"
CONFIG = keras_regnet.published_models()[NAME].config
SMALL = dataclasses.replace(CONFIG, stem_stride=1)
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def pycls_checkpoint(path, randomised=True, num_classes=1000, seed=5):
    """A pycls checkpoint of RegNetX-200MF: every weight and BN statistic random, or pycls's own initialisation."""
    if randomised:
        model = pr.pycls_model(CONFIG, num_classes=num_classes, seed=seed)
    else:
        pr.set_pycls_cfg(CONFIG, num_classes)
        pr.torch.manual_seed(seed)
        model = pr.pycls_regnet.RegNet()
    pr.torch.save({"epoch": 100, "model_state": model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return pycls_checkpoint(tmp_path_factory.mktemp("ck") / "RegNetX-200MF_dds_8gpu.pyth")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``DIR/train/<class>/`` (40 per class) and ``DIR/val/<class>/`` (10 per class): real CIFAR-10 JPEG files."""
    root = tmp_path_factory.mktemp("cifar_folders")
    files, labels, classes = embedded_cifar10_jpegs("all")
    for split, per_class, skip in (("train", 40, 0), ("val", 10, 40)):
        for c, name in enumerate(classes):
            os.makedirs(root / split / name)
            for k, i in enumerate(np.flatnonzero(labels == c)[skip : skip + per_class]):
                (root / split / name / f"{k}.jpg").write_bytes(files[i])
    return str(root)


def backbone_weights(model):
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights and layer.name != "predictions"}


def file_backbone(path, size=32):
    """The file's backbone as the package loads it (the converter is proven against pycls in test_pycls_parity.py)."""
    return backbone_weights(keras_regnet.RegNet(SMALL, include_top=False, weights=path, input_shape=(size, size, 3)))


def assert_same_backbone(model, expected):
    got = backbone_weights(model)
    assert got.keys() == expected.keys()
    for name, weights in expected.items():
        for a, b in zip(got[name], weights):
            np.testing.assert_array_equal(a, b, err_msg=name)


def log_epochs(out):
    return [int(row["epoch"]) for row in csv.DictReader(open(os.path.join(out, "log.csv")))]


# ---------------------------------------------------------------- the head


def test_backbone_from_a_pycls_checkpoint_and_a_new_head(checkpoint):
    model, choice = pretrained_classifier(SMALL, checkpoint, CIFAR, 32, "finetuned")
    assert_same_backbone(model, file_backbone(checkpoint))
    assert model.get_layer("predictions").kernel.shape == (368, 10) and model.output.shape[-1] == 10
    assert not choice.keep and "new 10-class head (the weights' head has 1000 classes)" in choice.message
    assert model.model_info.architecture == "custom" and model.model_info.class_names is None


def test_the_head_is_kept_only_for_the_checkpoints_classes(checkpoint, tmp_path):
    kept, choice = pretrained_classifier(SMALL, checkpoint, [str(i) for i in range(1000)], 32, "same")
    assert choice.keep and "its class names are not known" in choice.message
    state = pr.torch.load(checkpoint, weights_only=True)["model_state"]
    np.testing.assert_array_equal(kept.get_layer("predictions").kernel.numpy(), state["head.fc.weight"].numpy().T)
    imagenet = WeightsSpec("imagenet", source="pycls", model_name=NAME)
    wnids = [wnid for wnid, _ in imagenet_classes()]
    assert choose_head(imagenet, wnids).keep
    assert not choose_head(imagenet, wnids[::-1]).keep  # 1000 classes, but not ImageNet's order
    assert not choose_head(imagenet, CIFAR).keep
    ten = pycls_checkpoint(tmp_path / "ten.pyth", num_classes=10)
    assert choose_head(keras_regnet.weights.resolve.parse_weights_argument(ten, SMALL, False, 10), CIFAR).keep


def test_finetuning_recipe_and_phases():
    recipe = Recipe(epochs=30, batch_size=64, warmup_epochs=5)
    tuned = finetuning_recipe(recipe)
    assert tuned.lr == pytest.approx(0.1 * 0.05) and tuned.warmup_epochs == 1
    assert finetuning_recipe(recipe, keep_lr=True, keep_warmup=True) == recipe
    assert [(p.name, p.start, p.end) for p in training_phases(5, 2)] == [("head", 0, 2), ("all", 2, 5)]
    assert [p.name for p in training_phases(5, 0)] == ["all"] and [p.name for p in training_phases(2, 2)] == ["head"]
    with pytest.raises(ValueError, match=r"freeze_epochs must be an integer in \[0, 5\]"):
        training_phases(5, 6)


# ---------------------------------------------------------------- training


def test_frozen_phase_changes_only_the_head(checkpoint, folders, tmp_path):
    """Head only (precise BN would change the statistics: it must not run), BatchNorm in inference mode."""
    recipe = Recipe(epochs=1, batch_size=50, image_size=32, precise_bn_images=8192)
    train(NAME, data=folders, output_dir=str(tmp_path), recipe=recipe, weights=checkpoint, freeze_epochs=1, seed=0, verbose=0)
    model = load_keras_model(str(tmp_path / "last.keras"))
    assert_same_backbone(model, file_backbone(checkpoint))  # BN moving statistics included
    keras.utils.set_random_seed(0)
    fresh, _ = pretrained_classifier(SMALL, checkpoint, CIFAR, 32, "x")
    assert not np.allclose(model.get_layer("predictions").kernel.numpy(), fresh.get_layer("predictions").kernel.numpy())
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["head"].startswith("backbone from the weights; new 10-class head")


def cli_train(folders, out, weights, *extra):
    return main([
        "train", "--model", NAME, "--data", folders, "--image-size", "32", "--batch-size", "50", "--seed", "0",
        "--weights", weights, "--output-dir", str(out), *extra,
    ])


def test_a_killed_run_resumes_in_its_phase(checkpoint, folders, tmp_path, capsys):
    """``--time-budget`` stops each call after one epoch: call 1 is in the frozen phase, call 2 in the second."""
    expected = file_backbone(checkpoint)
    args = ("--epochs", "3", "--freeze-epochs", "1", "--time-budget", "0.001")
    assert cli_train(folders, tmp_path, checkpoint, *args) == 0
    assert "new 10-class head" in capsys.readouterr().out
    assert log_epochs(tmp_path) == [0]
    assert_same_backbone(load_keras_model(str(tmp_path / "last.keras")), expected)
    assert cli_train(folders, tmp_path, checkpoint, *args) == 0
    assert log_epochs(tmp_path) == [0, 1]
    second = load_keras_model(str(tmp_path / "last.keras"), compile=True)
    changed = backbone_weights(second)
    assert any(not np.array_equal(changed[k][0], expected[k][0]) for k in expected)  # the backbone now trains
    # The optimizer was rebuilt at the switch: it now has a momentum slot for every trainable variable.
    assert len(second.optimizer.momentums) == len(second.trainable_variables)
    assert cli_train(folders, tmp_path, checkpoint, *args) == 0
    assert log_epochs(tmp_path) == [0, 1, 2]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["complete"] and not os.path.exists(tmp_path / "backup")
    # Fine-tuning defaults: a tenth of the from-scratch rate (0.1 x 50 / 128), one warm-up epoch.
    assert results["recipe"]["base_lr"] == pytest.approx(0.1 * 0.1 * 50 / 128) and results["recipe"]["warmup_epochs"] == 1


def test_frozen_batch_norm_statistics_stay_the_checkpoints(checkpoint, folders, tmp_path):
    assert cli_train(folders, tmp_path, checkpoint, "--epochs", "1", "--freeze-bn", "--lr", "0.05") == 0
    model = load_keras_model(str(tmp_path / "last.keras"))
    expected = file_backbone(checkpoint)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for a, b in zip(layer.get_weights(), expected[layer.name]):
                np.testing.assert_array_equal(a, b, err_msg=layer.name)
    assert not np.array_equal(model.get_layer("s1_b1_a_conv").get_weights()[0], expected["s1_b1_a_conv"][0])


def test_a_short_finetuning_run_learns(tmp_path):
    """From a pycls-initialised checkpoint on the embedded subset (4,000 / 1,000 images), 6 epochs.

    The checkpoint is random, not pretrained, so the from-scratch rate and
    warm-up are given (``--lr``, ``--warmup-epochs``); the fine-tuning
    defaults are for weights that already know something.
    """
    ck = pycls_checkpoint(tmp_path / "init.pyth", randomised=False)
    assert main(["train", "--model", NAME, "--weights", ck, "--epochs", "6", "--lr", "0.05", "--warmup-epochs", "2",
                 "--seed", "0", "--output-dir", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["final"]["val_accuracy"] >= 0.3  # chance: 0.1


def test_imagenet_weights_for_10_classes_through_a_mirror(server, folders, tmp_path, monkeypatch):
    data = open(pycls_checkpoint(tmp_path / "RegNetX-200MF_dds_8gpu.pyth"), "rb").read()
    server.files["/mirror/RegNetX-200MF_dds_8gpu.pyth"] = data
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_REGNET_WEIGHTS_MIRROR", server.url("/mirror/"))
    assert cli_train(folders, tmp_path / "run", "imagenet", "--epochs", "1", "--freeze-epochs", "1") == 0
    assert server.requests == ["/mirror/RegNetX-200MF_dds_8gpu.pyth"]
    model = load_keras_model(str(tmp_path / "run" / "last.keras"))
    assert_same_backbone(model, file_backbone(str(tmp_path / "RegNetX-200MF_dds_8gpu.pyth")))
    monkeypatch.setenv("KERAS_REGNET_WEIGHTS_MIRROR", "mirror.corp/regnet")
    with pytest.raises(ValueError, match="KERAS_REGNET_WEIGHTS_MIRROR must be an http://, https:// or file:// base URL"):
        keras_regnet.RegNetX200MF(weights="imagenet")
