"""The recipe, step for step against pycls 0.1.1's own trainer code.

pycls's functions do the pycls side: its RegNet with the CIFAR stem
(``res_stem_cifar``), ``construct_optimizer``, ``get_epoch_lr``/``set_lr``
(inside ``trainer.train_epoch``), its loss, ``compute_precise_bn_stats``.
pycls 0.1.1 moves tensors with ``.cuda()``; the harness makes that (and its
GPU-memory meter) a no-op on this CPU-only torch, and replaces its logged
top-k error (which torch 2 cannot compute) by zeros: nothing that updates.  The package
side is ``keras_regnet.training.train`` itself, from the same initial weights
(a pycls checkpoint file) on the same batches.

Both sides run in float64: this network's backward pass on 2x2 and 4x4 maps
is ill-conditioned in float32 (float32 and float64 gradients of the same
PyTorch model already differ by percents), so float32 trajectories of any
two implementations part after a few steps.  In float64 a real difference in
the recipe shows far above the 1e-6 tolerance; the second test shows that the
0.1.0 optimizer (Keras's velocity convention) is caught by the same check.
"""

import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_regnet.architecture.config import RegNetConfig
from keras_regnet.architecture.models import RegNet
from keras_regnet.training import Recipe, train
from keras_regnet.training.loop import dtype_policy
from keras_regnet.training.optimizer import CoupledWeightDecaySGD, EpochCosineSchedule, TorchSGD
from keras_regnet.weights.convert import set_torch_state

torch = require("torch")
pycls_reference = require("pycls_reference")
pycls_config = require("pycls.core.config")
pycls_builders = require("pycls.core.builders")
pycls_meters = require("pycls.core.meters")
pycls_net = require("pycls.core.net")
pycls_optimizer = require("pycls.core.optimizer")
pycls_trainer = require("pycls.core.trainer")

import keras  # noqa: E402

CONFIG = RegNetConfig(depth=4, w0=16, wa=8.0, wm=2.0, group_width=8, stem_width=16, stem_stride=1)
EPOCHS, WARMUP, BATCH, STEPS, PRECISE_IMAGES = 4, 3, 16, 3, 32
TOLERANCE = 1e-10  # measured: 3e-14 (float64 rounding); the issue asks <= 1e-6


def configure_pycls(epochs=EPOCHS):
    """pycls's cfg for the parity run (returned with its previous values, to restore)."""
    cfg = pycls_config.cfg
    saved = cfg.clone()
    pycls_reference.set_pycls_cfg(CONFIG, num_classes=10)
    cfg.REGNET.STEM_TYPE = "res_stem_cifar"
    cfg.NUM_GPUS = 1
    cfg.TRAIN.BATCH_SIZE = BATCH
    cfg.OPTIM.BASE_LR, cfg.OPTIM.LR_POLICY, cfg.OPTIM.MAX_EPOCH = 0.1, "cos", epochs
    cfg.OPTIM.MOMENTUM, cfg.OPTIM.NESTEROV, cfg.OPTIM.DAMPENING, cfg.OPTIM.WEIGHT_DECAY = 0.9, True, 0.0, 5e-5
    cfg.OPTIM.WARMUP_EPOCHS, cfg.OPTIM.WARMUP_FACTOR = WARMUP, 0.1
    cfg.BN.USE_PRECISE_STATS, cfg.BN.NUM_SAMPLES_PRECISE = True, PRECISE_IMAGES
    cfg.LOG_PERIOD = 1000
    return saved


def patch_cuda(monkeypatch):
    """pycls 0.1.1 on a CUDA-less torch: ``.cuda()`` returns its receiver, GPU memory reads 0."""
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(pycls_meters, "gpu_mem_usage", lambda: 0)
    # pycls 0.1.1's topk_errors calls .view() on a non-contiguous tensor, which
    # torch 2 refuses; it only feeds the log, never the update, so log zeros.
    monkeypatch.setattr(pycls_meters, "topk_errors", lambda preds, labels, ks: [torch.zeros(()) for _ in ks])


@pytest.fixture
def cpu_pycls(monkeypatch):
    """pycls configured for the parity run, on the CPU."""
    patch_cuda(monkeypatch)
    saved = configure_pycls()
    yield pycls_config.cfg
    pycls_config.cfg.merge_from_other_cfg(saved)


class FixedOrder(torch.utils.data.RandomSampler):
    """A sampler pycls's ``loader.shuffle`` accepts that yields the examples in order."""

    def __iter__(self):
        return iter(range(len(self.data_source)))


def batches_data(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (BATCH * STEPS, 32, 32, 3)).astype(np.float64)
    labels = rng.integers(0, 10, BATCH * STEPS)
    return images, labels


def pycls_inputs(images):
    """pycls's view of RGB [0, 255] NHWC images: ImageNet-normalised, BGR, NCHW (float64)."""
    mean, std = np.array(pycls_reference.IMAGENET_MEAN), np.array(pycls_reference.IMAGENET_STD)
    x = (images / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x[..., ::-1].transpose(0, 3, 1, 2)))


def run_pycls(images, labels, checkpoint, epochs=EPOCHS, precise=True):
    """pycls's train_model loop body, epoch by epoch; the state after each epoch's precise BN."""
    torch.manual_seed(0)
    model = pycls_builders.build_model().double()
    torch.save({"model_state": model.state_dict()}, checkpoint)
    dataset = torch.utils.data.TensorDataset(pycls_inputs(images), torch.from_numpy(labels))
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, sampler=FixedOrder(dataset), drop_last=True)
    loss_fun = pycls_builders.build_loss_fun().cuda()
    optimizer = pycls_optimizer.construct_optimizer(model)
    meter = pycls_meters.TrainMeter(len(loader))
    states = []
    for epoch in range(epochs):
        pycls_trainer.train_epoch(loader, model, loss_fun, optimizer, meter, epoch)
        if precise:  # pycls's train_model: if cfg.BN.USE_PRECISE_STATS
            pycls_net.compute_precise_bn_stats(model, loader)
        weights = {k: v.copy() for k, v in pycls_reference.state_numpy(model).items()}  # numpy() shares memory
        names = [n for n, _ in model.named_parameters()]
        velocity = {n: optimizer.state[p]["momentum_buffer"].numpy().copy() for n, p in zip(names, model.parameters())}
        states.append((weights, {**weights, **velocity}))
    return states


class Snapshots(keras.callbacks.Callback):
    """Every variable and every SGD velocity, by path, at each epoch end."""

    def __init__(self):
        super().__init__()
        self.weights, self.velocities = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append({v.path: np.array(v) for v in self.model.weights})
        pairs = zip(self.model.trainable_variables, self.model.optimizer.momentums)
        self.velocities.append({v.path: np.array(m) for v, m in pairs})


def run_keras(images, labels, checkpoint, tmp_path, epochs=EPOCHS, precise=True):
    import tensorflow as tf

    one_hot = np.eye(10)[labels]
    data = tf.data.Dataset.from_tensor_slices((images, one_hot)).batch(BATCH)
    recipe = Recipe(
        epochs=epochs, batch_size=BATCH, base_lr=0.1, warmup_epochs=WARMUP, image_size=32, pca_lighting=0.0,
        precise_bn_images=PRECISE_IMAGES if precise else 0,
    )
    snapshots = Snapshots()
    train(
        CONFIG, data=data, validation_data=data, recipe=recipe, small_images=True, weights=str(checkpoint),
        mixed_precision="float64", output_dir=str(tmp_path / "run"), verbose=0, callbacks=[snapshots],
    )
    return snapshots


def as_keras(state):
    """A pycls state dict laid out as the Keras model's variables, by path (float64)."""
    with dtype_policy("float64"):
        model = RegNet(CONFIG, input_shape=(32, 32, 3), classes=10)
    set_torch_state(model, state)
    return {v.path: np.array(v) for v in model.weights}


def relative_errors(ours, reference):
    return {k: np.linalg.norm(ours[k] - reference[k]) / max(np.linalg.norm(reference[k]), 1e-300) for k in ours}


@pytest.mark.parametrize("precise", [True, False], ids=["precise-bn", "moving-averages"])
def test_training_equals_pycls_trainer_epoch_by_epoch(cpu_pycls, tmp_path, precise):
    """With precise BN (pycls's default) and without it: then the BatchNorm statistics compared are
    the moving averages of training, which tests PyTorch's unbiased running variance."""
    images, labels = batches_data()
    checkpoint = tmp_path / "init.pyth"
    expected = run_pycls(images, labels, checkpoint, precise=precise)
    snapshots = run_keras(images, labels, checkpoint, tmp_path, precise=precise)
    assert len(snapshots.weights) == EPOCHS
    for epoch, (weights, velocity_state) in enumerate(expected):
        errors = relative_errors(snapshots.weights[epoch], as_keras(weights))
        worst = max(errors, key=errors.get)
        assert errors[worst] <= TOLERANCE, f"epoch {epoch + 1}: {worst} differs by {errors[worst]:.2e}"
        velocities = as_keras(velocity_state)
        errors = relative_errors(snapshots.velocities[epoch], velocities)
        worst = max(errors, key=errors.get)
        assert errors[worst] <= TOLERANCE, f"epoch {epoch + 1}: velocity of {worst} differs by {errors[worst]:.2e}"
    moving = [k for k in snapshots.weights[-1] if k.endswith("moving_variance")]
    assert len(moving) > 10 and all(np.all(snapshots.weights[-1][k] > 0) for k in moving)


# ------------------------------------------------ the optimizer alone, convex


def logistic_gradient(weights, features, targets):
    """Gradient of softmax cross-entropy of a linear classifier (float64), weights (classes, dims)."""
    logits = features @ weights.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (p - targets).T @ features / len(features)


def torch_trajectory(lrs, momentum, nesterov, decay, start, features, targets):
    """Weights and velocity after each step of pycls's construct_optimizer + set_lr."""
    cfg = pycls_config.cfg
    saved = cfg.clone()
    cfg.OPTIM.BASE_LR, cfg.OPTIM.MOMENTUM, cfg.OPTIM.NESTEROV = lrs[0], momentum, nesterov
    cfg.OPTIM.WEIGHT_DECAY, cfg.OPTIM.DAMPENING, cfg.BN.USE_CUSTOM_WEIGHT_DECAY = decay, 0.0, False
    layer = torch.nn.Linear(start.shape[1], start.shape[0], bias=False).double()
    layer.weight.data.copy_(torch.from_numpy(start))
    optimizer = pycls_optimizer.construct_optimizer(layer)
    cfg.merge_from_other_cfg(saved)
    out = []
    for lr in lrs:
        pycls_optimizer.set_lr(optimizer, lr)
        layer.weight.grad = torch.from_numpy(logistic_gradient(layer.weight.detach().numpy(), features, targets))
        optimizer.step()
        velocity = optimizer.state[layer.weight].get("momentum_buffer")
        out.append((layer.weight.detach().numpy().copy(), None if velocity is None else velocity.numpy().copy()))
    return out


class StepRates(keras.optimizers.schedules.LearningRateSchedule):
    """Any learning rate per step, in float64 (a Keras learning-rate *variable* would be float32)."""

    def __init__(self, lrs):
        self.lrs = list(lrs)

    def __call__(self, step):
        return keras.ops.take(keras.ops.convert_to_tensor(self.lrs, dtype="float64"), step)


def keras_trajectory(optimizer_class, lrs, momentum, nesterov, decay, start, features, targets):
    variable = keras.Variable(start.T.copy(), dtype="float64")  # Keras layout: (dims, classes)
    optimizer = optimizer_class(l2=decay, learning_rate=StepRates(lrs), momentum=momentum, nesterov=nesterov)
    optimizer.build([variable])
    out = []
    for _ in lrs:
        gradient = logistic_gradient(np.array(variable).T, features, targets).T
        optimizer.apply_gradients([(gradient, variable)])
        velocity = np.array(optimizer.momentums[0]).T if momentum else None
        out.append((np.array(variable).T, velocity))
    return out


def convex_problem(seed):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(64, 5))
    targets = np.eye(3)[rng.integers(0, 3, 64)]
    return rng.normal(size=(3, 5)), features, targets


def max_relative_error(ours, reference):
    errors = [np.linalg.norm(a - b) / np.linalg.norm(b) for (wa, va), (wb, vb) in zip(ours, reference)
              for a, b in ((wa, wb), (va, vb)) if a is not None and b is not None]
    return max(errors)


@settings(max_examples=25, deadline=None)
@given(
    lrs=st.lists(st.floats(1e-3, 2.0), min_size=2, max_size=8),
    momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    nesterov=st.booleans(),
    decay=st.sampled_from([0.0, 5e-5, 1e-2]),
    seed=st.integers(0, 2**16),
)
def test_optimizer_equals_torch_sgd_under_any_learning_rate_changes(lrs, momentum, nesterov, decay, seed):
    nesterov = nesterov and momentum > 0  # PyTorch refuses Nesterov without momentum
    problem = convex_problem(seed)
    expected = torch_trajectory(lrs, momentum, nesterov, decay, *problem)
    ours = keras_trajectory(TorchSGD, lrs, momentum, nesterov, decay, *problem)
    # float64 rounding only: PyTorch fuses ``p - lr * d`` (FMA), Keras does not.
    assert max_relative_error(ours, expected) <= 1e-10


def test_keras_velocity_convention_differs_exactly_when_the_learning_rate_changes():
    """Why TorchSGD exists: 0.1.0's optimizer (Keras's velocity) matches PyTorch only at a constant rate."""
    problem = convex_problem(0)
    for lrs, should_match in (([0.1] * 6, True), ([0.01, 0.03, 0.05, 0.07, 0.09, 0.1], False)):
        expected = torch_trajectory(lrs, 0.9, True, 5e-5, *problem)
        old = keras_trajectory(CoupledWeightDecaySGD, lrs, 0.9, True, 5e-5, *problem)
        error = max_relative_error([(w, None) for w, _ in old], expected)
        # Keras's SGD rounds its momentum and our old decay to float32: 1e-6 at best.
        assert (error <= 1e-6) == should_match, error
        if not should_match:
            assert error > 1e-2


def test_schedule_is_pycls_get_epoch_lr_to_the_last_bit(cpu_pycls):
    cfg = cpu_pycls
    cfg.OPTIM.BASE_LR, cfg.OPTIM.MAX_EPOCH, cfg.OPTIM.WARMUP_EPOCHS, cfg.OPTIM.WARMUP_FACTOR = 0.8, 100, 5, 0.1
    schedule = EpochCosineSchedule(0.8, 100, 7, warmup_epochs=5, warmup_factor=0.1)
    steps = np.arange(0, 700)
    ours = np.array([keras.ops.convert_to_numpy(schedule(int(s))) for s in steps[::3]])
    assert ours.dtype == np.float64
    expected = np.array([pycls_optimizer.get_epoch_lr(int(s) // 7) for s in steps[::3]])
    np.testing.assert_allclose(ours, expected, rtol=1e-15, atol=0)


# ------------------------------------------- mixed precision against float32

MIXED_TOLERANCE = {"mixed_float16": 0.02, "mixed_bfloat16": 0.05}


def one_step_update(policy, init, images, labels):
    """The change one recipe step (compile_model, train_on_batch) makes to every trainable variable."""
    from keras_regnet.training import compile_model

    config = RegNetConfig(depth=4, w0=16, wa=8.0, wm=2.0, group_width=8, se_ratio=0.25, stem_width=16, stem_stride=1)
    with dtype_policy(policy):
        model = RegNet(config, input_shape=(32, 32, 3), classes=10)
        if init is not None:
            model.set_weights(init)
        init = model.get_weights()
        before = [np.array(v, np.float64) for v in model.trainable_variables]
        compile_model(model, Recipe(epochs=10, batch_size=32, image_size=32), steps_per_epoch=1)
        model.train_on_batch(images, labels)
    update = np.concatenate([(np.array(v, np.float64) - b).ravel() for v, b in zip(model.trainable_variables, before)])
    return init, update


@pytest.mark.parametrize("policy", sorted(MIXED_TOLERANCE))
def test_mixed_precision_step_is_the_float32_step_within_its_rounding(policy):
    """One step from the same weights: the update vector within 2% (float16) / 5% (bfloat16) of float32's.

    Why these bounds: activations and gradients are rounded to 11 (float16) or
    8 (bfloat16) significant bits at every layer, about 2^-11 and 2^-8 each,
    and a RegNet step goes through ~40 such layers forward and back; measured:
    0.9% and 2.4%.  Variables stay float32, so the update itself is not rounded.
    (For scale: float32's own update is 1.7% from float64's on these 2x2-16x16
    maps, and float16/bfloat16 are 1.8%/2.8% from float64's.)
    """
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (32, 32, 32, 3)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 32)]
    init, reference = one_step_update("float32", None, images, labels)
    _, again = one_step_update("float32", init, images, labels)
    _, mixed = one_step_update(policy, init, images, labels)
    assert np.linalg.norm(again - reference) <= 1e-6 * np.linalg.norm(reference)  # the comparison is deterministic
    error = np.linalg.norm(mixed - reference) / np.linalg.norm(reference)
    assert 0 < error <= MIXED_TOLERANCE[policy]
