"""Keep a process TensorFlow-free, as on machines that have JAX or PyTorch but no TensorFlow.

Training on JAX must not need TensorFlow (the lent GPU machines do not have
it).  :func:`block_tensorflow` makes every later ``import tensorflow`` fail,
so a run that completes with TensorFlow installed proves its path is
TensorFlow-free; :func:`tensorflow_imported` checks afterwards.

Importing this module imports Keras (through the package): set
``KERAS_BACKEND`` to a backend other than TensorFlow first.
"""

from __future__ import annotations

import sys


class NoTensorFlow:
    """A meta-path finder that fails every ``tensorflow`` import."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"{name} is blocked (keras_regnet.training.tf_free): this run must not need TensorFlow")
        return None


def tensorflow_imported() -> bool:
    """Whether any ``tensorflow`` module is loaded in this process."""
    return any(sys.modules.get(m) is not None for m in list(sys.modules) if m.split(".")[0] == "tensorflow")


def block_tensorflow() -> None:
    """Make every later ``import tensorflow`` in this process fail.

    Raises:
        RuntimeError: TensorFlow is already imported, so blocking it would
            prove nothing.
    """
    if tensorflow_imported():
        raise RuntimeError("tensorflow is already imported; block it before anything imports it")
    if not any(isinstance(f, NoTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, NoTensorFlow())


def tensorflow_looks_uninstalled() -> None:
    """Block TensorFlow and make it look uninstalled (``sys.modules["tensorflow"] = None``).

    Imports fail as with :func:`block_tensorflow`, and
    ``importlib.util.find_spec("tensorflow")`` answers ``None`` as where it is
    not installed: torch._dynamo probes for TensorFlow that way (on
    ``import timm``), and the finder's exception would break that probe.  Not
    for Keras processes: Keras takes a ``"tensorflow"`` entry in
    ``sys.modules`` for a loaded TensorFlow.
    """
    block_tensorflow()
    sys.modules["tensorflow"] = None
