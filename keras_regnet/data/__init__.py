"""Data: sources and pycls's transforms, one path for every backend.

* :func:`prepare` (:mod:`~keras_regnet.data.pipeline`): data (a name, numpy
  arrays, or ready batches) and a recipe in, :class:`TrainingData` (batches
  for ``model.fit``) out: ``tf.data`` on TensorFlow, ``keras.utils.PyDataset``
  elsewhere; :func:`eval_batches` for evaluation.
* :class:`Source` / :class:`Examples` (:mod:`~keras_regnet.data.sources`):
  the one description of a data source, opened by :func:`open_source`,
  :func:`open_eval_source` or :func:`from_arrays`.
* ``transforms_tf`` / ``transforms_numpy``: each pycls transform once per
  backend, same names and signatures; ``augment`` composes either into the
  recipe's train and eval transforms; ``geometry`` holds their constants.
* ``cifar10``: the embedded subset and CIFAR-10 JPEG ``.npz`` files
  (decoded with Pillow).

Importing this package (and everything but ``transforms_tf`` /
``pipeline_tf``) does not import TensorFlow.
"""

from keras_regnet.data.augment import eval_transform_name
from keras_regnet.data.pipeline import TrainingData, eval_batches, numpy_batches, prepare
from keras_regnet.data.sources import Examples, Source, from_arrays, open_eval_source, open_source

__all__ = [
    "Examples",
    "Source",
    "TrainingData",
    "eval_batches",
    "eval_transform_name",
    "from_arrays",
    "numpy_batches",
    "open_eval_source",
    "open_source",
    "prepare",
]
