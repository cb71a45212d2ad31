"""What a model must know to be evaluated and served as itself, kept inside its ``.keras`` file.

A model's :class:`ModelInfo` says what it classifies (class names), at what
size, with which eval transform, what its input preprocessing is, where its
weights come from and, for a trained model, its validation error.
:func:`keras_regnet.evaluation.evaluate`, :mod:`keras_regnet.export` and
:func:`~keras_regnet.architecture.preprocessing.decode_predictions` read it
with :func:`model_info`.

The mechanism is :class:`RegNetModel`, a registered subclass of Keras's
functional model (the same layers, weights and graph as before) whose
``get_config`` adds one JSON entry.  Why this and not something else:

* Keras writes ``get_config()`` into the ``.keras`` file's ``config.json``
  and hands it back to ``from_config`` on load, so the information travels
  inside the one file users already move around, and
  ``keras.models.load_model`` restores it (with ``keras_regnet`` imported,
  as for the package's layers); no side file to lose.
* Nothing is added to the graph: exports, numerics and weight names are
  unchanged (a metadata layer would have been traced into every export).
* The entry is plain JSON, checked field by field when read
  (:meth:`ModelInfo.from_config`): nothing in it can run code.

Older ``.keras`` files and models built outside the package are plain
functional models: they load as before and :func:`model_info` gives them
today's ImageNet defaults (:func:`default_model_info`).
"""

from __future__ import annotations

import dataclasses
from typing import List, Mapping, Optional, Tuple

import keras

from keras_regnet.architecture.preprocessing import PREPROCESSING_STYLES, imagenet_classes

# "resize_crop": pycls's ImageNet eval, shorter side to size * 256 / 224 then
# the central size x size.  "center_crop": shorter side to size then the
# central square, the identity on size x size images: how a small-image
# (CIFAR-style) model is validated.
EVAL_TRANSFORMS = ("resize_crop", "center_crop")
# Weights descriptions with a meaning of their own (others: "imagenet:SOURCE", "file:NAME").
RANDOM_WEIGHTS, TRAINED_WEIGHTS, UNKNOWN_WEIGHTS = "random", "trained", "unknown"
PUBLISHED_WEIGHTS = "imagenet:pycls"  # the weights the published error table was measured on
IMAGENET_DATASET = "imagenet"
CONFIG_KEY = "keras_regnet_info"
VALIDATION_KEYS = ("epoch", "top1_err", "top5_err", "num_images", "data")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a model needs to be evaluated and served as itself.

    Attributes:
        architecture: the paper's name of a published architecture
            (``"RegNetY-800MF"``), or ``"custom"``.
        weights: where the weights come from: ``"imagenet:pycls"`` (the
            published checkpoints), another ``"imagenet:SOURCE"``,
            ``"file:NAME"``, ``"trained"`` (by :func:`keras_regnet.training.train`),
            ``"random"``, or ``"unknown"``.
        dataset: what the classifier was trained on (``"imagenet"``, or the
            training data's description); ``None`` when not known.
        class_names: one name per output class, in label order; ``None``:
            ImageNet-1k's for 1000 classes, else ``"0"``, ``"1"``, ...
        image_size: the side of the square images the model is evaluated on.
        eval_transform: one of :data:`EVAL_TRANSFORMS`.
        preprocessing: the input normalisation the weights need (one of
            ``PREPROCESSING_STYLES``).
        preprocessing_in_model: whether the model applies it itself (then it
            takes RGB pixels in [0, 255]).
        validation: the training run's validation result at the epoch saved
            (``epoch``, ``top1_err``, ``top5_err`` in percent,
            ``num_images``, ``data``), or ``None``.
    """

    architecture: str = "custom"
    weights: str = UNKNOWN_WEIGHTS
    dataset: Optional[str] = None
    class_names: Optional[Tuple[str, ...]] = None
    image_size: int = 224
    eval_transform: str = "resize_crop"
    preprocessing: str = "imagenet_mean_std"
    preprocessing_in_model: bool = True
    validation: Optional[Mapping] = None

    def __post_init__(self):
        check_info_fields(self)

    def to_config(self) -> dict:
        """A JSON-ready dict (what :class:`RegNetModel` writes into ``config.json``)."""
        config = dataclasses.asdict(self)
        config["class_names"] = None if self.class_names is None else list(self.class_names)
        config["validation"] = None if self.validation is None else dict(self.validation)
        return config

    @classmethod
    def from_config(cls, config) -> "ModelInfo":
        """Read back :meth:`ModelInfo.to_config`'s dict; anything malformed raises ``ValueError``."""
        if not isinstance(config, dict):
            raise ValueError(f"{CONFIG_KEY} must be a JSON object; got {type(config).__name__}.")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(f"{CONFIG_KEY} has unknown entries {unknown}; known: {sorted(fields)}.")
        config = dict(config)
        if isinstance(config.get("class_names"), list):
            config["class_names"] = tuple(config["class_names"])
        return cls(**config)

    def labels(self, num_classes: int) -> List[Tuple[str, str]]:
        """``(id, description)`` per output class, defaults filled in.

        ImageNet classes are ``(WordNet id, name)``; a class named by a
        WordNet id gets ImageNet's name as its description; other names are
        their own description.
        """
        if self.class_names is None:
            if num_classes == 1000:
                return list(imagenet_classes())
            return [(str(i), str(i)) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"the model has {num_classes} classes but its info names {len(self.class_names)}.")
        imagenet = dict(imagenet_classes())
        return [(name, imagenet.get(name, name)) for name in self.class_names]

    def has_published_weights(self) -> bool:
        """Whether the published table's errors apply: a published architecture with pycls's ImageNet weights."""
        return self.architecture != "custom" and self.weights == PUBLISHED_WEIGHTS


def _check(condition: bool, field: str, allowed: str, value) -> None:
    if not condition:
        raise ValueError(f"model info {field} must be {allowed}; got {field}={value!r}.")


def _is_text(value) -> bool:
    return isinstance(value, str) and len(value) <= 4096


def check_info_fields(info: ModelInfo) -> None:
    """Every field of ``info`` has the type and range its documentation gives (values may come from a file)."""
    _check(_is_text(info.architecture), "architecture", "a string", info.architecture)
    _check(_is_text(info.weights), "weights", "a string", info.weights)
    _check(info.dataset is None or _is_text(info.dataset), "dataset", "None or a string", info.dataset)
    names = info.class_names
    _check(names is None or (isinstance(names, tuple) and all(_is_text(n) for n in names)), "class_names", "None or a list of strings", names)
    size = info.image_size
    _check(isinstance(size, int) and not isinstance(size, bool) and 1 <= size <= 65536, "image_size", "an integer in [1, 65536]", size)
    _check(info.eval_transform in EVAL_TRANSFORMS, "eval_transform", f"one of {EVAL_TRANSFORMS}", info.eval_transform)
    _check(info.preprocessing in PREPROCESSING_STYLES, "preprocessing", f"one of {PREPROCESSING_STYLES}", info.preprocessing)
    _check(isinstance(info.preprocessing_in_model, bool), "preprocessing_in_model", "true or false", info.preprocessing_in_model)
    check_validation(info.validation)


def check_validation(validation) -> None:
    """``None`` or a dict of :data:`VALIDATION_KEYS` holding numbers (``data``: a string)."""
    if validation is None:
        return
    _check(isinstance(validation, Mapping) and set(validation) <= set(VALIDATION_KEYS), "validation",
           f"None or an object with keys among {VALIDATION_KEYS}", validation)
    for key, value in validation.items():
        ok = _is_text(value) if key == "data" else value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
        _check(ok, f"validation[{key!r}]", "a string" if key == "data" else "a number", value)


@keras.saving.register_keras_serializable(package="keras_regnet")
class RegNetModel(keras.Model):
    """A Keras functional model that carries its :class:`ModelInfo` (``model.model_info``) in its config.

    Built like any functional model, ``RegNetModel(inputs, outputs, name=...)``;
    :func:`keras_regnet.RegNet` returns one.  It saves, loads, fits and
    exports exactly as ``keras.Model(inputs, outputs)`` does.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.model_info = ModelInfo()

    def get_config(self):
        config = super().get_config()
        config[CONFIG_KEY] = self.model_info.to_config()
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        info = ModelInfo.from_config(config.pop(CONFIG_KEY, {}))
        model = super().from_config(config, custom_objects)
        model.model_info = info
        return model


def default_model_info(model) -> ModelInfo:
    """Today's ImageNet defaults for a model without :class:`ModelInfo` (older files, models built elsewhere).

    A 1000-class model named as a published model is taken for that model
    on ImageNet; its weights are ``"unknown"``.
    """
    from keras_regnet.architecture.zoo import lookup

    num_classes = model.output.shape[-1] if len(model.output.shape) == 2 else None
    architecture = "custom"
    if num_classes == 1000:
        try:
            architecture = lookup(model.name).name
        except ValueError:
            pass
    height = model.input.shape[1] if len(model.inputs) == 1 and len(model.input.shape) == 4 else None
    return ModelInfo(architecture=architecture, dataset=IMAGENET_DATASET if num_classes == 1000 else None, image_size=height or 224)


def model_info(model) -> ModelInfo:
    """The :class:`ModelInfo` of ``model``: its own, or :func:`default_model_info`."""
    info = getattr(model, "model_info", None)
    return info if isinstance(info, ModelInfo) else default_model_info(model)


def compares_with_published(info: ModelInfo, num_classes: int) -> bool:
    """Whether the published ImageNet table applies to a model with ``info`` and ``num_classes`` outputs.

    Yes for a published architecture with the published weights; for a
    model whose weights are unknown (no info), the earlier rule: named as a
    published model with 1000 classes.
    """
    if num_classes != 1000 or info.dataset not in (IMAGENET_DATASET, None):
        return False
    if info.weights == UNKNOWN_WEIGHTS:
        return info.architecture != "custom"
    return info.has_published_weights()


def with_model_info(model, info: ModelInfo):
    """``model`` as a :class:`RegNetModel` holding ``info`` (the same object when it already is one)."""
    if not isinstance(info, ModelInfo):
        raise ValueError(f"info must be a ModelInfo; got {type(info).__name__}.")
    if not isinstance(model, RegNetModel):
        model = RegNetModel(model.inputs, model.outputs, name=model.name)
    model.model_info = info
    return model
