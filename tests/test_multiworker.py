"""MultiWorkerMirroredStrategy for real: two worker processes on 127.0.0.1 (CPU).

Keras 3.15's TensorFlow trainer cannot run ``fit`` under a multi-worker
MultiWorkerMirroredStrategy on its own (keras-team/keras#20585): it all-reduces
the first input batch to build the model (``_maybe_symbolic_build``: "Attempt
to convert a value (PerReplica...)") and then fails reducing the scalar
metric values (``reduce_per_replica``: "Invalid reduction dimension 0 for
input with 0 dimensions").  ``keras_regnet.training.train`` works around both
(``keras_regnet.training.distribute.enable_multi_worker_fit``); this test runs the CLI on two workers and
checks that they trained in sync.
"""

import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


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
    # Logged metrics are global (reduced over both workers), so identical.
    assert results[0]["final"] == results[1]["final"]
    # Synchronous data parallelism: both workers end with the same trainable
    # weights and optimizer state, bit for bit.  BatchNorm's moving mean and
    # variance are not synchronised: each replica updates them from its own
    # half of the batch (Keras's default synchronized=False, as PyTorch DDP
    # without SyncBatchNorm), so they differ slightly between workers.
    import keras

    import keras_regnet.training  # noqa: F401  (registers the layers and the optimizer for loading)

    a, b = (keras.models.load_model(tmp_path / f"w{i}" / "last.keras") for i in range(2))
    assert len(a.trainable_weights) == len(b.trainable_weights) > 0
    for x, y in zip(a.trainable_weights + a.optimizer.variables, b.trainable_weights + b.optimizer.variables):
        assert (x.numpy() == y.numpy()).all(), x.path
