"""Does the input pipeline keep up with training?  Images/s of each, one run.

    python benchmarks/input_pipeline.py [--steps 30]
    KERAS_BACKEND=jax python benchmarks/input_pipeline.py   # the TensorFlow-free pipeline

Both go through :func:`keras_regnet.data.prepare`: tf.data on TensorFlow, a
``keras.utils.PyDataset`` (numpy + Pillow) on other backends.

Measures (CPU, this machine):
* the training input pipeline alone (decode + augment + batch + prefetch):
  - small-image path: the embedded CIFAR-10 subset, 32x32, batch 64;
  - ImageNet path: a folder of 400 synthetic 500x375 JPEGs (decode,
    Inception crop to 224, flip, PCA lighting), batch 32;
* model.fit training steps at the same sizes (RegNetX-200MF, stride-1 stem at
  32 px; RegNetY-800MF at 224 px), with the pipeline feeding them.
The pipeline keeps up when its images/s exceed the training images/s.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_regnet.data import numpy_batches, prepare  # noqa: E402
from keras_regnet.training import Recipe, compile_model  # noqa: E402


def forever(batches):
    while True:
        yield from numpy_batches(batches)


def pipeline_rate(batches, steps):
    it = forever(batches)
    next(it)
    t = time.perf_counter()
    n = 0
    for _ in range(steps):
        x, _ = next(it)
        n += int(x.shape[0])
    return n / (time.perf_counter() - t)


def training_rate(model, batches, steps, recipe):
    compile_model(model, recipe, steps_per_epoch=steps)
    model.fit(batches, epochs=1, steps_per_epoch=2, verbose=0)  # trace
    t = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * recipe.batch_size / (time.perf_counter() - t)


def jpeg_folder(root, n=400):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(4):
        os.makedirs(os.path.join(root, f"c{c}"), exist_ok=True)
        for i in range(n // 4):
            img = rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)
            Image.fromarray(img).save(os.path.join(root, f"c{c}", f"{i}.jpg"), quality=90)
    return root


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    import keras_regnet
    from dataclasses import replace

    small = Recipe(epochs=1, batch_size=64, image_size=32)
    train_small = prepare("embedded", small, small_images=True).train
    p_small = pipeline_rate(train_small, args.steps)
    cfg = replace(keras_regnet.published_models()["RegNetX-200MF"].config, stem_stride=1)
    m_small = keras_regnet.RegNet(cfg, input_shape=(32, 32, 3), classes=10)
    t_small = training_rate(m_small, train_small, args.steps, small)

    big = Recipe(epochs=1, batch_size=32, image_size=224)
    with tempfile.TemporaryDirectory() as d:
        train_big = prepare(jpeg_folder(d), big, small_images=False).train
        p_big = pipeline_rate(train_big, args.steps)
        m_big = keras_regnet.get_model("RegNetY-800MF", classes=4)
        t_big = training_rate(m_big, train_big, max(3, args.steps // 6), big)
    print("| path | pipeline images/s | training images/s | pipeline / training |")
    print("|---|---:|---:|---:|")
    print(f"| CIFAR 32x32, RegNetX-200MF (stride-1 stem), batch 64 | {p_small:.0f} | {t_small:.0f} | {p_small / t_small:.1f}x |")
    print(f"| JPEG 500x375 -> 224, RegNetY-800MF, batch 32 | {p_big:.0f} | {t_big:.1f} | {p_big / t_big:.1f}x |")


if __name__ == "__main__":
    main()
