"""An emulator of TensorFlow Serving's REST API, serving a SavedModel base directory (tests only).

``tensorflow_model_server`` cannot be installed where this project is
developed (it is on neither PyPI nor Debian, and there is no Docker), so the
REST round trip of an exported model is tested against this emulator. It
follows the documented API, https://www.tensorflow.org/tfx/serving/api_rest,
and, where the page leaves details open (error texts, status codes, number
formatting), TF Serving's own implementation of it
(``tensorflow_serving/util/json_tensor.cc`` and
``tensorflow_serving/model_servers/http_rest_api_handler.cc``).

It serves one model from ``model_base_path`` (numeric version directories, as
``tensorflow_model_server --model_base_path``) on 127.0.0.1 at a random port,
loading each version with ``tf.saved_model.load`` and calling its signatures
(``loaded.signatures[name]``); input names and dtypes come from the
SavedModel's ``SignatureDef`` s, as the server reads them.

What it does:

* ``GET /v1/models/{name}[/versions/{v}]``: the ``GetModelStatusResponse``
  (``model_version_status``: version, ``AVAILABLE``, ``OK``).
* ``GET /v1/models/{name}[/versions/{v}]/metadata``: the
  ``GetModelMetadataResponse`` (``model_spec``, and every ``SignatureDef``
  with its inputs' and outputs' dtype, shape and tensor name).
* ``POST /v1/models/{name}[/versions/{v}]:predict`` with ``signature_name``
  (default ``serving_default``) and either ``instances`` (row format: a list
  of per-example values, or of objects for named inputs) or ``inputs``
  (columnar format: one value, or an object of named inputs). ``{"b64": ...}``
  values are decoded to bytes for string inputs. Row requests get
  ``{"predictions": [...]}`` (per example an object of the named outputs, or
  the bare value when the signature has one output), columnar requests
  ``{"outputs": ...}``. String outputs are text, except outputs whose name
  ends in ``_bytes``, which come back as ``{"b64": ...}``. Floats are rounded
  as TF Serving writes them (six significant digits when that reads back as
  the same float32, else nine), so they parse back to the same float32.
* Errors: ``{"error": "..."}`` with TF Serving's status codes: 400 for an
  invalid argument (bad JSON, an unknown signature, a wrong input name or
  shape, undecodable base64, a failing graph op), 404 for an unknown model or
  version.
* Version policy: ``latest`` (TF Serving's default: only the largest version
  is loaded and served) or ``all``.

What it does not do: gRPC; the classify and regress APIs (answered 501);
version labels (``/labels/...``); batching configuration; model config files
and several models; watching the base path for new versions; compressed
requests; monitoring endpoints. Numbers come out through Python's ``json``:
the same values as TF Serving's, but ``1e+06`` is written ``1000000.0``; a
non-UTF-8 string output that is not ``*_bytes`` is written with replacement
characters (TF Serving would write the raw bytes).
"""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import os
import re
import threading

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

DEFAULT_SIGNATURE = "serving_default"
PREDICT_PATH = re.compile(r"(?i)/v1/models/([^/:]+)(?:/versions/(\d+))?:(classify|regress|predict)")
STATUS_PATH = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:/versions/(\d+))?(/metadata)?")
VERSION_POLICIES = ("latest", "all")
FLOAT32_MAX = float(np.finfo(np.float32).max)
INT_RANGES = {  # what rapidjson's IsInt / IsInt64 / IsUint / IsUint64 accept
    "DT_INT8": (-(2**31), 2**31 - 1), "DT_INT16": (-(2**31), 2**31 - 1), "DT_INT32": (-(2**31), 2**31 - 1),
    "DT_UINT8": (-(2**31), 2**31 - 1), "DT_INT64": (-(2**63), 2**63 - 1),
    "DT_UINT32": (0, 2**32 - 1), "DT_UINT64": (0, 2**64 - 1),
}
FLOAT_DIGITS = {"DT_FLOAT": (np.float32, 2**24 - 1, 9), "DT_DOUBLE": (np.float64, 2**53 - 1, 17)}


class RestError(Exception):
    """A request TF Serving refuses: ``status`` is the HTTP code, the message goes in ``{"error": ...}``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- JSON -> tensors (json_tensor.cc)


def is_b64(value) -> bool:
    """``{"b64": "<string>"}`` and nothing else: TF Serving's encoding of binary values."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def dense_shape(value) -> list:
    """The shape a nested list claims, read along its first elements (as TF Serving reads it)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def json_text(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def type_error(value, dtype: str) -> RestError:
    kind = {dict: "Object", list: "Array", str: "String", bool: "True" if value else "False"}.get(type(value), "Number")
    kind = "Null" if value is None else kind
    return RestError(f"JSON Value: {json_text(value)} Type: {kind} is not of expected type: {dtype[3:].lower()}")


def string_scalar(value) -> bytes:
    """A string leaf: text as UTF-8, or ``{"b64": ...}`` decoded (padding optional, as absl's decoder)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if not isinstance(value, dict):
        raise type_error(value, "DT_STRING")
    if not is_b64(value):
        raise RestError(f"JSON Value: {json_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise RestError("Unable to base64 decode") from None


def scalar(value, dtype: str):
    """One JSON leaf as a value of the TF dtype, or the error TF Serving gives (AddValueToTensor)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if dtype == "DT_STRING":
        return string_scalar(value)
    if dtype == "DT_BOOL":
        if isinstance(value, bool):
            return value
    elif dtype in FLOAT_DIGITS:
        if is_int or isinstance(value, float):
            _, max_int, _ = FLOAT_DIGITS[dtype]
            limit = FLOAT32_MAX if dtype == "DT_FLOAT" else float("inf")
            # Whole numbers beyond the mantissa, or finite decimals beyond the range, would change.
            lossy = abs(value) > max_int if is_int else bool(np.isfinite(value) and abs(value) > limit)
            if lossy:
                kind = dtype[3:].lower()
                raise RestError(f"Cannot convert JSON value: {json_text(value)} to {kind} without loss of precision.")
            return value
    elif dtype in INT_RANGES:
        low, high = INT_RANGES[dtype]
        if is_int and low <= value <= high:
            return value
    else:
        raise RestError(f"Conversion of JSON Value: {json_text(value)} to type: {dtype}", 501)
    raise type_error(value, dtype)


def fill_values(value, shape: list, level: int, dtype: str, out: list) -> None:
    """Flatten ``value`` into ``out``, checking it is a dense tensor of ``shape`` (FillTensorProto)."""
    if not isinstance(value, list):
        if level != len(shape):
            raise RestError(
                f"JSON Value: {json_text(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {len(shape)}"
            )
        out.append(scalar(value, dtype))
        return
    if level >= len(shape):
        raise RestError(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise RestError(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}"
        )
    for item in value:
        fill_values(item, shape, level + 1, dtype, out)


def to_array(value, dtype: str) -> tuple:
    """``(flat values, shape)`` of one JSON tensor value of the TF dtype."""
    shape, flat = dense_shape(value), []
    fill_values(value, shape, 0, dtype, flat)
    return flat, shape


def instances_to_tensors(instances, input_dtypes: dict) -> dict:
    """Row format: one entry per example, batched along a new first axis (FillTensorMapFromInstancesList)."""
    if not isinstance(instances, list):
        raise RestError(f"JSON Value: {json_text(instances)} Excepting 'instances' to be an list/array")
    if not instances:
        raise RestError("JSON Value: {\"instances\":[]} No values in 'instances' array")

    def is_named(item):
        return isinstance(item, dict) and not is_b64(item)

    if not is_named(instances[0]) and len(input_dtypes) > 1:
        raise RestError(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as per tensorinfo_map"
        )
    named = is_named(instances[0])
    columns = {name: [] for name in input_dtypes}
    shapes = {}
    for index, item in enumerate(instances):
        if named != is_named(item):
            what = ("object", "list") if named else ("value/list", "object")
            raise RestError(f"Expecting {what[0]} but got {what[1]} at item {index} of input list")
        entries = item.items() if named else [(next(iter(input_dtypes)), item)]
        for name, value in entries:
            where = f"Failed to process element: {index}" + (f" key: {name}" if named else "")
            try:
                add_instance_item(value, name, input_dtypes, columns, shapes)
            except RestError as e:
                raise RestError(f"{where} of 'instances' list. Error: INVALID_ARGUMENT: {e}") from None
        if named and set(item) != set(input_dtypes):
            raise RestError(
                f"Failed to process element: {index} of 'instances' list. JSON object: {json_text(item)} "
                f"must only have keys: {','.join(sorted(input_dtypes))}"
            )
    return {name: (flat, [len(instances)] + shapes[name]) for name, flat in columns.items()}


def add_instance_item(value, name: str, input_dtypes: dict, columns: dict, shapes: dict) -> None:
    """One named value of one example; every example must give it the same shape (AddInstanceItem)."""
    if name not in input_dtypes:
        raise RestError(f"JSON object: does not have named input: {name}")
    flat, shape = to_array(value, input_dtypes[name])
    expected = shapes.setdefault(name, shape)
    expected_size = int(np.prod(expected))
    if len(flat) != expected_size:
        raise RestError(f"Expecting tensor size: {expected_size} but got: {len(flat)}")
    if shape != expected:
        raise RestError(f"Expecting shape [{','.join(map(str, expected))}] but got: [{','.join(map(str, shape))}]")
    columns[name].extend(flat)


def inputs_to_tensors(inputs, input_dtypes: dict) -> dict:
    """Columnar format: one tensor value, or an object of named ones (FillTensorMapFromInputsMap)."""
    if not isinstance(inputs, dict) or is_b64(inputs):
        if len(input_dtypes) > 1:
            raise RestError(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as per tensorinfo_map"
            )
        name = next(iter(input_dtypes))
        return {name: to_array(inputs, input_dtypes[name])}
    tensors = {}
    for name, dtype in input_dtypes.items():
        if name not in inputs:
            raise RestError(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = to_array(inputs[name], dtype)
    return tensors


# ---------------------------------------------------------------- tensors -> JSON


def decimal(value, dtype: str) -> float:
    """A float as TF Serving writes it (WriteDecimal): six significant digits if that reads back the same, else full."""
    np_type, _, digits = FLOAT_DIGITS[dtype]
    if not np.isfinite(value):
        return float(value)  # json writes NaN / Infinity / -Infinity, TF Serving's tokens
    text = f"{value:g}"
    if np_type(text) != value:
        text = f"{value:.{digits}g}"
    return float(text)


def leaf_writer(array: np.ndarray, as_bytes: bool):
    """How one element of ``array`` is written in JSON."""
    if array.dtype == np.float32:
        return lambda x: decimal(x, "DT_FLOAT")
    if array.dtype == np.float64:
        return lambda x: decimal(x, "DT_DOUBLE")
    if array.dtype == object:  # tf.string
        if as_bytes:
            return lambda x: {"b64": base64.b64encode(x).decode("ascii")}
        return lambda x: x.decode("utf-8", errors="replace")
    return lambda x: x  # tolist() gave Python ints / bools


def tensor_json(array: np.ndarray, write):
    """A numpy array as nested JSON lists (a bare value for a scalar)."""

    def nested(value):
        return [nested(part) for part in value] if isinstance(value, list) else write(value)

    return nested(array.tolist())


def rows_response(outputs: dict) -> dict:
    """``{"predictions": [...]}``: per example, an object of named outputs, or the bare value for one output."""
    batch = None
    for name, array in outputs.items():
        if array.ndim == 0:
            raise RestError(f"Tensor name: {name} has no shape information ")
        if array.shape[0] < 1:
            raise RestError(f"Tensor name: {name} has invalid batch size: {array.shape[0]}")
        if batch is not None and array.shape[0] != batch:
            raise RestError(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch}")
        batch = array.shape[0]
    columns = {name: tensor_json(array, leaf_writer(array, name.endswith("_bytes"))) for name, array in outputs.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [{name: columns[name][i] for name in sorted(columns)} for i in range(batch)]}


def columns_response(outputs: dict) -> dict:
    """``{"outputs": ...}``: the bare tensor for one output, else an object of named tensors."""
    columns = {name: tensor_json(array, leaf_writer(array, name.endswith("_bytes"))) for name, array in outputs.items()}
    if len(columns) == 1:
        return {"outputs": next(iter(columns.values()))}
    return {"outputs": {name: columns[name] for name in sorted(columns)}}


# ---------------------------------------------------------------- the model


class Servable:
    """One loaded version: the restored object and its ``SignatureDef`` s."""

    def __init__(self, version: int, path: str):
        self.version = version
        self.loaded = tf.saved_model.load(path)
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        self.signature_defs = saved_model.meta_graphs[0].signature_def

    def input_dtypes(self, signature_name: str) -> dict:
        """Input name -> TF dtype name (``DT_FLOAT``...), from the ``SignatureDef`` as TF Serving reads it."""
        if signature_name not in self.signature_defs or signature_name not in self.loaded.signatures:
            raise RestError(f'Serving signature name: "{signature_name}" not found in signature def')
        inputs = self.signature_defs[signature_name].inputs
        if not inputs:
            raise RestError(f"Failed to get input map for signature: {signature_name}")
        return {name: types_pb2.DataType.Name(info.dtype) for name, info in inputs.items()}

    def run(self, signature_name: str, tensors: dict) -> dict:
        """Call the signature on ``{name: (flat values, shape)}``; numpy outputs by name."""
        function = self.loaded.signatures[signature_name]
        dtypes = {name: tf.dtypes.as_dtype(info.dtype) for name, info in self.signature_defs[signature_name].inputs.items()}
        try:  # a value the dtype cannot hold, or a graph op failing on the input, is the request's fault
            feed = {name: tf.reshape(tf.constant(flat, dtype=dtypes[name]), shape) for name, (flat, shape) in tensors.items()}
            outputs = function(**feed)
        except (tf.errors.OpError, TypeError, ValueError) as e:
            raise RestError(getattr(e, "message", None) or str(e)) from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def load_versions(model_base_path: str, policy: str) -> dict:
    """Version -> :class:`Servable` for the numeric version directories the policy serves."""
    if policy not in VERSION_POLICIES:
        raise ValueError(f"version policy must be one of {VERSION_POLICIES}; got {policy!r}.")
    versions = sorted(
        int(d) for d in os.listdir(model_base_path)
        if d.isdigit() and os.path.isfile(os.path.join(model_base_path, d, "saved_model.pb"))
    )
    if not versions:
        raise ValueError(f"{model_base_path} has no numeric version directory holding a SavedModel.")
    chosen = versions[-1:] if policy == "latest" else versions
    return {v: Servable(v, os.path.join(model_base_path, str(v))) for v in chosen}


class TFServingREST:
    """TF Serving's REST API for one model, on 127.0.0.1 at a random port; :meth:`close` stops it."""

    def __init__(self, model_base_path: str, model_name: str = "regnet", version_policy: str = "latest"):
        self.model_name = model_name
        self.servables = load_versions(str(model_base_path), version_policy)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        emulator = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server naming)
                self._answer(*emulator.handle("GET", self.path, b""))

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(*emulator.handle("POST", self.path, body))

            def _answer(self, status, payload):
                body = json.dumps(payload, indent=1).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    # ------------------------------------------------------------ routing

    def handle(self, method: str, path: str, body: bytes) -> tuple:
        """``(HTTP status, JSON payload)`` for one request."""
        try:
            return 200, self._route(method, path, body)
        except RestError as e:
            return e.status, {"error": str(e)}
        except Exception as e:  # an emulator bug: answer as TF Serving's INTERNAL (500), don't drop the connection
            return 500, {"error": f"{type(e).__name__}: {e}"}

    def _route(self, method: str, path: str, body: bytes) -> dict:
        if not path.lower().startswith("/v1/"):
            raise RestError(f"Not found: {path}", 404)
        predict = PREDICT_PATH.fullmatch(path)
        if method == "POST" and predict:
            name, version, verb = predict.groups()
            if verb.lower() != "predict":
                raise RestError(f"{verb} is not implemented by this emulator (only predict)", 501)
            return self.predict(name, version, body)
        status = STATUS_PATH.fullmatch(path)
        if method == "GET" and status:
            name, version, metadata = status.groups()
            if not name:
                raise RestError("Missing model name in request.")
            return self.metadata(name, version) if metadata else self.status(name, version)
        raise RestError(f"Malformed request: {method} {path}")

    def servable(self, name: str, version) -> Servable:
        """The servable a predict/metadata request names, or TF Serving's 404."""
        if name != self.model_name or (version is not None and int(version) not in self.servables):
            spec = f"Latest({name})" if version is None else f"Specific({name}, {int(version)})"
            raise RestError(f"Servable not found for request: {spec}", 404)
        return self.servables[int(version) if version is not None else max(self.servables)]

    # ------------------------------------------------------------ the three APIs

    def status(self, name: str, version) -> dict:
        """``GetModelStatusResponse``: every served version, or the one asked for."""
        if name != self.model_name:
            raise RestError(f"Could not find any versions of model {name}", 404)
        if version is not None and int(version) not in self.servables:
            raise RestError(f"Could not find version {int(version)} of model {name}", 404)
        versions = [int(version)] if version is not None else sorted(self.servables, reverse=True)
        return {
            "model_version_status": [
                {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in versions
            ]
        }

    def metadata(self, name: str, version) -> dict:
        """``GetModelMetadataResponse``: the model spec and every ``SignatureDef``."""
        servable = self.servable(name, version)
        signature_defs = {
            key: json_format.MessageToDict(
                signature, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
            for key, signature in servable.signature_defs.items()
        }
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": signature_defs}},
        }

    def predict(self, name: str, version, body: bytes) -> dict:
        """The Predict API, in the order TF Serving checks a request: JSON, signature name, model, inputs."""
        request = parse_request(body)
        signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(signature_name, str):
            raise RestError(
                f"JSON Value: {json_text(request)} not formatted correctly. 'signature_name' key must be a string value."
            )
        servable = self.servable(name, version)
        input_dtypes = servable.input_dtypes(signature_name or DEFAULT_SIGNATURE)
        if "instances" in request and "inputs" in request:
            raise RestError(
                f"JSON Value: {json_text(request)} Not formatted correctly expecting only one of 'inputs' or "
                "'instances' keys to exist "
            )
        if "instances" in request:
            tensors = instances_to_tensors(request["instances"], input_dtypes)
            return rows_response(servable.run(signature_name or DEFAULT_SIGNATURE, tensors))
        if "inputs" in request:
            tensors = inputs_to_tensors(request["inputs"], input_dtypes)
            return columns_response(servable.run(signature_name or DEFAULT_SIGNATURE, tensors))
        raise RestError("Missing 'inputs' or 'instances' key")


def parse_request(body: bytes) -> dict:
    """The request's JSON object (NaN and Infinity allowed, as TF Serving's parser allows them)."""
    if not body:
        raise RestError("JSON Parse error: The document is empty")
    try:
        request = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RestError(f"JSON Parse error: {e}") from None
    if not isinstance(request, dict):
        raise RestError(f"JSON Value: {json_text(request)} Is not object")
    return request
