"""Train under KERAS_BACKEND=jax with TensorFlow made unimportable.

Usage: python jax_train_worker.py OUTPUT_DIR

As on the lent GPU machines, which have JAX but no TensorFlow: any import of
tensorflow fails, so a run that completes proves the data path is TF-free.
"""

import json
import sys

import no_tensorflow  # noqa: F401  (first: blocks tensorflow; tests/ is this script's sys.path[0])

import keras  # noqa: E402

from keras_regnet import RegNetConfig  # noqa: E402
from keras_regnet.training import Recipe, train  # noqa: E402

# A small RegNet keeps XLA's CPU compile and grouped convolutions quick.
config = RegNetConfig(depth=4, w0=24, wa=24.0, wm=2.5, group_width=8)
recipe = Recipe(epochs=2, batch_size=64, image_size=32, warmup_epochs=1)
results = train(config, output_dir=sys.argv[1], recipe=recipe, verbose=0)
results["keras_backend"] = keras.backend.backend()
results["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(results))
