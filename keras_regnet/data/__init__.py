"""Data: sources and pycls's transforms, for tf.data and for numpy.

``cifar10`` (the embedded subset and CIFAR-10 JPEG ``.npz`` files, decoded
without TensorFlow), ``geometry`` (constants and eval geometry shared by
both backends), ``tf_pipeline`` (tf.data) and ``numpy_pipeline``
(``keras.utils.PyDataset``, TensorFlow-free).
"""
