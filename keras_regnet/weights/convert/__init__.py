"""Converters: weights from other implementations onto the Keras RegNet, one module per source.

* :mod:`~keras_regnet.weights.convert.torch_state`: pycls and torchvision
  ``state_dict``s (:func:`set_torch_state`, :func:`torch_module_name`,
  :func:`naming_of`);
* :mod:`~keras_regnet.weights.convert.tf_keras`: tf-keras ``.h5`` files
  (:func:`set_tf_keras_weights`, :func:`read_tf_keras_h5`);
* :mod:`~keras_regnet.weights.convert.assign`: the checked assignment every
  converter ends with (all shapes checked before any value is written).

A new weight source gets its own module here and an entry in
``weights/manifest.json``.
"""

from keras_regnet.weights.convert.tf_keras import read_tf_keras_h5, set_tf_keras_weights, tf_keras_layer_name
from keras_regnet.weights.convert.torch_state import NAMINGS, naming_of, set_torch_state, torch_module_name

__all__ = [
    "NAMINGS",
    "naming_of",
    "read_tf_keras_h5",
    "set_tf_keras_weights",
    "set_torch_state",
    "tf_keras_layer_name",
    "torch_module_name",
]
