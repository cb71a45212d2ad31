"""tf-keras's keras.applications RegNet weights reproduce tf-keras's outputs.

tf-keras's models use TensorFlow 'same' padding and rescale-only
preprocessing; loading their weights builds our model that way.
"""

import numpy as np
import pytest
from conftest import require

import keras_regnet
from keras_regnet import cli

tf_keras = require("tf_keras")


def _tf_keras_model(builder_name, seed=0):
    model = getattr(tf_keras.applications, builder_name)(weights=None)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape),
            ])
    return model


@pytest.mark.parametrize("tf_keras_name, name", [("RegNetX002", "RegNetX-200MF"), ("RegNetY008", "RegNetY-800MF")])
def test_logits_equal_tf_keras(tf_keras_name, name, tmp_path):
    reference = _tf_keras_model(tf_keras_name)
    path = tmp_path / f"{tf_keras_name}.h5"
    reference.save_weights(str(path))
    model = keras_regnet.get_model(name, weights=str(path), classifier_activation=None)
    assert type(model.get_layer("preprocessing")).__name__ == "Rescaling"
    x = np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    expected = reference.predict_on_batch(x)
    got = np.asarray(model.predict_on_batch(x))
    rel = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert rel <= 1e-4, rel

    # Converted once, the .weights.h5 remembers it needs the tf-keras variant.
    dst = tmp_path / "converted.weights.h5"
    assert cli.main(["convert", str(path), str(dst), "--model", name]) == 0
    again = keras_regnet.get_model(name, weights=str(dst), classifier_activation=None)
    assert type(again.get_layer("preprocessing")).__name__ == "Rescaling"
    np.testing.assert_allclose(again.predict_on_batch(x), got, rtol=1e-6, atol=1e-6)


def test_tf_keras_file_of_another_variant(tmp_path):
    path = tmp_path / "x002.h5"
    _tf_keras_model("RegNetX002").save_weights(str(path))
    with pytest.raises(ValueError, match=r"tf-keras layer '.*' has shape .* but layer 's1_b1_\w+' expects"):
        keras_regnet.RegNetX400MF(weights=str(path))
