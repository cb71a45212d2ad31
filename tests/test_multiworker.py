"""MultiWorkerMirroredStrategy for real: two worker processes on 127.0.0.1 (CPU).

Known to fail with Keras 3.15 + TensorFlow 2.21: Keras's TensorFlow trainer
all-reduces the first input batch to build the model
(``_maybe_symbolic_build``: "Attempt to convert a value (PerReplica...)"),
and, worked around, its ``reduce_per_replica`` then fails on metric values
("Invalid reduction dimension 0 for input with 0 dimensions").  Marked as a
strict expected failure: it starts passing (and then fails the suite, to be
unmarked) once Keras fixes multi-worker training.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.xfail(strict=True, reason="Keras 3.15 TF trainer cannot run MultiWorkerMirroredStrategy (see module doc)")
def test_two_workers_train_in_sync(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(
            os.environ,
            PYTHONPATH=ROOT,
            TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
        )
        cmd = [sys.executable, "-m", "keras_regnet.cli", "train", "--model", "RegNetX-200MF", "--epochs", "1",
               "--batch-size", "64", "--strategy", "multiworker", "--output-dir", str(tmp_path / f"w{index}")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=420)
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    results = [json.loads((tmp_path / f"w{i}" / "results.json").read_text()) for i in range(2)]
    assert [r["replicas"] for r in results] == [2, 2]
    # Synchronous data parallelism: both workers end with the same weights.
    import keras

    a = keras.models.load_model(tmp_path / "w0" / "last.keras").get_weights()
    b = keras.models.load_model(tmp_path / "w1" / "last.keras").get_weights()
    assert all((x == y).all() for x, y in zip(a, b))
