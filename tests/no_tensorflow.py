"""Importing this module makes every later ``import tensorflow`` in the process fail.

As on the lent GPU machines, which have JAX but no TensorFlow: a run that
completes with it installed proves its data path is TensorFlow-free.  Used by
tests/jax_train_worker.py and, through a one-line ``sitecustomize``, by
tests/test_gpu_training_script.py.
"""

import sys


class NoTensorFlow:
    """A meta-path finder that fails every tensorflow import."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"{name} is blocked by tests/no_tensorflow.py: this run must not need TensorFlow")
        return None


if not any(isinstance(f, NoTensorFlow) for f in sys.meta_path):
    sys.meta_path.insert(0, NoTensorFlow())
