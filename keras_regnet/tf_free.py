"""Keep a process TensorFlow-free, as on machines that have JAX or PyTorch but no TensorFlow.

Training on JAX or PyTorch must not need TensorFlow (GPU hosts often lack
it).  :func:`block_tensorflow` makes every later ``import tensorflow`` fail
as for a module that is not installed, so a run that completes on a machine
with TensorFlow proves its path is TensorFlow-free;
:func:`tensorflow_imported` checks afterwards.  This module imports nothing
from the package or Keras: it can run first, e.g. from a ``sitecustomize``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys


class NoTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta-path finder whose ``tensorflow`` modules fail to load.

    The import fails with ``ModuleNotFoundError`` whose ``name`` is the
    module's, as for a module that is not installed.  ``find_spec`` itself
    does not raise (it returns a spec without origin): torch._dynamo probes
    for TensorFlow with ``importlib.util.find_spec`` on import and only reads
    the origin, and a finder that raised would break that probe.
    """

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "tensorflow":
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(
            f"No module named {spec.name!r} (blocked by keras_regnet.tf_free: this run must not need TensorFlow)",
            name=spec.name,
        )

    def exec_module(self, module):  # never reached: create_module raises
        raise AssertionError(module)


def tensorflow_imported() -> bool:
    """Whether any ``tensorflow`` module is loaded in this process."""
    return any(sys.modules.get(m) is not None for m in list(sys.modules) if m.partition(".")[0] == "tensorflow")


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
