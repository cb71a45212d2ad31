"""weights=PATH: round trip, and clear errors for files of other variants."""

import h5py
import numpy as np
import pytest

import keras_regnet
from keras_regnet import RegNet, RegNetConfig


def test_round_trip(tmp_path):
    model = keras_regnet.RegNetY200MF(classifier_activation=None)
    path = tmp_path / "y200.weights.h5"
    model.save_weights(path)
    again = keras_regnet.RegNetY200MF(weights=str(path), classifier_activation=None)
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict_on_batch(x), again.predict_on_batch(x))


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
