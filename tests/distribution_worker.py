"""Worker of tests/test_distribution_exact.py: a few recipe steps on 1 or 2 devices of one backend.

    python distribution_worker.py BACKEND DEVICES BN IN.npz OUT.npz

BACKEND: ``tensorflow`` (2 logical CPU devices, ``strategy="mirrored"``) or
``jax`` (2 host devices, ``strategy="data_parallel"``); BN: ``frozen``
(BatchNorm in inference mode), ``train``, or ``halves`` / ``halves_mean``
(TensorFlow, 1 device: references for per-replica statistics, see
``train_on_halves``).  IN holds the
initial weights, the images and the labels; OUT gets the weights after one
epoch of ``STEPS`` steps in the same order.
"""

import os
import sys

BACKEND, DEVICES, BN, IN, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
os.environ["KERAS_BACKEND"] = BACKEND
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"
else:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_regnet import RegNet, RegNetConfig  # noqa: E402
from keras_regnet.training import Recipe, compile_model, make_distribution  # noqa: E402
from keras_regnet.training.precise_bn import batch_norm_layers  # noqa: E402

CONFIG = RegNetConfig(depth=4, w0=16, wa=8.0, wm=2.0, group_width=8, stem_width=16, stem_stride=1)
BATCH = 16


def build(data, distribution):
    with distribution.scope():
        model = RegNet(CONFIG, input_shape=(32, 32, 3), classes=10)
        model.set_weights([data[f"w{i}"] for i in range(len(model.weights))])
        for layer in batch_norm_layers(model):
            layer.trainable = BN != "frozen"  # Keras 3: a non-trainable BatchNorm runs in inference mode
        steps = len(data["images"]) // BATCH
        recipe = Recipe(epochs=1, batch_size=BATCH, base_lr=0.1, warmup_epochs=0, image_size=32, precise_bn_images=0)
        compile_model(model, recipe, steps_per_epoch=steps)
    return distribution.prepare_model(model)


def train_on_halves(model, images, labels):
    """Per-replica statistics on one device: each step's gradient is the mean of the two half-batches'
    gradients, each half normalised by its own batch statistics.  Moving statistics: the first
    half's update (``halves``) or the mean of both halves' (``halves_mean``)."""
    import tensorflow as tf

    loss_fn = keras.losses.CategoricalCrossentropy()
    moving = [v for layer in batch_norm_layers(model) for v in (layer.moving_mean, layer.moving_variance)]
    for start in range(0, len(images), BATCH):
        before, grads, after = [v.numpy() for v in moving], [], []
        for half in (slice(start, start + BATCH // 2), slice(start + BATCH // 2, start + BATCH)):
            for v, b in zip(moving, before):
                v.assign(b)
            with tf.GradientTape() as tape:
                loss = loss_fn(labels[half], model(images[half], training=True))
            grads.append(tape.gradient(loss, model.trainable_variables))
            after.append([v.numpy() for v in moving])
        for k, v in enumerate(moving):
            v.assign(after[0][k] if BN == "halves" else (after[0][k] + after[1][k]) / 2)
        model.optimizer.apply_gradients(zip([(a + b) / 2 for a, b in zip(*grads)], model.trainable_variables))


def main():
    data = np.load(IN)
    images, labels = data["images"], data["labels"]
    name = "none" if DEVICES == 1 else ("mirrored" if BACKEND == "tensorflow" else "data_parallel")
    distribution = make_distribution(name)
    assert distribution.replicas == DEVICES or BACKEND == "jax", distribution.replicas
    model = build(data, distribution)
    if BN.startswith("halves"):
        train_on_halves(model, images, labels)
    else:
        model.fit(images, labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    np.savez(OUT, replicas=distribution.replicas, names=np.array([v.path for v in model.weights]),
             **{f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())})


if __name__ == "__main__":
    main()
