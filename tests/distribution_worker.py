"""Worker of tests/test_distribution_exact.py: the same steps on 1 and on 2 devices of one backend.

    python distribution_worker.py BACKEND IN.npz OUT.npz

The process gets 2 devices before its backend starts: TensorFlow 2 logical
CPU devices (``strategy="mirrored"``), JAX 2 host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``,
``strategy="data_parallel"``).  The 1-device runs use ``strategy="none"``
(one device: TensorFlow's default strategy, JAX's first device).  IN holds
the initial weights, the images and the one-hot labels; every run builds the
RegNet from those weights, compiles it with ``compile_model`` (the recipe's
TorchSGD) and takes ``len(images) / BATCH`` steps in order, as ``train()``
does it (build and compile in the distribution's scope, ``prepare_model``,
``fit`` in the scope).  OUT gets, per run ``{bn}-{devices}``, the weights
(``{run}/w{i}``, their paths in ``{run}/names``) and

* TensorFlow, 2 devices: every variable's copy on the second replica
  (``{run}/replica1/w{i}``; reads and saves give the first replica's);
* JAX: the shape of the image batch one device holds inside the training
  step (``{run}/shard_shape``) and the number of devices holding it
  (``{run}/shard_devices``), read with ``jax.debug.inspect_array_sharding``.

BN: ``frozen`` (BatchNorm layers non-trainable, so in inference mode) or
``train``.  TensorFlow also runs ``halves-1``: per-replica statistics
computed on one device (:func:`train_on_halves`); then precise BN on
``train-2`` in batches of 16 and on ``halves-1`` in batches of 8
(``precise-2``, ``precise-halves``: :func:`run_precise`); then ``again``
(:func:`run_again`).  JAX also runs
``train()-2``: ``keras_regnet.training.train(strategy="data_parallel")``
itself, for the shard shape only.
"""

import os
import sys
import tempfile

BACKEND, IN, OUT = sys.argv[1:4]
os.environ["KERAS_BACKEND"] = BACKEND
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
else:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_regnet import RegNet, RegNetConfig  # noqa: E402
from keras_regnet.training import Recipe, compile_model, make_distribution, recompute_batch_norm_statistics, train  # noqa: E402
from keras_regnet.training.precise_bn import batch_norm_layers  # noqa: E402

CONFIG = RegNetConfig(depth=4, w0=16, wa=8.0, wm=2.0, group_width=8, stem_width=16, stem_stride=1)
BATCH = 16
RECIPE = Recipe(epochs=1, batch_size=BATCH, base_lr=0.1, warmup_epochs=0, image_size=32, precise_bn_images=0)


class ShardProbe(keras.callbacks.Callback):
    """JAX: records how the image batch is laid out on the devices inside the jitted training step."""

    def __init__(self):
        super().__init__()
        self.shard_shape, self.devices = None, None

    def set_model(self, model):  # before fit makes its training function from model.train_step
        super().set_model(model)
        if BACKEND != "jax" or "train_step" in vars(model):
            return
        import jax

        step = model.train_step

        def probed(state, data):
            images = data[0]

            def record(sharding):
                self.shard_shape, self.devices = sharding.shard_shape(images.shape), len(sharding.device_set)

            jax.debug.inspect_array_sharding(images, callback=record)
            return step(state, data)

        model.train_step = probed


def build(data, distribution, bn):
    with distribution.scope():
        model = RegNet(CONFIG, input_shape=(32, 32, 3), classes=10)
        model.set_weights([data[f"w{i}"] for i in range(len(model.weights))])
        for layer in batch_norm_layers(model):
            layer.trainable = bn != "frozen"  # Keras 3: a non-trainable BatchNorm runs in inference mode
        compile_model(model, RECIPE, steps_per_epoch=len(data["images"]) // BATCH)
    return distribution.prepare_model(model)


def train_on_halves(model, images, labels):
    """Per-replica statistics on one device.

    Each step's gradient is the mean of the two half-batches' gradients
    (``model.compute_loss``, the compiled loss), each half normalised by its
    own batch statistics.  The moving statistics follow two chains, one per
    half, as two replicas' own copies would: returns the second chain; the
    model keeps the first.
    """
    import tensorflow as tf

    moving = [v for layer in batch_norm_layers(model) for v in (layer.moving_mean, layer.moving_variance)]
    chains = [[v.numpy() for v in moving], [v.numpy() for v in moving]]
    for start in range(0, len(images), BATCH):
        grads = []
        for k, half in enumerate((slice(start, start + BATCH // 2), slice(start + BATCH // 2, start + BATCH))):
            for v, value in zip(moving, chains[k]):
                v.assign(value)
            with tf.GradientTape() as tape:
                loss = model.compute_loss(y=labels[half], y_pred=model(images[half], training=True), training=True)
            grads.append(tape.gradient(loss, model.trainable_variables))
            chains[k] = [v.numpy() for v in moving]
        model.optimizer.apply_gradients(zip([(a + b) / 2 for a, b in zip(*grads)], model.trainable_variables))
    for v, value in zip(moving, chains[0]):
        v.assign(value)
    return {m.path: value for m, value in zip(moving, chains[1])}


def make(devices):
    return make_distribution("none" if devices == 1 else ("mirrored" if BACKEND == "tensorflow" else "data_parallel"))


def run(data, bn, distribution, name=None):
    """One run; its results keyed ``name`` (default ``{bn}-{replicas}``) ``/...``."""
    devices = distribution.replicas
    model, probe, name, results = build(data, distribution, bn), ShardProbe(), name or f"{bn}-{devices}", {}
    if bn == "halves":
        second = train_on_halves(model, data["images"], data["labels"])
        results.update({f"{name}/replica1/w{i}": second.get(w.path, w.numpy()) for i, w in enumerate(model.weights)})
    else:
        with distribution.scope():
            model.fit(data["images"], data["labels"], batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[probe])
    results.update({f"{name}/w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())})
    results[f"{name}/names"] = np.array([w.path for w in model.weights])
    if BACKEND == "tensorflow" and devices == 2:
        local = distribution.strategy.experimental_local_results
        assert all(len(local(w.value)) == 2 for w in model.weights)
        results.update({f"{name}/replica1/w{i}": local(w.value)[1].numpy() for i, w in enumerate(model.weights)})
    if probe.shard_shape is not None:
        results.update({f"{name}/shard_shape": probe.shard_shape, f"{name}/shard_devices": probe.devices})
    return results, model


def run_precise(data, model, name, batch):
    """TensorFlow: precise BN (``recompute_batch_norm_statistics``) over the images in batches of ``batch``;
    every replica's copy of the moving statistics (``{name}/replica{r}/{path}``)."""
    import tensorflow as tf

    batches = len(data["images"]) // batch
    recompute_batch_norm_statistics(model, tf.data.Dataset.from_tensor_slices(data["images"]).batch(batch), batches)
    local = model.distribute_strategy.experimental_local_results
    return {f"{name}/replica{r}/{v.path}": np.asarray(copy) for layer in batch_norm_layers(model)
            for v in (layer.moving_mean, layer.moving_variance) for r, copy in enumerate(local(v.value))}


class Batches(keras.utils.PyDataset):
    """The worker's images and labels as ready batches of ``BATCH``, in order."""

    def __init__(self, images, labels):
        super().__init__()
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images) // BATCH

    def __getitem__(self, index):
        return self.images[index * BATCH : (index + 1) * BATCH], self.labels[index * BATCH : (index + 1) * BATCH]


def run_train(data):
    """JAX: the shard shape under ``train(strategy="data_parallel")`` (one step)."""
    probe = ShardProbe()
    with tempfile.TemporaryDirectory() as output_dir:
        train(CONFIG, data=Batches(data["images"][:BATCH], data["labels"][:BATCH]), output_dir=output_dir, recipe=RECIPE,
              strategy="data_parallel", verbose=0, callbacks=[probe])
    return {"train()-2/shard_shape": probe.shard_shape, "train()-2/shard_devices": probe.devices}


def run_again(data):
    """TensorFlow: ``train-2`` again with a fresh ``make_distribution("mirrored")``, as a second ``train()``
    call in the same process makes (tensorflow/tensorflow#62790); its weights, and its error or ``""``."""
    try:
        results, _ = run(data, "train", make(2), name="again")  # its collectives differ from frozen-2's
        return {**results, "again/error": ""}
    except Exception as error:  # noqa: BLE001  (reported to the test, which shows it)
        return {"again/error": f"{type(error).__name__}: {str(error)[:2000]}"}


def main():
    data = dict(np.load(IN))
    one, two = make(1), make(2)  # one MirroredStrategy for all 2-device runs; run_again makes another
    assert (one.replicas, two.replicas) == (1, 2), (one.replicas, two.replicas)
    results, models = {}, {}
    for bn in ("frozen", "train"):
        for distribution in (one, two):
            found, models[f"{bn}-{distribution.replicas}"] = run(data, bn, distribution)
            results.update(found)
    if BACKEND == "tensorflow":
        found, halves = run(data, "halves", one)
        results.update(found)
        results.update(run_precise(data, models["train-2"], "precise-2", BATCH))
        results.update(run_precise(data, halves, "precise-halves", BATCH // 2))
        results.update(run_again(data))
    else:
        results.update(run_train(data))
    np.savez(OUT, **{k: np.asarray(v if v is not None else -1) for k, v in results.items()})


if __name__ == "__main__":
    main()
