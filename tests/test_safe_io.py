"""Hostile .keras models, .npz data files and image folders are refused before they are used."""

import os

import hostile_files as hf
import keras
import numpy as np
import pytest

from keras_regnet import RegNet, RegNetConfig
from keras_regnet.data.cifar10 import load_cifar10_jpeg_npz
from keras_regnet.errors import InvalidFileError, UnsafeFileError
from keras_regnet.architecture.models import model_from_argument
from keras_regnet.safe_io import load_keras_model, load_npz

TINY = RegNetConfig(depth=2, w0=8, wa=8.0, wm=2.0, group_width=8, stem_width=8)


@pytest.fixture(scope="module")
def good_keras(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "good.keras"
    RegNet(TINY, input_shape=(32, 32, 3), classes=2).save(path)
    return path


def _first_layer(config):
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] not in ("InputLayer",))


def _set(obj, **values):
    obj.update(values)
    return obj


KERAS_CASES = {
    "top-level class os.system": (lambda c: _set(c, module="os", class_name="system"), UnsafeFileError, "os.system"),
    "layer from subprocess": (lambda c: _set(_first_layer(c), module="subprocess", class_name="Popen") and c, UnsafeFileError, "subprocess.Popen"),
    "builtins.eval as a layer": (lambda c: _set(_first_layer(c), module="builtins", class_name="eval") and c, UnsafeFileError, "builtins.eval"),
    "unregistered name": (lambda c: _set(_first_layer(c), registered_name="evil>Thing") and c, UnsafeFileError, "evil>Thing"),
    "keras.utils.get_file": (lambda c: _set(_first_layer(c), module="keras.utils", class_name="get_file") and c, UnsafeFileError, "not modelling code"),
    "TorchModuleWrapper": (lambda c: _set(_first_layer(c), class_name="TorchModuleWrapper") and c, UnsafeFileError, "carries code"),
    "keras_regnet module, not registered": (lambda c: _set(_first_layer(c), module="keras_regnet.atomic", class_name="write_text", registered_name="write_text") and c, UnsafeFileError, "keras_regnet.atomic.write_text"),
}


@pytest.mark.parametrize("case", list(KERAS_CASES))
def test_hostile_keras_configs_are_refused(tmp_path, good_keras, case):
    edit, error, message = KERAS_CASES[case]
    path = hf.keras_archive(good_keras, tmp_path / "evil.keras", edit_config=edit)
    with pytest.raises(error, match=message) as err:
        load_keras_model(str(path))
    assert err.value.path == str(path)
    with pytest.raises(error):  # the entry point of evaluate --model and export --model
        model_from_argument(str(path))


def test_lambda_layer_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "MARKER"
    inputs = keras.Input((4,))
    # No closure (Keras would try to serialise it): the marker's path is a literal in the bytecode.
    touch = eval(f"lambda x: x + 0 * len(open({str(marker)!r}, 'w').name)")  # noqa: S307 - the test's own payload
    outputs = keras.layers.Lambda(touch)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    marker.unlink()  # tracing the model while building it ran the lambda once, in this test
    with pytest.raises(UnsafeFileError, match="Lambda layer"):
        load_keras_model(str(path))
    assert not marker.exists()


@pytest.mark.parametrize(
    "members, message",
    [
        ([("../escape.txt", b"x")], "outside the archive"),
        ([("/etc/evil", b"x")], "outside the archive"),
        ([("evil.py", b"import os")], "unexpected member 'evil.py'"),
    ],
)
def test_keras_archives_with_strange_members_are_refused(tmp_path, good_keras, members, message):
    path = hf.keras_archive(good_keras, tmp_path / "evil.keras", extra_members=members)
    with pytest.raises(InvalidFileError, match=message):
        load_keras_model(str(path))
    assert not (tmp_path.parent / "escape.txt").exists()


def test_damaged_keras_files(tmp_path, good_keras):
    bad_json = hf.keras_archive(good_keras, tmp_path / "json.keras")
    data = bad_json.read_bytes()
    truncated = tmp_path / "cut.keras"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidFileError, match="damaged zip"):
        load_keras_model(str(truncated))
    not_zip = tmp_path / "text.keras"
    not_zip.write_text("hello")
    with pytest.raises(InvalidFileError, match="damaged zip"):
        load_keras_model(str(not_zip))


def test_a_good_keras_file_loads_with_the_same_outputs(good_keras):
    model = load_keras_model(str(good_keras))
    reference = keras.saving.load_model(good_keras, compile=False)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict_on_batch(x), reference.predict_on_batch(x))


def test_npz_with_pickled_objects_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    path = hf.npz_with_object_array(tmp_path / "evil.npz", str(marker))
    with pytest.raises(UnsafeFileError, match="'train_labels' holds Python objects") as err:
        load_cifar10_jpeg_npz(str(path))
    assert err.value.path == str(path)
    assert not marker.exists()


def test_npz_declaring_more_than_it_holds_allocates_nothing(tmp_path):
    path = tmp_path / "huge.npz"
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", header.getvalue() + b"\0" * 16)
    with pytest.raises(InvalidFileError, match=r"declares shape \(1000000000000,\)"):
        load_npz(str(path))


def test_npz_damage_and_missing_arrays(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, train_labels=np.arange(3))
    with pytest.raises(InvalidFileError, match="has no array 'train_jpeg'"):
        load_cifar10_jpeg_npz(str(good))
    data = good.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) - 30])
    with pytest.raises(InvalidFileError):
        load_npz(str(cut))
    bad_offsets = tmp_path / "offsets.npz"
    np.savez(bad_offsets, train_jpeg=np.zeros(4, np.uint8), train_offsets=np.array([0, 9, 2]), train_labels=np.array([0, 1]), classes=np.array(["a", "b"]))
    with pytest.raises(InvalidFileError, match="offsets"):
        load_cifar10_jpeg_npz(str(bad_offsets), validation_size=1)


def test_training_data_entry_point_refuses_a_hostile_npz(tmp_path):
    from keras_regnet.training import Recipe, train

    marker = tmp_path / "MARKER"
    path = hf.npz_with_object_array(tmp_path / "evil.npz", str(marker))
    with pytest.raises(UnsafeFileError):
        train("RegNetX-200MF", data=str(path), output_dir=str(tmp_path / "run"), recipe=Recipe.for_model("RegNetX-200MF", epochs=1, batch_size=2))
    assert not marker.exists()


def test_image_folder_with_a_non_image_names_the_file(tmp_path, good_keras):
    from keras_regnet.evaluation import evaluate

    marker = tmp_path / "MARKER"
    for c in ("a", "b"):
        os.makedirs(tmp_path / "data" / c)
    evil = hf.write_zip(tmp_path / "data" / "b" / "evil.jpg", hf.main_object_positions(hf.payloads(str(marker))["os.system"])["top"])
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "data" / "a" / "ok.jpg")
    with pytest.raises(Exception, match=r"not a JPEG, PNG, GIF or BMP image.*evil\.jpg"):
        evaluate(str(good_keras), data=str(tmp_path / "data"), image_size=32, batch_size=2)
    assert not marker.exists() and os.path.isfile(evil)


def test_config_walk_sees_nested_configs(tmp_path, good_keras):
    # The allow-list must reach objects nested anywhere (initializers, regularizers, inside a list).
    def edit(config):
        layer = next(layer for layer in config["config"]["layers"] if "kernel_initializer" in layer["config"])
        layer["config"]["kernel_initializer"] = {"module": "posix", "class_name": "system", "config": {}, "registered_name": None}
        return config

    path = hf.keras_archive(good_keras, tmp_path / "nested.keras", edit_config=edit)
    with pytest.raises(UnsafeFileError, match="posix.system"):
        load_keras_model(str(path))
