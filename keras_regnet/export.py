"""Export a RegNet for serving: TF Serving SavedModel, TFLite, ONNX.

* :func:`export_saved_model` writes TF Serving's layout, ``MODEL_DIR/VERSION/``,
  with two signatures: ``serving_default`` (float32 RGB pixels in [0, 255],
  NHWC, any batch size, the model's output) and ``serving_bytes`` (encoded
  JPEG/PNG/BMP/GIF bytes: decode, the model's own eval transform, predict;
  returns the top-k class ids, names and probabilities).  What the model is
  (class names, size, eval transform, preprocessing) comes from its
  :class:`~keras_regnet.architecture.model_info.ModelInfo`.
* :func:`export_tflite` writes a ``.tflite`` file (float32, or float16 /
  dynamic-range int8 weights) with TFLite built-in ops only: grouped
  convolutions stay single ``CONV_2D`` ops.
* :func:`export_onnx` writes an ``.onnx`` file through tf2onnx (grouped
  convolutions are ``Conv`` with ``group``).

Every format takes RGB pixels in [0, 255]: a model built without its input
preprocessing gets it in front (:func:`serving_model`).
Every writer builds the artifact beside its destination and renames it into
place, so an interrupted export leaves nothing half-written behind.
Exports need the TensorFlow backend (the tracing and converters are TF's).
"""

from __future__ import annotations

import functools
import os
import tempfile
from typing import Optional, Sequence

import keras

from keras_regnet.atomic import atomic_directory, atomic_path
from keras_regnet.architecture.config import check_int
from keras_regnet.architecture.model_info import model_info
from keras_regnet.architecture.preprocessing import preprocessing_layer

FORMATS = ("saved_model", "tflite", "onnx")
TFLITE_QUANTIZATIONS = (None, "float16", "dynamic_int8")
BYTES_SIGNATURE = "serving_bytes"
DEFAULT_ONNX_OPSET = 17


def _require_tensorflow(what):
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend (KERAS_BACKEND=tensorflow); this process uses "
            f"{keras.backend.backend()!r}."
        )
    import tensorflow as tf

    return tf


def check_format(fmt: str) -> str:
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got format={fmt!r}.")
    return fmt


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model; got {type(model).__name__}.")
    if len(model.inputs) != 1 or len(model.input.shape) != 4:
        raise ValueError(f"model must take one NHWC image batch; its inputs are {[i.shape for i in model.inputs]}.")
    return model


def _image_spec(model, tf):
    """float32 NHWC, any batch size; height/width as the model's input (None = any)."""
    _, h, w, c = model.input.shape
    return tf.TensorSpec([None, h, w, c], tf.float32, name="images")


def _output_is_probabilities(model) -> bool:
    """Whether the model already ends in a softmax (keras_regnet's default classifier)."""
    try:
        head = model.get_layer("predictions")
    except ValueError:
        return False
    return getattr(head, "activation", None) is keras.activations.softmax


def default_class_names(model):
    """The class names a model's :class:`~keras_regnet.architecture.model_info.ModelInfo` gives.

    A trained model's own (e.g. ``ship``); ImageNet's for other 1000-class
    models; else ``"0"``, ``"1"``, ...
    """
    return [description for _, description in model_info(model).labels(model.output.shape[-1])]


def serving_model(model: keras.Model) -> keras.Model:
    """``model`` taking RGB pixels in [0, 255]: wrapped in its input preprocessing when it lacks it.

    A model built with ``include_preprocessing=False`` expects normalised
    input (its :class:`~keras_regnet.architecture.model_info.ModelInfo` says
    how); every export takes pixels, so the normalisation goes in front.
    """
    info = model_info(model)
    if info.preprocessing_in_model:
        return model
    images = keras.Input(model.input.shape[1:], name="images")
    outputs = model(preprocessing_layer(info.preprocessing)(images))
    return keras.Model(images, outputs, name=model.name)


def _next_version(model_dir: str) -> int:
    versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()] if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def output_path(fmt: str, output: str, version=None, overwrite: bool = False) -> str:
    """Where an export in ``fmt`` to ``output`` writes; raises before any work for a bad destination.

    ``saved_model``: ``output`` is the model base directory and the result
    ``output/VERSION`` (``version``: a positive integer, default one more
    than the largest existing).  ``tflite`` / ``onnx``: ``output`` is the
    file, ending in ``.tflite`` / ``.onnx``.  An existing destination is an
    error unless ``overwrite``.
    """
    check_format(fmt)
    if not isinstance(output, (str, os.PathLike)) or not str(output):
        raise ValueError(f"output must be a path; got output={output!r}.")
    output = str(output)
    if fmt == "saved_model":
        if os.path.isfile(output):
            raise ValueError(f"output={output!r} is a file; a SavedModel needs a model base directory.")
        if version is None:
            version = _next_version(output)
        elif isinstance(version, bool) or not str(version).isdigit() or int(version) < 1:
            raise ValueError(
                "version must be a positive integer (TF Serving loads numeric version directories only); "
                f"got version={version!r}."
            )
        path = os.path.join(output, str(int(version)))
    else:
        if not output.endswith("." + fmt):
            raise ValueError(f"output for format={fmt!r} must end with '.{fmt}'; got output={output!r}.")
        path = output
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
    return path


def saved_model_module(model: keras.Model, top_k: int = 5, class_names: Optional[Sequence[str]] = None, image_size=None):
    """A ``keras.export.ExportArchive`` with the two serving signatures, not yet written.

    The bytes signature decodes each image and applies the model's own eval
    transform (:func:`keras_regnet.data.augment.eval_image` with its
    :class:`~keras_regnet.architecture.model_info.ModelInfo`) at
    ``image_size`` (default: the model's).
    """
    tf = _require_tensorflow("SavedModel export")
    from keras_regnet.data import augment, transforms_tf

    _check_model(model)
    info = model_info(model)
    num_classes = model.output.shape[-1]
    class_names = list(class_names) if class_names is not None else default_class_names(model)
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} entries; the model has {num_classes} classes.")
    check_int("top_k", top_k, maximum=num_classes)
    size = image_size or model.input.shape[1] or info.image_size
    probabilities = _output_is_probabilities(model)
    names = tf.constant(class_names)
    net = serving_model(model)

    def predict(images):
        return {"predictions": net(images, training=False)}

    def predict_bytes(image_bytes):
        def load(encoded):
            return augment.eval_image(transforms_tf, transforms_tf.decode_image(encoded), size, info.eval_transform)

        images = tf.map_fn(load, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        out = tf.cast(net(images, training=False), tf.float32)
        probs = out if probabilities else tf.nn.softmax(out)
        top = tf.math.top_k(probs, k=top_k)
        return {"classes": top.indices, "class_names": tf.gather(names, top.indices), "probabilities": top.values}

    archive = keras.export.ExportArchive()
    archive.track(net)
    archive.add_endpoint("serving_default", predict, input_signature=[_image_spec(model, tf)])
    archive.add_endpoint(
        BYTES_SIGNATURE, predict_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    return archive


def export_saved_model(
    model: keras.Model,
    model_dir: str,
    version=None,
    top_k: int = 5,
    class_names: Optional[Sequence[str]] = None,
    overwrite: bool = False,
) -> str:
    """Write ``model`` as a TF Serving SavedModel, ``model_dir/version/``.

    Args:
        model: a Keras model taking float32 RGB images in [0, 255] (as
            keras_regnet models with ``include_preprocessing=True`` do).
        model_dir: the model's base directory (``--model_base_path`` of
            ``tensorflow_model_server``).
        version: positive integer version; default: one more than the
            largest existing version (1 for a new directory).
        top_k: how many classes the ``serving_bytes`` signature returns.
        class_names: names of the classes, in label order (default: the
            model's own, :func:`default_class_names`).
        overwrite: replace an existing version directory.

    Returns:
        The version directory written.
    """
    path = output_path("saved_model", model_dir, version, overwrite)
    archive = saved_model_module(model, top_k=top_k, class_names=class_names)
    with atomic_directory(path, overwrite) as tmp:
        archive.write_out(tmp, verbose=False)
    return path


def export_tflite(model: keras.Model, path: str, quantization: Optional[str] = None, overwrite: bool = False) -> str:
    """Write ``model`` as a TFLite flatbuffer with built-in ops only.

    Args:
        model: the Keras model.
        path: output file, ending in ``.tflite``.
        quantization: ``None`` (float32), ``"float16"`` (float16 weights)
            or ``"dynamic_int8"`` (int8 weights, float activations:
            dynamic-range quantization).
        overwrite: replace an existing file.

    Returns:
        ``path``.
    """
    tf = _require_tensorflow("TFLite export")
    if quantization not in TFLITE_QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {TFLITE_QUANTIZATIONS}; got quantization={quantization!r}.")
    _check_model(model)
    output_path("tflite", path, overwrite=overwrite)
    # Built-in ops only (no Flex/TF fallback): a grouped convolution must
    # convert to one native CONV_2D, or the conversion fails here.
    target_spec = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    options = {"target_spec": target_spec}
    if quantization is not None:  # float16 weights, or int8 weights (dynamic range)
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        target_spec["supported_types"] = [tf.float16]
    with atomic_path(path, suffix=".tflite") as tmp:
        serving_model(model).export(tmp, format="litert", input_signature=[_image_spec(model, tf)], verbose=False, **options)
    return path


def _import_tf2onnx():
    """tf2onnx, at a version that runs on numpy 2 for what :func:`export_onnx` uses.

    tf2onnx 1.16 folds ``Cast`` with ``np.cast``, removed in numpy 2
    (onnx/tensorflow-onnx#2373); 1.17 uses ``np.asarray``.  Keras patches
    that at run time, but only in a private module (``keras.src``), so no
    patch here: the one numpy-2 alias left in 1.17, ``np.product`` (replaced
    upstream by #2474), is on the >2 GB external-tensor path
    (``large_model``), which :func:`export_onnx` does not take.
    """
    try:
        import tf2onnx
    except ImportError as e:
        raise ImportError('ONNX export needs tf2onnx: pip install "keras-regnet[export]"') from e
    major, minor = (int(part) for part in tf2onnx.__version__.split(".")[:2])
    if (major, minor) < (1, 17):
        raise ImportError(
            f"ONNX export needs tf2onnx>=1.17 (earlier versions fail on numpy 2); found {tf2onnx.__version__}: "
            'pip install "keras-regnet[export]"'
        )
    return tf2onnx


def export_onnx(model: keras.Model, path: str, opset: int = DEFAULT_ONNX_OPSET, overwrite: bool = False) -> str:
    """Write ``model`` as ONNX via tf2onnx (input ``images:0``, any batch size).

    Converted from a SavedModel of the model rather than from the live
    function: tf2onnx turns the constants Keras captures (the preprocessing
    mean/std) into graph inputs otherwise.

    Args:
        model: the Keras model.
        path: output file, ending in ``.onnx``.
        opset: ONNX opset version.
        overwrite: replace an existing file.

    Returns:
        ``path``.
    """
    tf = _require_tensorflow("ONNX export")
    _check_model(model)
    output_path("onnx", path, overwrite=overwrite)
    check_int("opset", opset, minimum=13)
    tf2onnx = _import_tf2onnx()
    with tempfile.TemporaryDirectory() as saved:
        archive = keras.export.ExportArchive()
        net = serving_model(model)
        archive.track(net)
        archive.add_endpoint(
            "serving_default", functools.partial(net.__call__, training=False), input_signature=[_image_spec(model, tf)]
        )
        archive.write_out(saved, verbose=False)
        graph_def, inputs, outputs = tf2onnx.tf_loader.from_saved_model(saved, None, None, "serve", ["serving_default"])
        with atomic_path(path, suffix=".onnx") as tmp:
            tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=opset, output_path=tmp)
    return path


def export(model: keras.Model, fmt: str, output: str, overwrite: bool = False, **options) -> str:
    """Export in ``fmt`` (one of :data:`FORMATS`); ``options`` go to the format's writer."""
    writer = {"saved_model": export_saved_model, "tflite": export_tflite, "onnx": export_onnx}[check_format(fmt)]
    return writer(model, output, overwrite=overwrite, **options)
