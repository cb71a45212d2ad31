"""weights=PATH: format detection, the variant a file records, and clear errors for files of other variants."""

import h5py
import numpy as np
import pytest
from conftest import require

import keras_regnet
from keras_regnet import InvalidFileError, RegNet, RegNetConfig
from keras_regnet.weights.resolve import VARIANT_ATTR, detect_format, file_source, save_weights_atomic


def test_weights_saved_by_the_package_load_back_as_the_variant_they_record(tmp_path):
    model = keras_regnet.RegNetY200MF(classifier_activation=None)
    path = str(tmp_path / "y200.weights.h5")
    assert save_weights_atomic(model, path) == path
    assert (detect_format(path), file_source(path, "keras")) == ("keras", "pycls")
    again = keras_regnet.RegNetY200MF(weights=path, classifier_activation=None)
    assert type(again.get_layer("preprocessing")).__name__ == "Normalization"
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict_on_batch(x), again.predict_on_batch(x))

    # The recorded source, not the caller, decides padding and preprocessing.
    save_weights_atomic(model, path, source="tf-keras")
    assert file_source(path, "keras") == "tf-keras"
    tf_keras_variant = keras_regnet.RegNetY200MF(weights=path)
    assert type(tf_keras_variant.get_layer("preprocessing")).__name__ == "Rescaling"
    np.testing.assert_array_equal(
        tf_keras_variant.get_layer("s4_b7_c_conv").kernel.numpy(), model.get_layer("s4_b7_c_conv").kernel.numpy()
    )


def test_a_file_naming_an_unknown_variant_is_refused(tmp_path):
    path = str(tmp_path / "x200.weights.h5")
    save_weights_atomic(keras_regnet.RegNetX200MF(), path)
    with h5py.File(path, "a") as f:
        f.attrs[VARIANT_ATTR] = "timm"
    with pytest.raises(InvalidFileError, match=r"x200\.weights\.h5.*names an unknown variant 'timm' \(known: pycls, "):
        keras_regnet.RegNetX200MF(weights=path)


def test_detect_format_reads_the_content_not_the_extension(tmp_path):
    torch = require("torch")
    keras_file, tf_keras_file = str(tmp_path / "a.pth"), str(tmp_path / "b.weights.h5")
    keras_regnet.RegNetX200MF().save_weights(str(tmp_path / "k.weights.h5"))
    (tmp_path / "k.weights.h5").rename(keras_file)
    with h5py.File(tf_keras_file, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
    formats = {"keras": keras_file, "tf-keras-h5": tf_keras_file}
    for zip_format in (True, False):
        formats[f"torch-{zip_format}"] = str(tmp_path / f"c{zip_format}.h5")
        torch.save({"w": torch.ones(1)}, formats[f"torch-{zip_format}"], _use_new_zipfile_serialization=zip_format)
    assert {name: detect_format(path) for name, path in formats.items()} == {
        "keras": "keras", "tf-keras-h5": "tf-keras-h5", "torch-True": "torch", "torch-False": "torch"
    }
    (tmp_path / "d.pyth").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidFileError, match=r"d\.pyth.*is not a recognised weights file"):
        detect_format(str(tmp_path / "d.pyth"))


def test_file_of_another_variant_names_layer_and_shapes(tmp_path):
    path = tmp_path / "x200.weights.h5"
    keras_regnet.RegNetX200MF().save_weights(path)
    with pytest.raises(
        ValueError,
        match=r"does not fit model 'regnetx400mf': layer 's1_b1_\w+' has shapes \[\(1, 1, 32, 32\)\] "
        r"in the model but \[\(1, 1, 32, 24\)\] in the file",
    ):
        keras_regnet.RegNetX400MF(weights=str(path))


def test_file_of_x_model_into_y_model(tmp_path):
    path = tmp_path / "x200.weights.h5"
    keras_regnet.RegNetX200MF().save_weights(path)
    with pytest.raises(ValueError, match=r"does not fit model 'regnety200mf'"):
        keras_regnet.RegNetY200MF(weights=str(path))


def test_shallower_and_deeper_files(tmp_path):
    shallow = RegNetConfig(depth=3, w0=16, wa=16.0, wm=2.0, group_width=8)
    deep = RegNetConfig(depth=5, w0=16, wa=16.0, wm=2.0, group_width=8)
    p_shallow, p_deep = tmp_path / "s.weights.h5", tmp_path / "d.weights.h5"
    RegNet(shallow, input_shape=(64, 64, 3)).save_weights(p_shallow)
    RegNet(deep, input_shape=(64, 64, 3)).save_weights(p_deep)
    with pytest.raises(ValueError, match=r"does not fit model"):
        RegNet(deep, input_shape=(64, 64, 3), weights=str(p_shallow))
    with pytest.raises(ValueError, match=r"does not fit model"):
        RegNet(shallow, input_shape=(64, 64, 3), weights=str(p_deep))


def test_head_mismatch(tmp_path):
    path = tmp_path / "ten.weights.h5"
    keras_regnet.RegNetX200MF(classes=10).save_weights(path)
    with pytest.raises(ValueError, match=r"layer 'predictions' has shapes \[\(368, 1000\), \(1000,\)\] in the model"):
        keras_regnet.RegNetX200MF(weights=str(path))


def test_not_a_keras_weights_file(tmp_path):
    wrong_ext = tmp_path / "model.pth"
    wrong_ext.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"is not a recognised weights file"):
        keras_regnet.RegNetX200MF(weights=str(wrong_ext))
    other = tmp_path / "other.weights.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"is an HDF5 file but not a Keras weights file"):
        keras_regnet.RegNetX200MF(weights=str(other))
