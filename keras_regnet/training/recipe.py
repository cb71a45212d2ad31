"""The pycls training recipe of the published RegNets, for ``model.fit``.

pycls (configs/dds_baselines) trains every published model with: SGD,
momentum 0.9, Nesterov; base learning rate 0.1 x batch / 128 (0.8 at 1024);
half-period cosine over 100 epochs; 5 warm-up epochs rising linearly from
0.1 x; weight decay 5e-5 on *all* parameters (BatchNorm included), coupled
into the gradient as PyTorch's SGD does; plain cross-entropy; BatchNorm
statistics recomputed over 8,192 training images after every epoch (precise
BN).  The learning rate is set once per epoch (pycls's ``get_epoch_lr``).

:class:`Recipe` holds those defaults (every field overridable, modern extras
off); :func:`compile_model` applies it to a Keras model.
"""


from __future__ import annotations

import dataclasses
import math
from typing import Optional

from keras_regnet.architecture.config import check_int
from keras_regnet.architecture.zoo import lookup

OPTIMIZERS = ("sgd", "adamw")


def linear_scaled_lr(batch_size: int) -> float:
    """pycls's learning-rate rule: 0.1 per 128 images of global batch (0.8 at 1024).

    The one place this rule is written; :attr:`Recipe.lr` uses it when no
    ``base_lr`` is given.
    """
    return 0.1 * batch_size / 128


@dataclasses.dataclass
class Recipe:
    """Training hyper-parameters; defaults are pycls's for the published models.

    Attributes:
        epochs: training epochs (pycls: 100).
        batch_size: global batch size (pycls: per model, 256-1024).
        base_lr: learning rate at ``batch_size``; ``None`` -> 0.1 x batch/128.
        optimizer: ``"sgd"`` (pycls) or ``"adamw"``.
        momentum, nesterov: SGD momentum (0.9, Nesterov).
        weight_decay: 5e-5, on all parameters, added to the gradient (SGD) or
            decoupled (AdamW).
        warmup_epochs, warmup_factor: linear warm-up from
            ``warmup_factor x lr`` over ``warmup_epochs`` (5, 0.1).
        min_lr: cosine floor as a fraction of ``base_lr`` (pycls: 0).
        label_smoothing: 0 (plain cross-entropy).
        ema_decay: exponential moving average of weights; ``None`` = off.
        image_size: training crop size (224); evaluation resizes the shorter
            side to ``image_size * 256 / 224`` and centre-crops.
        pca_lighting: AlexNet PCA lighting noise std (0.1; 0 = off).
        mixup, cutmix: mixing strength alpha (0 = off).
        randaugment: RandAugment magnitude in [0, 1] (0 = off).
        precise_bn_images: after each epoch, recompute BatchNorm statistics
            over this many training images before evaluating and saving
            (pycls's precise BN: 8,192; 0 = off, keeping the moving averages).
    """

    epochs: int = 100
    batch_size: int = 256
    base_lr: Optional[float] = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5
    warmup_epochs: int = 5
    warmup_factor: float = 0.1
    min_lr: float = 0.0
    label_smoothing: float = 0.0
    ema_decay: Optional[float] = None
    image_size: int = 224
    pca_lighting: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    randaugment: float = 0.0
    precise_bn_images: int = 8192

    def __post_init__(self):
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got optimizer={self.optimizer!r}.")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32; got image_size={self.image_size}.")
        check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        check_int("precise_bn_images", self.precise_bn_images, minimum=0)
        for name in ("weight_decay", "label_smoothing", "pca_lighting", "mixup", "cutmix", "randaugment", "min_lr"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {name}={getattr(self, name)}.")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be None or in (0, 1); got ema_decay={self.ema_decay}.")

    @property
    def lr(self) -> float:
        """The base learning rate: ``base_lr`` or pycls's 0.1 x batch / 128."""
        return self.base_lr if self.base_lr is not None else linear_scaled_lr(self.batch_size)

    @classmethod
    def for_model(cls, name: str, **overrides) -> "Recipe":
        """pycls's recipe for a published model (its batch size and learning rate).

        Overriding ``batch_size`` without ``base_lr`` scales the published
        learning rate linearly with it, as pycls's rule (0.1 x batch / 128) does.
        """
        published = lookup(name)
        settings = dict(batch_size=published.train_batch_size, base_lr=published.base_lr)
        if overrides.get("batch_size") is not None and overrides.get("base_lr") is None:
            settings["base_lr"] = published.base_lr * overrides["batch_size"] / published.train_batch_size
        settings.update({k: v for k, v in overrides.items() if not (k == "base_lr" and v is None)})
        return cls(**settings)


def epoch_lr(recipe: Recipe, epoch: float) -> float:
    """Learning rate during ``epoch`` (0-based), exactly pycls's formula."""
    lr = 0.5 * (1.0 + math.cos(math.pi * epoch / recipe.epochs))
    lr = (1.0 - recipe.min_lr) * lr + recipe.min_lr
    lr *= recipe.lr
    if epoch < recipe.warmup_epochs:
        alpha = epoch / recipe.warmup_epochs
        lr *= recipe.warmup_factor * (1.0 - alpha) + alpha
    return lr

