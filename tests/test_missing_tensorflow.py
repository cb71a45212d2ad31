"""Without TensorFlow: a clear error on its backend, and JAX still works.

The package installs no Keras backend by itself (``pip install
"keras-regnet[tensorflow]"``, ``[jax]`` or ``[torch]``).  With TensorFlow
blocked in the child process (tests/no_tensorflow.py through a one-line
``sitecustomize``), as where it is not installed:

* on ``KERAS_BACKEND=tensorflow`` (Keras's default), Keras itself fails
  inside ``import keras`` with ``No module named 'tensorflow'``; the first
  use of a model (``import keras_regnet`` starts no backend) and the
  ``keras-regnet`` command must instead say what to install or which
  backend to choose;
* on ``KERAS_BACKEND=jax`` the package imports and builds a model.
"""

import configparser
import os
import re
import subprocess
import sys

import pytest
from conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL_HINT = 'pip install "keras-regnet[tensorflow]"'


def run(args, backend, tmp_path):
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import no_tensorflow\n")  # tests/no_tensorflow.py, first thing
    env = dict(
        os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join([str(site), os.path.join(ROOT, "tests"), ROOT]),
    )
    proc = subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return proc, proc.stdout + proc.stderr


def requirement_names(text):
    """Distribution names (extras kept, versions dropped) of a setup.cfg requirement list."""
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return {re.split(r"[<>=!~;\s]", line)[0].lower() for line in lines if line}


def test_the_package_installs_no_backend_unless_asked():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    required = requirement_names(cfg["options"]["install_requires"])
    extras = {name: requirement_names(text) for name, text in cfg["options.extras_require"].items()}
    assert {"keras", "numpy", "h5py", "pillow", "matplotlib"} <= required
    assert not {"tensorflow", "tensorflow-datasets", "tensorboard", "jax", "jax[cpu]", "torch"} & required
    assert extras["tensorflow"] == {"tensorflow", "tensorflow-datasets", "importlib_resources", "tensorboard"}
    assert extras["jax"] == {"jax[cpu]"} and extras["torch"] == {"torch"}
    # The tests need every backend but the CPU torch is pinned, so it is listed itself; and Dask for sweeps.
    assert {"keras-regnet[tensorflow,jax,sweep]", "torch", "pytest"} <= extras["test"]
    assert extras["sweep"] == {"dask[distributed]"}


def test_keras_alone_fails_without_a_hint(tmp_path):
    # What users would see without our message: the reason this test file exists.
    proc, output = run(["-c", "import keras"], "tensorflow", tmp_path)
    assert proc.returncode != 0
    assert "ModuleNotFoundError: No module named 'tensorflow'" in output and INSTALL_HINT not in output


@pytest.mark.parametrize(
    "args",
    [["-c", "import keras_regnet; keras_regnet.RegNetX200MF"], ["-m", "keras_regnet.cli", "train", "--epochs", "1"]],
    ids=["first-use", "cli"],
)
def test_tensorflow_backend_without_tensorflow_says_what_to_do(args, tmp_path):
    proc, output = run(args, "tensorflow", tmp_path)
    assert proc.returncode != 0
    last = output.strip().splitlines()[-1]
    assert INSTALL_HINT in last and "KERAS_BACKEND=jax" in last, output[-3000:]
    assert not (tmp_path / "runs").exists()  # the CLI stopped before doing anything


def test_jax_backend_needs_no_tensorflow(tmp_path):
    require("jax")
    code = (
        "import sys, keras_regnet\n"
        "m = keras_regnet.get_model('RegNetX-200MF', input_shape=(32, 32, 3), classes=10)\n"
        "import keras\n"
        "print(keras.backend.backend(), m.count_params(), 'tensorflow' in sys.modules)\n"
    )
    proc, output = run(["-c", code], "jax", tmp_path)
    assert proc.returncode == 0, output[-3000:]
    backend, params, tf_loaded = output.strip().splitlines()[-1].split()
    assert (backend, tf_loaded) == ("jax", "False")
    assert int(params) > 2_000_000
