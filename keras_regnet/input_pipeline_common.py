"""Constants shared by the tf.data and the numpy input pipelines."""

import numpy as np

# AlexNet PCA lighting (Krizhevsky et al. 2012), as pycls uses it, RGB order.
EIG_VALS = np.array([0.2175, 0.0188, 0.0045], np.float32)
EIG_VECS = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], np.float32
)
