"""Run in a subprocess with KERAS_BACKEND set: build, load weights, predict, train a step.

Usage: python backend_worker.py MODEL WEIGHTS INPUT.npy OUTPUT.npz
"""

import sys

import keras
import numpy as np

import keras_regnet
from keras_regnet.architecture.layers import pointwise_conv_as_matmul, resolved_grouped_conv_kernel

name, weights, inp, out = sys.argv[1:5]
x = np.load(inp)
model = keras_regnet.get_model(name, weights=weights, classifier_activation=None, input_shape=x.shape[1:])
logits = np.asarray(model.predict_on_batch(x))

# One training step must run and change the weights (gradients flow through
# grouped convs, SE and BN on this backend).
model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
conv = model.get_layer("s1_b1_b_conv")
before = keras.ops.convert_to_numpy(conv.kernel).copy()
history = model.fit(x, np.array([1, 2]), epochs=1, batch_size=2, verbose=0)
after = keras.ops.convert_to_numpy(conv.kernel)
np.savez(out, logits=logits, loss=history.history["loss"][0], changed=float(np.abs(after - before).max()),
         backend=keras.backend.backend(), grouped_conv_kernel=resolved_grouped_conv_kernel(),
         pointwise_as_matmul=pointwise_conv_as_matmul())
