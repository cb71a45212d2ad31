"""Import paths that the README, the docs and release 0.1.0 taught users keep working.

The modules moved into subpackages (architecture/, weights/, data/,
training/, cli/); the old documented names are the same module objects, so
code and monkeypatches written against them still act on the real thing.
"""

import importlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MOVED = {
    "keras_regnet.datasets": "keras_regnet.data.cifar10",
    "keras_regnet.download": "keras_regnet.weights.download",
    "keras_regnet.torch_checkpoint": "keras_regnet.weights.torch_checkpoint",
}

DOCUMENTED_NAMES = [
    ("keras_regnet", "RegNetY800MF"),
    ("keras_regnet", "RegNet"),
    ("keras_regnet", "RegNetConfig"),
    ("keras_regnet", "get_model"),
    ("keras_regnet", "feature_extractor"),
    ("keras_regnet", "complexity"),
    ("keras_regnet", "list_models"),
    ("keras_regnet", "decode_predictions"),
    ("keras_regnet", "InvalidFileError"),
    ("keras_regnet.datasets", "load_cifar10_jpeg_npz"),
    ("keras_regnet.datasets", "load_embedded_cifar10"),
    ("keras_regnet.training", "Recipe"),
    ("keras_regnet.training", "train"),
    ("keras_regnet.training", "compile_model"),
    ("keras_regnet.evaluation", "evaluate"),
    ("keras_regnet.export", "export_saved_model"),
    ("keras_regnet.export", "export_tflite"),
    ("keras_regnet.export", "export_onnx"),
    ("keras_regnet.safe_io", "load_npz"),
    ("keras_regnet.safe_io", "load_keras_model"),
    ("keras_regnet.torch_checkpoint", "load"),
    ("keras_regnet.download", "fetch"),
    ("keras_regnet.cli", "main"),
]


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_a_moved_module_is_the_same_module_under_its_old_name(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.parametrize("module, name", DOCUMENTED_NAMES)
def test_documented_names_import(module, name):
    value = getattr(importlib.import_module(module), name)
    assert callable(value) or isinstance(value, type)


def test_the_embedded_data_loads_through_its_old_path():
    from keras_regnet.datasets import load_embedded_cifar10

    images, labels, classes = load_embedded_cifar10("validation")
    assert images.shape == (1000, 32, 32, 3) and len(classes) == 10 and labels.max() == 9


def _run(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_importing_the_package_does_not_start_keras():
    # keras-regnet --help and pure-numpy uses (RegNetConfig, complexity) stay fast.
    assert _run("import sys, keras_regnet; print('keras' in sys.modules, 'tensorflow' in sys.modules)") == ["False", "False"]


def test_keras_load_model_knows_our_classes_when_keras_came_first():
    code = (
        "import keras, keras_regnet, numpy as np\n"
        "m = keras.saving.load_model('tests/fixtures/keras_regnet-0.1.0.keras')\n"
        "d = np.load('tests/fixtures/keras_regnet-0.1.0.expected.npz')\n"
        "print(float(np.abs(m.predict(d['inputs'], verbose=0) - d['outputs']).max()), type(m.optimizer).__name__)\n"
    )
    error, optimizer = _run(code)
    assert float(error) <= 1e-5 and optimizer == "CoupledWeightDecaySGD"
