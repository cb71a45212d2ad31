"""The RegNet model builder, the 24 published models, and feature extraction.

``RegNet(config, ...)`` builds any point of the design space with the
standard ``keras.applications`` arguments; ``RegNetX200MF`` ...
``RegNetY32GF`` are the pycls model zoo (data in ``zoo.py``);
``get_model(name)`` looks a model up by the paper's or the builder's name.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Optional, Sequence, Union

import keras
from keras import layers

from keras_regnet.architecture import layers as regnet_layers
from keras_regnet.weights import resolve as weights_lib
from keras_regnet.architecture.config import AnyNetConfig, RegNetConfig, anynet_from_regnet, check_int
from keras_regnet.architecture.model_info import IMAGENET_DATASET, RANDOM_WEIGHTS, ModelInfo, RegNetModel, model_info
from keras_regnet.architecture.preprocessing import preprocessing_layer
from keras_regnet.architecture.zoo import function_name, lookup, published_models

MIN_INPUT_SIZE = 32
DEFAULT_INPUT_SHAPE = (224, 224, 3)
POOLING_CHOICES = (None, "avg", "max")

_BUILDER_DOC = """Instantiates the {name} architecture (pycls model zoo).

    Reference: Radosavovic et al., "Designing Network Design Spaces",
    CVPR 2020.  Configuration: depth={depth}, w0={w0}, wa={wa}, wm={wm},
    group width {group_width}{se}; stage depths {depths}, widths {widths}.
    {flops:.3f} GFLOPs (multiply-adds) and {params_m:.2f}M parameters at
    224x224; published ImageNet top-1 error {top1:.2f}%.

    The model takes RGB images in [0, 255] (``include_preprocessing=True``).
    See :func:`keras_regnet.RegNet` for all arguments.

    Returns:
        A ``keras.Model``.
    """


def RegNet(
    config: RegNetConfig,
    include_top: bool = True,
    weights: Optional[str] = None,
    input_tensor=None,
    input_shape: Optional[Sequence[Optional[int]]] = None,
    pooling: Optional[str] = None,
    classes: int = 1000,
    classifier_activation="softmax",
    include_preprocessing: bool = True,
    name: str = "regnet",
) -> keras.Model:
    """Instantiates a RegNet from any configuration of the design space.

    Args:
        config: a :class:`keras_regnet.RegNetConfig` (or an
            :class:`keras_regnet.AnyNetConfig`, as :func:`AnyNet` does).
        include_top: whether to include the global-average-pool + dense
            classifier.
        weights: ``None`` (random initialisation, as pycls);
            ``"imagenet"`` (the official pycls ImageNet checkpoint of a
            published model: downloaded once, converted, cached under
            ``$KERAS_HOME/models/keras_regnet``); or the path to a Keras
            ``.weights.h5`` file or a pycls ``.pyth`` checkpoint of the same
            architecture (recognised by content).  With ``"imagenet"`` and
            ``include_top=True``, ``classes`` must be 1000; with
            ``include_top=False`` all but the classifier is loaded.
        input_tensor: optional Keras tensor (output of ``keras.Input()``) to
            use as image input.
        input_shape: optional ``(height, width, channels)``; default
            ``(224, 224, 3)``.  Height and width must be >= 32, or ``None``
            for variable sizes.  Channels must be 3 when
            ``include_preprocessing=True``.
        pooling: feature pooling when ``include_top=False``: ``None`` (4D
            output of the last stage), ``"avg"`` or ``"max"`` (2D output).
        classes: number of classes when ``include_top=True``.
        classifier_activation: activation of the classifier layer (a name or
            callable, or ``None`` for logits).  Applied as given.
        include_preprocessing: if True, the model takes RGB pixels in
            [0, 255] and normalises with the ImageNet mean/std inside.
        name: model name.

    Returns:
        A ``keras.Model`` (a :class:`~keras_regnet.architecture.model_info.RegNetModel`
        whose ``model_info`` records its architecture, weights, input size,
        eval transform and preprocessing, saved with it in ``.keras`` files).
        Stage outputs are the layers named ``"stem"``,
        ``"s1"``, ``"s2"``, ... (strides 2, 4, 8, ...); see
        :func:`feature_extractor`.
    """
    _check_arguments(config, include_top, pooling, classes, classifier_activation)
    weights_spec = weights_lib.parse_weights_argument(weights, config, include_top, classes)
    # tf-keras's weights were trained with TensorFlow's 'same' padding and
    # [0, 1] inputs: the weights' source decides those two build details.
    variant = weights_lib.variant_of(weights_spec)
    inputs, img = _image_input(input_tensor, input_shape, include_preprocessing)
    x = preprocessing_layer(variant.preprocessing)(img) if include_preprocessing else img
    x = backbone(x, config, padding_style=variant.padding)
    x = _head(x, include_top, pooling, classes, classifier_activation)
    model = RegNetModel(inputs, x, name=name)
    model.model_info = built_model_info(config, weights_spec, img.shape[1], include_top, include_preprocessing, variant)
    if weights_spec is not None:
        weights_lib.load(model, weights_spec)
    return model


def AnyNet(
    config: AnyNetConfig,
    include_top: bool = True,
    weights: Optional[str] = None,
    input_tensor=None,
    input_shape: Optional[Sequence[Optional[int]]] = None,
    pooling: Optional[str] = None,
    classes: int = 1000,
    classifier_activation="softmax",
    include_preprocessing: bool = True,
    name: str = "anynet",
) -> keras.Model:
    """Instantiates an AnyNet: any per-stage depth, width, bottleneck ratio, group width, stride and SE.

    The networks of the paper's AnyNetX design spaces (pycls's
    ``pycls.models.anynet.AnyNet`` with the residual bottleneck block), built
    from the same layers as the RegNets, with the same layer names: a pycls
    AnyNet checkpoint (``.pyth``) loads with ``weights=path``, and
    ``AnyNet(anynet_from_regnet(cfg))`` is ``RegNet(cfg)`` layer for layer.

    Args:
        config: a :class:`keras_regnet.AnyNetConfig`.
        weights: ``None`` (random initialisation, as pycls) or the path to a
            Keras ``.weights.h5`` file or a pycls ``.pyth`` checkpoint of the
            same architecture.  (``"imagenet"`` exists only for the published
            RegNets.)

    The other arguments are :func:`RegNet`'s.

    Returns:
        A ``keras.Model``; stage outputs are the layers ``"stem"``, ``"s1"``, ...

    Example:
        >>> cfg = AnyNetConfig(depths=(1, 1, 2, 1), widths=(24, 56, 152, 368),
        ...                    bottleneck_ratios=(1, 1, 1, 1), group_widths=(8, 8, 8, 8))
        >>> AnyNet(cfg, input_shape=(64, 64, 3), classes=10).output.shape
        (None, 10)
    """
    if not isinstance(config, AnyNetConfig):
        raise ValueError(f"config must be a keras_regnet.AnyNetConfig; got config={config!r}.")
    return RegNet(
        config, include_top=include_top, weights=weights, input_tensor=input_tensor, input_shape=input_shape,
        pooling=pooling, classes=classes, classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing, name=name,
    )


def weights_description(spec) -> str:
    """How :class:`~keras_regnet.architecture.model_info.ModelInfo` names a weights argument."""
    if spec is None:
        return RANDOM_WEIGHTS
    if spec.kind == weights_lib.IMAGENET:
        return f"{weights_lib.IMAGENET}:{spec.source}"
    return f"file:{os.path.basename(spec.path)}"


def built_model_info(config, spec, image_height, include_top, include_preprocessing, variant) -> ModelInfo:
    """The :class:`ModelInfo` of a model :func:`RegNet` just built (ImageNet-trained for ImageNet weights)."""
    published = next((p for p in published_models().values() if p.config == config), None)
    on_imagenet = spec is not None and spec.kind == weights_lib.IMAGENET and include_top
    return ModelInfo(
        architecture=published.name if published else "custom",
        weights=weights_description(spec),
        dataset=IMAGENET_DATASET if on_imagenet else None,
        image_size=image_height or DEFAULT_INPUT_SHAPE[0],
        preprocessing=variant.preprocessing,
        preprocessing_in_model=include_preprocessing,
    )


def backbone(x, config: Union[RegNetConfig, AnyNetConfig], padding_style: str = "symmetric"):
    """The stem and the stages of ``config`` (a RegNet is the AnyNet of its generated stages) applied to ``x``.

    The architecture alone: no weights, no preprocessing, no head.  The stem
    output is the layer ``"stem"``, each stage's output ``"s1"``, ``"s2"``, ...
    """
    net = anynet_from_regnet(config) if isinstance(config, RegNetConfig) else config
    x = regnet_layers.stem(x, net.stem_width, stride=net.stem_stride, padding_style=padding_style)
    x = layers.Identity(name="stem")(x)
    for i, (stage, stride) in enumerate(zip(net.stages, net.strides), start=1):
        x = regnet_layers.stage_blocks(x, stage, net.se_ratio, index=i, stride=stride, padding_style=padding_style)
    return x


def _head(x, include_top, pooling, classes, classifier_activation):
    """The classifier (global average pool + dense), or the feature pooling."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=regnet_layers.dense_initializer(),
            dtype=regnet_layers.float32_under_mixed_policy(),
            name="predictions",
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def _check_arguments(config, include_top, pooling, classes, classifier_activation):
    if not isinstance(config, (RegNetConfig, AnyNetConfig)):
        raise ValueError(f"config must be a keras_regnet.RegNetConfig or AnyNetConfig; got config={config!r}.")
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be True or False; got include_top={include_top!r}.")
    if pooling not in POOLING_CHOICES:
        raise ValueError(f"pooling must be one of None, 'avg', 'max'; got pooling={pooling!r}.")
    if include_top:
        check_int("classes", classes)
    if include_top and classifier_activation is not None:
        try:
            keras.activations.get(classifier_activation)
        except (ValueError, TypeError) as e:
            raise ValueError(
                "classifier_activation must be None, a Keras activation name "
                f"(e.g. 'softmax') or a callable; got classifier_activation={classifier_activation!r}."
            ) from e


def _image_input(input_tensor, input_shape, include_preprocessing):
    """Validate the input arguments; return (model inputs, image tensor)."""
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            input_tensor = keras.Input(tensor=input_tensor)
        shape = tuple(input_tensor.shape[1:])
    else:
        shape = DEFAULT_INPUT_SHAPE if input_shape is None else input_shape
    try:
        shape = tuple(None if s is None else int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_shape must be (height, width, channels); got input_shape={input_shape!r}."
        ) from None
    if len(shape) != 3:
        raise ValueError(
            f"input_shape must be (height, width, channels) with 3 entries; got {shape}."
        )
    h, w, c = shape
    for dim, size in (("height", h), ("width", w)):
        if size is not None and size < MIN_INPUT_SIZE:
            raise ValueError(
                f"input_shape {dim} must be >= {MIN_INPUT_SIZE} pixels (or None); got "
                f"input_shape={shape}."
            )
    if c is None or c < 1:
        raise ValueError(f"input_shape channels must be a positive integer; got input_shape={shape}.")
    if include_preprocessing and c != 3:
        raise ValueError(
            "include_preprocessing=True normalises RGB with ImageNet statistics, so "
            f"input_shape must have 3 channels; got input_shape={shape}. Pass "
            "include_preprocessing=False for other channel counts."
        )
    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
        return (inputs[0] if len(inputs) == 1 else inputs), input_tensor
    img = keras.Input(shape=shape, name="images")
    return img, img


def replace_classifier(model: keras.Model, classes: int, classifier_activation="softmax") -> keras.Model:
    """``model`` with a new classifier over ``classes`` (pycls's initialisation) in place of its own.

    ``model`` is a RegNet with a classifier, or one without (``include_top=False``,
    ``pooling=None``).  The new model shares every other layer with
    ``model``, weights included; its :class:`ModelInfo` is ``model``'s
    without class names or dataset (the new head has learnt nothing yet).
    """
    check_int("classes", classes)
    names = [layer.name for layer in model.layers]
    features = model.get_layer("avg_pool").input if "predictions" in names else model.output
    if len(features.shape) != 4:
        raise ValueError(f"model must be a RegNet with its classifier or with pooling=None; its output shape is {model.output.shape}.")
    outputs = _head(features, True, None, classes, classifier_activation)
    new = RegNetModel(model.inputs, outputs, name=model.name)
    new.model_info = dataclasses.replace(model_info(model), class_names=None, dataset=None)
    return new


DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16", "float64")
# The layers the builders keep in float32 under a mixed policy (layers.float32_under_mixed_policy).
FLOAT32_UNDER_MIXED_POLICY = ("preprocessing", "predictions")


def set_dtype_policy(model: keras.Model, policy: str) -> keras.Model:
    """Run ``model`` (built or loaded, e.g. a trained ``.keras`` file) under another dtype policy, in place.

    ``"mixed_bfloat16"`` computes in bfloat16 with float32 variables, what
    ``keras.mixed_precision.set_global_policy`` gives a model built
    afterwards (the input normalisation and the classifier stay float32
    under a mixed policy, as there); use this for a model that exists already.  Weights are kept;
    ``predict``/``fit`` functions are traced again on their next call.

    Args:
        model: a Keras model.
        policy: one of ``DTYPE_POLICIES``.

    Returns:
        ``model``.
    """
    if policy not in DTYPE_POLICIES:
        raise ValueError(f"policy must be one of {DTYPE_POLICIES}; got policy={policy!r}.")
    for layer in model.layers:
        kept = layer.name in FLOAT32_UNDER_MIXED_POLICY and policy.startswith("mixed")
        layer.dtype_policy = "float32" if kept else policy
    model.predict_function = model.train_function = model.test_function = None
    return model


def get_model(name: str, /, **kwargs) -> keras.Model:
    """Build a published RegNet by name.

    Args:
        name: the paper's name (``"RegNetY-1.6GF"``) or the builder's name
            (``"RegNetY1_6GF"``); case and punctuation are ignored.
        **kwargs: arguments of :func:`RegNet` (``include_top``, ``weights``,
            ``input_shape``, ..., and ``name`` for the Keras model's name).

    Raises:
        ValueError: unknown name (the message suggests the closest names).
    """
    published = lookup(name)
    kwargs.setdefault("name", published.function_name.lower())
    return RegNet(published.config, **kwargs)


def model_from_argument(model, weights=None, **kwargs):
    """Resolve a ``model`` argument (CLI and tools): ``(keras.Model, name, weights description)``.

    ``model`` is a ``keras.Model`` (returned as is), a path to a ``.keras``
    file, or a published model name built by :func:`get_model` with
    ``weights`` and ``kwargs``.
    """
    if isinstance(model, keras.Model):
        return model, model.name, "given model"
    if not isinstance(model, str):
        raise ValueError(f"model must be a keras.Model, a published model name or a .keras file; got model={model!r}.")
    if model.endswith(".keras"):
        if not os.path.isfile(model):
            raise ValueError(f"model={model!r}: no such .keras file.")
        from keras_regnet.safe_io import load_keras_model

        loaded = load_keras_model(model)
        return loaded, loaded.name, model
    return get_model(model, weights=weights, **kwargs), model, str(weights)


def feature_extractor(
    model_or_name: Union[keras.Model, str],
    levels: Optional[Sequence[str]] = None,
    **kwargs,
) -> keras.Model:
    """A multi-scale feature model for detection/segmentation backbones.

    Args:
        model_or_name: a RegNet ``keras.Model`` built by this package, or a
            published model name (then built with ``include_top=False`` and
            ``input_shape=(None, None, 3)`` unless ``kwargs`` say otherwise).
        levels: which outputs, among ``"stem"`` (stride 2), ``"s1"`` (4),
            ``"s2"`` (8), ``"s3"`` (16), ``"s4"`` (32); default: all.
        **kwargs: builder arguments when ``model_or_name`` is a name.

    Returns:
        A ``keras.Model`` with a dict of feature maps, keyed by level.
    """
    if isinstance(model_or_name, str):
        kwargs.setdefault("include_top", False)
        kwargs.setdefault("input_shape", (None, None, 3))
        model = get_model(model_or_name, **kwargs)
    elif isinstance(model_or_name, keras.Model):
        model = model_or_name
    else:
        raise ValueError(
            f"model_or_name must be a keras.Model or a model name; got {model_or_name!r}."
        )
    available = [l.name for l in model.layers if l.name == "stem" or _is_stage_name(l.name)]
    if not available:
        raise ValueError(f"Model {model.name!r} has no RegNet stage outputs (layers 'stem', 's1', ...).")
    if levels is None:
        levels = available
    unknown = [lv for lv in levels if lv not in available]
    if unknown:
        raise ValueError(f"levels must be among {available}; got unknown levels {unknown}.")
    outputs = {lv: model.get_layer(lv).output for lv in levels}
    return keras.Model(model.input, outputs, name=f"{model.name}_features")


def _is_stage_name(name: str) -> bool:
    return name.startswith("s") and name[1:].isdigit()


def _make_builder(paper_name: str):
    published = published_models()[paper_name]
    fname = function_name(paper_name)

    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        include_preprocessing=True,
        name=fname.lower(),
    ):
        return RegNet(
            published.config,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            include_preprocessing=include_preprocessing,
            name=name,
        )

    cfg = published.config
    builder.__name__ = builder.__qualname__ = fname
    builder.__module__ = __name__
    builder.__doc__ = _BUILDER_DOC.format(
        name=paper_name,
        depth=cfg.depth,
        w0=cfg.w0,
        wa=cfg.wa,
        wm=cfg.wm,
        group_width=cfg.group_width,
        se=f", SE ratio {cfg.se_ratio}" if cfg.has_se else "",
        depths=list(cfg.stage_depths),
        widths=list(cfg.stage_widths),
        flops=published.flops / 1e9,
        params_m=published.params / 1e6,
        top1=published.top1_err,
    )
    return builder


# RegNetX200MF ... RegNetY32GF: the published models are data, the builders
# are generated from it.
_module = sys.modules[__name__]
BUILDERS = {}
for _paper_name in published_models():
    BUILDERS[_paper_name] = _make_builder(_paper_name)
    setattr(_module, function_name(_paper_name), BUILDERS[_paper_name])
del _module, _paper_name
