"""Importing this module makes every later ``import tensorflow`` in the process fail.

As on GPU hosts that have JAX or PyTorch but no TensorFlow: a run that
completes with it installed proves its path is TensorFlow-free.  Used by
tests/jax_train_worker.py, tests/torch_train_worker.py and
tests/test_missing_tensorflow.py and, through a one-line ``sitecustomize``,
by tests/test_gpu_training_script.py.  The blocker is the package's own
(:mod:`keras_regnet.tf_free`), so the tests prove what the benchmarks use.
"""

from keras_regnet.tf_free import block_tensorflow

block_tensorflow()
