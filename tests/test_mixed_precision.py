"""bfloat16 numerics against float32 (issue 14's tolerances), on the default TensorFlow path.

* A model the README's main job trained: bf16 and fp32 agree on top-1 for
  >= 99% of the 1,000 held-out real CIFAR-10 images, and at least as often
  (within 3 images) as pycls's model under PyTorch's bf16 autocast on the
  same weights.
* A fresh run of the main job (unseeded, so every run is another model):
  agreement >= 98%.  The two differ because agreement depends on the model
  as much as on the arithmetic: the images that flip are near-ties whose
  two best classes are closer than bfloat16's rounding.  Five trainings
  measured 0.998 (the recorded model), 0.995, 0.992, 0.994 (``--seed`` 1-3)
  and 0.988 (a CI run), so >= 99% holds for a typical model, not for every
  one; PyTorch's autocast gives 0.997 on the recorded model's weights.
* RegNetY-800MF with pycls's own initialisation (pycls builds the model and
  initialises it; its state_dict is loaded here): the largest logit error,
  relative to the largest fp32 logit, is <= 0.05.
Both switch an existing model with :func:`keras_regnet.set_dtype_policy`;
a model built under ``keras.mixed_precision.set_global_policy`` is checked
to be the same thing.

The recorded model, ``tests/fixtures/main_job_regnetx200mf.keras``, is the
first model the main job trained on 2026-12-03 (commit c29bba1, a 2-core
Intel Xeon with AMX): ``keras-regnet train --output-dir DIR``, then
``DIR/best.keras`` loaded with ``keras_regnet.safe_io.load_keras_model`` and
saved again with ``model.save`` (which leaves out the optimizer state).
Validation accuracy 0.500, top-5 0.917.
"""

import dataclasses
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import require

import keras_regnet
from keras_regnet.architecture.zoo import lookup
from keras_regnet.data import transforms_numpy
from keras_regnet.data.cifar10 import embedded_cifar10_jpegs
from keras_regnet.safe_io import load_keras_model
from keras_regnet.weights.convert import set_torch_state

RECORDED_MAIN_JOB_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "main_job_regnetx200mf.keras")


def logits_in(policy, model, images):
    keras_regnet.set_dtype_policy(model, policy)
    return np.asarray(model.predict(images, batch_size=250, verbose=0), dtype="float32")


@pytest.fixture(scope="module")
def validation():
    """The 1,000 held-out real CIFAR-10 images (RGB, [0, 255]) and their labels."""
    files, labels, _ = embedded_cifar10_jpegs("validation")
    return np.stack([transforms_numpy.decode_image(f) for f in files]).astype("float32"), np.asarray(labels)


def top1_agreement(first, second):
    return float(np.mean(first.argmax(1) == second.argmax(1)))


@pytest.fixture(scope="module")
def main_job_model(tmp_path_factory):
    """A fresh model trained by the README's main job: ``keras-regnet train`` with its defaults (about 5 minutes).

    (The one-epoch run other tests share still answers one class for most
    images, which would make agreement trivial.)
    """
    out = tmp_path_factory.mktemp("main_job")
    script = shutil.which("keras-regnet")
    assert script, "the keras-regnet console script is not installed (pip install -e .)"
    done = subprocess.run([script, "train", "--output-dir", str(out)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_keras_model(str(out / "best.keras"))


def assert_a_trained_model_in_bfloat16(model, labels, fp32, bf16):
    assert model.get_layer("s4").compute_dtype == "bfloat16" and model.layers[-1].compute_dtype == "float32"
    assert np.mean(fp32.argmax(1) == labels) > 0.35  # a trained model (the README reports about 0.5)
    assert len(np.unique(fp32.argmax(1))) == 10  # not one answer for most images
    assert 0 < np.abs(fp32 - bf16).max()  # really computed in bfloat16


@pytest.fixture(scope="module")
def recorded_model_outputs(validation):
    """The recorded main-job model and its fp32 and bf16 outputs on the validation images."""
    model = load_keras_model(RECORDED_MAIN_JOB_MODEL)
    images, _ = validation
    return model, logits_in("float32", model, images), logits_in("mixed_bfloat16", model, images)


def test_bf16_and_fp32_agree_on_top1_for_the_recorded_main_job_model(validation, recorded_model_outputs):
    images, labels = validation
    model, fp32, bf16 = recorded_model_outputs
    assert_a_trained_model_in_bfloat16(model, labels, fp32, bf16)
    assert len(images) == 1000 and top1_agreement(fp32, bf16) >= 0.99, top1_agreement(fp32, bf16)


def test_bf16_agrees_with_fp32_as_often_as_pytorch_autocast_on_the_same_weights(validation, recorded_model_outputs):
    torch = require("torch")
    reference = require("pycls_reference")
    import pycls.models.regnet as pycls_regnet

    images, _ = validation
    model, fp32, bf16 = recorded_model_outputs
    reference.set_pycls_cfg(dataclasses.replace(lookup("RegNetX-200MF").config, stem_stride=1), num_classes=10)
    pycls_model = pycls_regnet.RegNet().eval()
    missing, unexpected = pycls_model.load_state_dict(reference.pycls_state_of(model), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    pycls_fp32 = reference.pycls_logits(pycls_model, images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pycls_bf16 = reference.pycls_logits(pycls_model, images)
    np.testing.assert_allclose(fp32, torch.softmax(torch.from_numpy(pycls_fp32), 1).numpy(), atol=1e-5)  # same model
    assert 0 < np.abs(pycls_fp32 - pycls_bf16).max()  # autocast really computed in bfloat16
    assert top1_agreement(fp32, bf16) >= top1_agreement(pycls_fp32, pycls_bf16) - 0.003


def test_bf16_and_fp32_agree_on_top1_for_a_fresh_main_job_model(main_job_model, validation):
    images, labels = validation
    fp32, bf16 = logits_in("float32", main_job_model, images), logits_in("mixed_bfloat16", main_job_model, images)
    assert_a_trained_model_in_bfloat16(main_job_model, labels, fp32, bf16)
    assert top1_agreement(fp32, bf16) >= 0.98, top1_agreement(fp32, bf16)


def test_bf16_logits_of_pycls_initialised_regnety_800mf_within_5_percent():
    torch = require("torch")
    reference = require("pycls_reference")
    import pycls.models.regnet as pycls_regnet

    config = lookup("RegNetY-800MF").config
    reference.set_pycls_cfg(config)
    torch.manual_seed(0)
    pycls_model = pycls_regnet.RegNet().eval()  # pycls's own initialisation
    model = keras_regnet.RegNet(config, weights=None)
    set_torch_state(model, reference.state_numpy(pycls_model))
    images = np.random.default_rng(0).uniform(0, 255, (8, 224, 224, 3)).astype("float32")
    expected = reference.pycls_logits(pycls_model, images)
    model_logits = keras_regnet.RegNet(config, weights=None, classifier_activation=None)
    model_logits.set_weights(model.get_weights())
    fp32 = logits_in("float32", model_logits, images)
    np.testing.assert_allclose(fp32, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())  # same model
    bf16 = logits_in("mixed_bfloat16", model_logits, images)
    error = np.abs(bf16 - fp32).max() / np.abs(fp32).max()
    assert 0 < error <= 0.05, error


def test_a_model_built_under_the_global_policy_matches_set_dtype_policy():
    import keras

    config = keras_regnet.RegNetConfig(depth=2, w0=16, wa=8.0, wm=2.0, group_width=8, se_ratio=0.25)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        built = keras_regnet.RegNet(config, input_shape=(32, 32, 3), classes=5, classifier_activation=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    switched = keras_regnet.RegNet(config, input_shape=(32, 32, 3), classes=5, classifier_activation=None)
    switched.set_weights(built.get_weights())
    keras_regnet.set_dtype_policy(switched, "mixed_bfloat16")
    np.testing.assert_array_equal(np.asarray(built.predict(x, verbose=0)), np.asarray(switched.predict(x, verbose=0)))


def test_set_dtype_policy_refuses_unknown_policies():
    model = keras_regnet.RegNet(keras_regnet.RegNetConfig(depth=1, w0=8, wa=8.0, wm=2.0, group_width=8),
                                input_shape=(32, 32, 3), classes=2)
    with pytest.raises(ValueError, match="policy must be one of"):
        keras_regnet.set_dtype_policy(model, "bf16")
