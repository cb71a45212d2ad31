"""The 100-epoch comparison's tools: the shared subset and the pycls reference driver.

``benchmarks/cifar_subset.py`` must give both trainers the same pixels, and
``benchmarks/pycls_cifar10_reference.py`` (pycls's own trainer functions on
the CPU) must run, log one row per epoch and resume with the same command.
"""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
from conftest import require
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import cifar_subset  # noqa: E402

TINY_REGNET = '{"DEPTH": 2, "W0": 16, "WA": 8.0, "WM": 2.0, "GROUP_W": 8}'


def fake_shared_npz(path, per_class=6):
    """A CIFAR-10 JPEG .npz in the shared data's layout: real JPEG bytes of random 32x32 images."""
    rng = np.random.default_rng(0)
    blobs, labels = [], []
    for c in range(10):
        for _ in range(per_class):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
            blobs.append(np.frombuffer(buffer.getvalue(), np.uint8))
            labels.append(c)
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
    classes = np.array(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    np.savez(path, train_jpeg=np.concatenate(blobs), train_offsets=offsets, train_labels=np.array(labels), classes=classes)
    return path


def make_subset(tmp_path):
    out = tmp_path / "subset"
    cifar_subset.main(["--source", str(fake_shared_npz(tmp_path / "shared.npz")), "--out", str(out),
                       "--train-per-class", "4", "--val-per-class", "2"])
    return out


def test_pycls_arrays_hold_the_pixels_keras_regnet_decodes(tmp_path):
    tf = require("tensorflow")
    from keras_regnet.data.pipeline_tf import decode_files
    from keras_regnet.data.sources import open_source

    out = make_subset(tmp_path)
    source = open_source(str(out))
    assert (source.num_train, source.num_validation) == (40, 20)
    record = np.load(out / "pycls" / "test.npz")
    rows = record["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    ours = {os.path.basename(p): image.numpy() for p, (image, _) in
            zip(source.validation.files, decode_files(source.validation.files, source.validation.labels))}
    # Both lists are sorted by shared-data index, which the file names carry.
    names = sorted(ours)
    assert len(names) == len(rows) == 20
    for name, row in zip(names, rows):
        np.testing.assert_array_equal(ours[name], row)
    assert sorted(record["labels"]) == sorted(int(v) for v in source.validation.labels)
    assert tf is not None


def run_driver(out, run_dir, budget=None):
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "pycls_cifar10_reference.py"), "--data",
               str(out / "pycls"), "--output-dir", str(run_dir), "--epochs", "2", "--warmup-epochs", "1",
               "--batch-size", "8", "--regnet", TINY_REGNET, "--threads", "1"]
    if budget:
        command += ["--time-budget", str(budget)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pycls_driver_trains_logs_and_resumes(tmp_path):
    require("pycls")
    out = make_subset(tmp_path)
    run_dir = tmp_path / "pycls_run"
    first = run_driver(out, run_dir, budget=1e-3)  # stops after its first epoch
    assert (first["epochs_done"], first["complete"]) == (1, False)
    second = run_driver(out, run_dir)
    assert (second["epochs_done"], second["complete"]) == (2, True)
    with open(run_dir / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[0]["lr"]) == 0.1 * 8 / 128 * 0.1  # warm-up starts at 0.1 x the base rate
    assert all(0 <= float(r["val_top1_err"]) <= 100 and np.isfinite(float(r["loss"])) for r in rows)
