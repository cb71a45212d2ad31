"""The transfer-learning example of docs/transfer_learning.md runs and does what it says."""

import importlib.util
import os

import numpy as np
from conftest import require  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example():
    path = os.path.join(ROOT, "examples", "transfer_learning_cifar10.py")
    spec = importlib.util.spec_from_file_location("transfer_learning_cifar10", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frozen_then_full_fine_tune(tmp_path, monkeypatch):
    pr = require("pycls_reference")
    import keras_regnet

    # "Pretrained" weights: a pycls checkpoint with random values, via weights=PATH.
    ckpt = tmp_path / "x200.pyth"
    torch_model = pr.pycls_model(keras_regnet.published_models()["RegNetX-200MF"].config)
    pr.torch.save({"model_state": torch_model.state_dict()}, ckpt)
    example = _example()
    args = example.parse_args([
        "--model", "RegNetX-200MF", "--weights", str(ckpt), "--data", "embedded", "--size", "32",
        "--train-images", "256", "--val-images", "128", "--batch", "64",
        "--head-epochs", "1", "--finetune-epochs", "1", "--verbose", "0",
    ])
    snapshots = {}
    original_fit = example.keras.Model.fit

    def fit_and_record(self, *a, **kw):
        backbone = self.get_layer("regnetx200mf")
        before = backbone.get_layer("s3_b2_b_conv").kernel.numpy().copy()
        head_before = self.get_layer("cifar_head").kernel.numpy().copy()
        out = original_fit(self, *a, **kw)
        snapshots[len(snapshots)] = (
            np.abs(backbone.get_layer("s3_b2_b_conv").kernel.numpy() - before).max(),
            before,
            np.abs(self.get_layer("cifar_head").kernel.numpy() - head_before).max(),
        )
        return out

    monkeypatch.setattr(example.keras.Model, "fit", fit_and_record)
    model, backbone, results = example.run(args)
    # Phase 1 leaves the backbone exactly as loaded and trains the head.
    assert snapshots[0][0] == 0 and snapshots[0][2] > 0
    # Phase 2 trains the backbone too.
    assert snapshots[1][0] > 0
    assert results["train_images"] == 256 and results["val_images"] == 128
    for key in ("head_only_val_accuracy", "finetuned_val_accuracy"):
        assert 0.0 <= results[key] <= 1.0
    # What phase 1 started from is the checkpoint (pycls kernel, Keras layout).
    pycls_kernel = torch_model.s3.b2.f.b.weight.detach().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(snapshots[0][1], pycls_kernel)
