"""Train under KERAS_BACKEND=torch with TensorFlow made unimportable, then reload and try an export.

Usage: python torch_train_worker.py OUTPUT_DIR

Prints one JSON line: ``train``'s results plus what this process saw (the
backend, whether TensorFlow got imported, the reloaded checkpoint's
predictions, the export error).
"""

import json
import os
import sys

import no_tensorflow  # noqa: F401  (first: blocks tensorflow; tests/ is this script's sys.path[0])

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_regnet import RegNetConfig, export  # noqa: E402
from keras_regnet.safe_io import load_keras_model  # noqa: E402
from keras_regnet.training import Recipe, train  # noqa: E402

# A small RegNet keeps the run short; grouped convolutions (group width 8) included.
config = RegNetConfig(depth=4, w0=24, wa=24.0, wm=2.5, group_width=8)
recipe = Recipe(epochs=2, batch_size=64, image_size=32, warmup_epochs=1)
results = train(config, output_dir=sys.argv[1], recipe=recipe, verbose=0)

model = load_keras_model(os.path.join(sys.argv[1], "last.keras"))
probs = np.asarray(model.predict_on_batch(np.full((2, 32, 32, 3), 128.0, "float32")))
try:
    export.export_onnx(model, os.path.join(sys.argv[1], "m.onnx"))
    export_error = None
except RuntimeError as e:
    export_error = str(e)

results["keras_backend"] = keras.backend.backend()
results["tensorflow_imported"] = any(m.partition(".")[0] == "tensorflow" for m in sys.modules)
results["reloaded_probability_sums"] = probs.sum(axis=1).tolist()
results["export_error"] = export_error
print(json.dumps(results))
