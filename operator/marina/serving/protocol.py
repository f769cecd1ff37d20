"""KServe v1 and Open Inference Protocol v2 bodies ⇄ feature matrices. Pure functions, no HTTP.

Decoding turns a parsed JSON body into a float64 (rows, n_features) matrix in the model's feature
order, or raises `BadRequest` naming the field and the problem (expected vs got). Encoding builds
the response bytes. A model with category inputs takes its raw inputs instead (strings for the
categories) and encodes them with `marina.data.encoding`, exactly as training did.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from marina.data.encoding import EncodingError, Inputs
from marina.model.answers import DEFAULT_LEVEL
from marina.serving import jsoncodec
from marina.serving.errors import BadRequest
from marina.serving.model import OUTPUT_NAME, OUTPUTS, ServedModel

DATATYPES: dict[str, type[np.generic]] = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
SUPPORTED = ", ".join(DATATYPES)
BYTES = "BYTES"  # a category input's datatype: strings
_LENGTH = struct.Struct("<I")  # BYTES binary data: each element's length, then its bytes


_ABSENT = object()
#: Kinds of `outputs` list a model remembers parsed, at most (clients choose them: bounded).
PARSED_OUTPUTS = 64
_new_tuple = tuple.__new__


def parse_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return jsoncodec.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


def _object(payload: Any, what: str) -> Mapping[str, Any]:
    if type(payload) is dict:  # what JSON decodes to: spares the ABC check on every request
        return payload
    if not isinstance(payload, Mapping):
        raise BadRequest(f"{what} must be a JSON object, got {_describe(payload)}")
    return payload


def _field(payload: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = payload.get(key, _ABSENT)
    if type(value) is kind:  # the usual case, at once (and a boolean is never an int here)
        return value
    if value is _ABSENT:
        raise BadRequest(f"missing field '{key}' in {what}")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRequest(f"field '{key}' in {what} must be a JSON {_json_type(kind)}, got {_describe(value)}")
    return value


def _json_type(kind: type) -> str:
    names: dict[type, str] = {
        list: "array",
        str: "string",
        dict: "object",
        bool: "boolean",
        int: "number",
        float: "number",
    }
    return names.get(kind, kind.__name__)


def _describe(value: Any) -> str:
    return "null" if value is None else _json_type(type(value))


def may_hold_booleans(body: bytes) -> bool:
    """Whether a JSON body could contain `true`/`false` at all: a fast scan that spares most requests
    the walk over their numbers (numpy would silently read a boolean among numbers as 0 or 1)."""
    return b"true" in body or b"false" in body


def _holds_booleans(data: list[Any]) -> bool:
    return any(type(value) is bool or (type(value) is list and _holds_booleans(value)) for value in data)


def numeric_array(data: Any, datatype: str, what: str, check_booleans: bool = True) -> np.ndarray:
    """JSON numbers (flat or nested, row-major) → an array of the tensor's datatype, checked.

    The array keeps the nesting's shape; callers check it against the declared or expected shape.
    `what` names the values in messages ("input 'x' data", "instances"). `check_booleans=False`
    is for callers who know the body has no `true`/`false` (see `may_hold_booleans`).
    """
    try:
        values = np.array(data)
    except ValueError:
        raise BadRequest(f"{what} is a ragged nested array; rows must have equal lengths") from None
    if values.size == 0:
        return values.astype(DATATYPES[datatype])
    kind = values.dtype.kind
    if kind not in "iuf" or (check_booleans and _holds_booleans(data)):
        raise BadRequest(f"{what} must hold only numbers, got {_kind_name(kind)}")
    target = np.dtype(DATATYPES[datatype])
    if target.kind == "f":
        if values.dtype == target:
            return values
        with np.errstate(over="ignore"):
            converted = values.astype(target)
        # JSON numbers are finite (see jsoncodec); only a narrowing cast can overflow
        if target.itemsize < 8 and not np.isfinite(converted).all():
            raise BadRequest(f"{what} holds values too large for {datatype}")
        return converted
    if kind == "f":
        raise BadRequest(
            f"{what} must be JSON integers for {datatype}, got numbers with a fraction or exponent"
        )
    limits = np.iinfo(target)
    if values.min() < limits.min or values.max() > limits.max:
        raise BadRequest(f"{what} has values out of range for {datatype} [{limits.min}, {limits.max}]")
    return values.astype(target)


def _kind_name(kind: str) -> str:
    names = {"U": "strings", "S": "strings", "O": "nulls, objects or mixed types"}
    return names.get(kind, "booleans")  # numbers with booleans among them parse as numbers


# ---------------------------------------------------------------- Open Inference Protocol v2


def is_matrix_shape(shape: Sequence[int], n_features: int) -> bool:
    """[rows, n_features]; with a single feature [rows] is unambiguous too."""
    return (len(shape) == 2 and shape[1] == n_features) or (n_features == 1 and len(shape) == 1)


def _shape(tensor: Mapping[str, Any], what: str) -> list[int]:
    shape: list[int] = _field(tensor, "shape", list, what)
    if not all(type(dim) is int and dim >= 0 for dim in shape):  # `type is`: booleans are not sizes
        raise BadRequest(f"{what}: 'shape' must be a list of non-negative integers, got {shape}")
    return shape


class BinaryTensors:
    """The binary part of a request (Triton's binary tensor data extension), read in input order."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def take(self, tensor: Mapping[str, Any], datatype: str, what: str) -> np.ndarray:
        dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
        size = self._size(tensor, what)
        if size % dtype.itemsize:
            raise BadRequest(
                f"{what}: binary_data_size {size} is not a multiple of {dtype.itemsize} ({datatype})"
            )
        values = np.frombuffer(self._claim(size), dtype=dtype)
        if dtype.kind == "f" and not np.isfinite(values).all():
            raise BadRequest(f"{what} binary data holds NaN or infinite values")
        return values.astype(dtype.newbyteorder("="))

    def take_strings(self, tensor: Mapping[str, Any], what: str) -> list[str]:
        """A BYTES tensor: each element a 4-byte little-endian length, then that many UTF-8 bytes.

        Element by element: where one ends is known only from its length, so this cannot vectorise.
        """
        chunk = bytes(self._claim(self._size(tensor, what)))
        strings: list[str] = []
        position, end = 0, len(chunk)
        while position < end:
            element = f"{what} binary element {len(strings)}"
            if position + 4 > end:
                raise BadRequest(f"{element}: {end - position} bytes left, too few for its 4-byte length")
            (length,) = _LENGTH.unpack_from(chunk, position)
            position += 4
            if position + length > end:
                raise BadRequest(f"{element}: its length {length} runs past binary_data_size")
            try:
                strings.append(chunk[position : position + length].decode())
            except UnicodeDecodeError:
                raise BadRequest(f"{element} is not UTF-8 text") from None
            position += length
        return strings

    def _size(self, tensor: Mapping[str, Any], what: str) -> int:
        size = tensor["parameters"]["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"{what}: 'binary_data_size' must be a non-negative integer, got {size!r}")
        if self.offset + size > len(self.data):
            raise BadRequest(f"{what}: binary_data_size {size} runs past the end of the body's binary part")
        return size

    def _claim(self, size: int) -> memoryview:
        """The next `size` bytes (checked by `_size`), in input order."""
        start, self.offset = self.offset, self.offset + size
        return self.data[start : self.offset]

    def check_consumed(self) -> None:
        if self.offset != len(self.data):
            raise BadRequest(
                f"the body has {len(self.data) - self.offset} bytes of binary data no input claims"
            )


def split_binary(body: bytes, header_length: int | None) -> tuple[bytes, BinaryTensors | None]:
    """Body → (JSON part, binary part or None) using the Inference-Header-Content-Length header."""
    if header_length is None:
        return body, None
    if header_length > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {header_length} but the body has only {len(body)} bytes"
        )
    view = memoryview(body)
    return bytes(view[:header_length]), BinaryTensors(view[header_length:])


def _has_binary_data(tensor: Mapping[str, Any]) -> bool:
    parameters = tensor.get("parameters")
    return isinstance(parameters, Mapping) and "binary_data_size" in parameters


class _Header(NamedTuple):
    tensor: Mapping[str, Any]
    name: str
    what: str  # "input '<name>'", for messages
    shape: list[int]
    datatype: str


def _header(tensor: Any, index: int) -> _Header:
    tensor = _object(tensor, f"inputs[{index}]")
    name = _field(tensor, "name", str, f"inputs[{index}]")
    what = f"input '{name}'"
    return _Header(tensor, name, what, _shape(tensor, what), _field(tensor, "datatype", str, what))


def _tensor(
    tensor: Any, index: int, binary: BinaryTensors | None, check_booleans: bool
) -> tuple[str, list[int], np.ndarray]:
    """One v2 input tensor → (name, shape, flat values of its datatype)."""
    header = _header(tensor, index)
    if header.datatype not in DATATYPES:
        raise BadRequest(
            f"{header.what}: datatype '{header.datatype}' is not supported; use one of {SUPPORTED}"
        )
    values = _numeric_values(header, binary, check_booleans)
    _check_size(values.size, header)
    return header.name, header.shape, values


def _numeric_values(header: _Header, binary: BinaryTensors | None, check_booleans: bool) -> np.ndarray:
    tensor, what, datatype = header.tensor, header.what, header.datatype
    if "data" not in tensor and _has_binary_data(tensor):
        return _binary_part(binary, what).take(tensor, datatype, what)
    return numeric_array(_field(tensor, "data", list, what), datatype, f"{what} data", check_booleans)


def _binary_part(binary: BinaryTensors | None, what: str) -> BinaryTensors:
    if binary is None:
        raise BadRequest(
            f"{what} has binary_data_size but the request has no Inference-Header-Content-Length header"
        )
    return binary


def _check_size(size: int, header: _Header) -> None:
    expected = math.prod(header.shape)
    if size != expected:
        raise BadRequest(f"{header.what}: shape {header.shape} needs {expected} values, got {size}")


class RequestedOutput(NamedTuple):
    name: str
    binary: bool  # answer with this tensor as binary data after the JSON
    level: float  # lower and upper: the interval's level


class V2Request(NamedTuple):
    features: np.ndarray  # float64, (rows, n_features), in the model's feature order
    request_id: str | None
    binary_output: bool  # answer with the prediction tensor as binary data after the JSON
    unseen: Mapping[str, int] | None = None  # per category input: values encoded as all zeros
    # The outputs asked for by name, in the order asked; None: the prediction alone (today's answer)
    outputs: tuple[RequestedOutput, ...] | None = None
    # A model with categories: the raw columns in input order, as sent (for the payload log)
    columns: Sequence[Any] | None = None


def decode_v2(
    payload: Any, model: ServedModel, binary: BinaryTensors | None = None, check_booleans: bool = True
) -> V2Request:
    """An inference request (its JSON part, and the binary part if any) → features and options.

    Two input forms: one tensor of shape [rows, n_features] (any name), or one tensor per
    feature named after it with shape [rows] or [rows, 1] (the form MLServer and Triton clients
    build from a data frame). Tensor data is JSON or, per input, binary (`binary_data_size`).
    """
    request = _object(payload, "inference request")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"field 'id' must be a JSON string, got {_describe(request_id)}")
    outputs, binary_output = _requested_outputs(request, model)
    inputs = _field(request, "inputs", list, "inference request")
    if not inputs:
        raise BadRequest("field 'inputs' must hold at least one tensor")
    if model.has_categories:
        features, unseen, columns = _raw_inputs_v2(inputs, model, binary, check_booleans)
        return V2Request(features, request_id, binary_output, unseen, outputs, columns)
    if len(inputs) == 1 and binary is None and not check_booleans:
        matrix = _plain_matrix(inputs[0], model)
        if matrix is not None:
            return V2Request(matrix, request_id, binary_output, None, outputs)
    tensors = [_tensor(tensor, index, binary, check_booleans) for index, tensor in enumerate(inputs)]
    if binary is not None:
        binary.check_consumed()
    if len(tensors) == 1 and (tensors[0][0] not in model.feature_names or model.n_features == 1):
        return V2Request(_matrix_from_single(tensors[0], model), request_id, binary_output, None, outputs)
    return V2Request(_matrix_from_columns(tensors, model), request_id, binary_output, None, outputs)


def _plain_matrix(tensor: Any, model: ServedModel) -> np.ndarray | None:
    """The usual request at once: one FP64 tensor of JSON numbers, shaped [rows, n_features], that numpy
    reads as float64 (no integers, no booleans: the caller checked the body holds no true/false). None
    for anything else, which the general path reads, checks and explains."""
    if type(tensor) is not dict or tensor.get("datatype") != "FP64":
        return None
    shape, data, name = tensor.get("shape"), tensor.get("data"), tensor.get("name")
    n = model.n_features
    if (
        type(data) is not list
        or type(name) is not str
        or type(shape) is not list
        or len(shape) != 2
        or shape[1] != n
        or type(shape[0]) is not int
        or type(shape[1]) is not int
        or (n > 1 and name in model.feature_names)
    ):
        return None
    try:
        values = np.array(data)
    except ValueError:  # ragged
        return None
    if values.dtype != np.float64 or values.size != shape[0] * n:
        return None
    return values.reshape(shape[0], n)


def _matrix_from_single(tensor: tuple[str, list[int], np.ndarray], model: ServedModel) -> np.ndarray:
    name, shape, values = tensor
    n = model.n_features
    if is_matrix_shape(shape, n):
        return values.reshape(-1, n).astype(np.float64, copy=False)
    raise BadRequest(
        f"input '{name}': expected shape [rows, {n}] (or one input per feature: "
        f"{', '.join(model.feature_names)}), got {shape}"
    )


def _matrix_from_columns(tensors: list[tuple[str, list[int], np.ndarray]], model: ServedModel) -> np.ndarray:
    by_name: dict[str, np.ndarray] = {}
    rows: int | None = None
    for name, shape, values in tensors:
        if name not in model.feature_names:
            raise BadRequest(
                f"input '{name}' is not a feature of model '{model.name}'; send one input of shape "
                f"[rows, {model.n_features}] or one input per feature: {', '.join(model.feature_names)}"
            )
        if name in by_name:
            raise BadRequest(f"input '{name}' appears more than once")
        if not is_matrix_shape(shape, 1):
            raise BadRequest(
                f"input '{name}': expected shape [rows] or [rows, 1] for one feature, got {shape}"
            )
        if rows is not None and shape[0] != rows:
            raise BadRequest(f"input '{name}': expected {rows} rows like the other inputs, got {shape[0]}")
        rows = shape[0]
        by_name[name] = values.reshape(-1)
    missing = [feature for feature in model.feature_names if feature not in by_name]
    if missing:
        raise BadRequest(f"missing inputs for features: {', '.join(missing)}")
    columns = [by_name[feature] for feature in model.feature_names]
    return np.column_stack(columns).astype(np.float64, copy=False)


def _raw_inputs_v2(
    inputs: list[Any], model: ServedModel, binary: BinaryTensors | None, check_booleans: bool
) -> tuple[np.ndarray, dict[str, int], list[Any]]:
    """One tensor per raw input, named by it: BYTES for a category input, numbers otherwise; (features,
    unseen values per category input, the raw columns in input order)."""
    raw = model.raw_inputs
    columns: dict[str, Any] = {}
    rows: int | None = None
    for index, tensor in enumerate(inputs):
        header = _header(tensor, index)
        item = raw.by_name.get(header.name)
        if item is None:
            raise BadRequest(
                f"{header.what} is not an input of model '{model.name}'; send one tensor per input: "
                f"{_input_list(raw)}"
            )
        if header.name in columns:
            raise BadRequest(f"{header.what} appears more than once")
        if not is_matrix_shape(header.shape, 1):
            raise BadRequest(
                f"{header.what}: expected shape [rows] or [rows, 1] for one input, got {header.shape}"
            )
        if item.is_category:
            values = _strings(header, binary)
        elif header.datatype in DATATYPES:
            values = _numeric_values(header, binary, check_booleans).reshape(-1)
        else:
            raise BadRequest(
                f"{header.what} is a number input: datatype '{header.datatype}' is not supported; "
                f"use one of {SUPPORTED}"
            )
        _check_size(len(values), header)
        if rows is not None and header.shape[0] != rows:
            raise BadRequest(
                f"{header.what}: expected {rows} rows like the other inputs, got {header.shape[0]}"
            )
        rows = header.shape[0]
        columns[header.name] = values
    if binary is not None:
        binary.check_consumed()
    missing = [name for name in raw.names if name not in columns]
    if missing:
        raise BadRequest(
            f"missing inputs: {', '.join(missing)}; send one tensor per input: {_input_list(raw)}"
        )
    ordered = [columns[name] for name in raw.names]
    return (*_encode(raw, ordered, _v2_where), ordered)


def _strings(header: _Header, binary: BinaryTensors | None) -> Any:
    """A category input's values: JSON strings (null: missing) or binary BYTES elements."""
    if header.datatype != BYTES:
        raise BadRequest(
            f"{header.what} is a category input: datatype must be {BYTES} (strings), got '{header.datatype}'"
        )
    tensor = header.tensor
    if "data" not in tensor and _has_binary_data(tensor):
        return _binary_part(binary, header.what).take_strings(tensor, header.what)
    data = _field(tensor, "data", list, header.what)
    try:
        return np.asarray(data, dtype=object).reshape(-1)  # [rows, 1] may come nested
    except ValueError:
        raise BadRequest(
            f"{header.what} data is a ragged nested array; rows must have equal lengths"
        ) from None


def _input_list(raw: Inputs) -> str:
    return ", ".join(f"{item.name} ({BYTES if item.is_category else 'FP64'})" for item in raw.items)


def _v2_where(name: str, row: int | None) -> str:
    return f"input '{name}'" + ("" if row is None else f" element {row}")


def _encode(
    raw: Inputs, columns: list[Any], where: Callable[[str, int | None], str]
) -> tuple[np.ndarray, dict[str, int]]:
    """`Inputs.encode`, its complaint turned into a 400 that says where in this protocol's body."""
    try:
        return raw.encode(columns)
    except EncodingError as exc:
        raise BadRequest(f"{where(exc.input_name, exc.row)}: {exc.problem}") from None


def _parameter(holder: Mapping[str, Any], key: str) -> Any:
    parameters = holder.get("parameters")
    if parameters is None:
        return None
    # JSON objects decode to dicts: the exact type check spares the ABC machinery on every request
    return parameters.get(key) if type(parameters) is dict or isinstance(parameters, Mapping) else None


def level_of(value: Any, where: str, default: float = DEFAULT_LEVEL) -> float:
    """An interval level from a request's parameters: a number strictly between 0 and 1."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise BadRequest(
            f"{where} must be a number in (0, 1), like 0.9 or 0.95, got {jsoncodec.dumps(value).decode()}"
        )
    return float(value)


def _requested_outputs(
    request: Mapping[str, Any], model: ServedModel
) -> tuple[tuple[RequestedOutput, ...] | None, bool]:
    """The outputs asked for by name, or None when the request names none or only `predict` (whose
    answer is then exactly the one a request naming none gets); and whether the prediction is binary.

    Clients send the same few `outputs` lists: what one parses to is remembered by the model under the
    list's canonical JSON, the request's level and its binary flag (a level that is not a float is never
    valid, so only those requests are looked up; a refused list is never remembered)."""
    binary = _parameter(request, "binary_data_output") is True
    outputs = request.get("outputs")
    if outputs is None:
        return None, binary
    if not isinstance(outputs, list):
        raise BadRequest(f"field 'outputs' must be a JSON array, got {_describe(outputs)}")
    level = _parameter(request, "level")
    if level is not None and type(level) is not float:
        return _parse_outputs(outputs, level, binary, model)
    try:
        key = (jsoncodec.dumps(outputs), level, binary)
    except (TypeError, ValueError):  # nested deeper than the encoder goes: read it unremembered
        return _parse_outputs(outputs, level, binary, model)
    parsed = model.parsed_outputs
    found = parsed.get(key)
    if found is None:
        found = _parse_outputs(outputs, level, binary, model)
        if len(parsed) < PARSED_OUTPUTS:
            parsed[key] = found
    return found  # type: ignore[no-any-return]


def _parse_outputs(
    outputs: list[Any], level: Any, binary: bool, model: ServedModel
) -> tuple[tuple[RequestedOutput, ...] | None, bool]:
    level = DEFAULT_LEVEL if level is None else level_of(level, "parameter 'level'")
    available = model.outputs
    requested: dict[str, RequestedOutput] = {}  # in the order asked; the names seen
    for index, output in enumerate(outputs):
        name = output.get("name") if type(output) is dict else None
        if type(name) is not str:  # the messages, only when something is wrong
            output = _object(output, f"outputs[{index}]")
            name = _field(output, "name", str, f"outputs[{index}]")
        if name not in available:
            if name not in OUTPUTS:
                raise BadRequest(f"unknown output '{name}'; this model's outputs are {', '.join(available)}")
            raise BadRequest(
                f"output '{name}' is not available: {model.unavailable()[name]}; retrain the model"
            )
        if name in requested:
            raise BadRequest(f"output '{name}' is asked for more than once")
        parameters = output.get("parameters")
        own_binary, own_level = binary, level
        if parameters:
            if type(parameters) is not dict and not isinstance(parameters, Mapping):
                raise BadRequest(f"field 'parameters' of output '{name}' must be a JSON object")
            own_binary = parameters.get("binary_data") is True or binary
            own_level = level_of(parameters.get("level"), f"parameter 'level' of output '{name}'", level)
        requested[name] = _new_tuple(RequestedOutput, (name, own_binary, own_level))  # a C call, no __new__
    if len(requested) == 1 and OUTPUT_NAME in requested:
        return None, requested[OUTPUT_NAME].binary
    return tuple(requested.values()), binary


class Tensor(NamedTuple):
    """One output tensor of a response: FP64 values (an array, or a flat list of floats), or strings
    for BYTES."""

    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray | list[float] | list[str]
    binary: bool


def encode_tensors(
    model: ServedModel, tensors: Sequence[Tensor], request_id: str | None
) -> tuple[bytes, int | None]:
    """Response body for named outputs, and the JSON header's length when any tensor is binary."""
    response: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request_id is not None:
        response["id"] = request_id
    encoded: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in tensors:
        output: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        values = tensor.values
        if not tensor.binary:
            output["data"] = values if isinstance(values, list) else values.ravel().tolist()
        elif tensor.datatype == BYTES:
            raw = b"".join(_LENGTH.pack(len(e)) + e for e in (str(v).encode() for v in values))
        else:
            raw = np.asarray(values, dtype="<f8").tobytes()
        if tensor.binary:
            output["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        encoded.append(output)
    response["outputs"] = encoded
    header = jsoncodec.dumps(response)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def encode_v2(
    model: ServedModel, predictions: np.ndarray, request_id: str | None, binary: bool = False
) -> tuple[bytes, int | None]:
    """Response body, and the JSON header's length when the tensor follows as binary data. One row in
    JSON, the usual online answer, is the model's fixed bytes around the prediction: the bytes of the
    document below, without building it."""
    if not binary and len(predictions) == 1:
        head = model.json_head
        if request_id is not None:
            head = b"".join([head, b',"id":', jsoncodec.dumps(request_id)])
        data = jsoncodec.dumps(predictions.tolist())
        return b"".join([head, b',"outputs":[', model.json_prefixes[OUTPUT_NAME], data, b"}]}"]), None
    response: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request_id is not None:
        response["id"] = request_id
    output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "FP64", "shape": [len(predictions)]}
    response["outputs"] = [output]
    if not binary:
        output["data"] = predictions.tolist()
        return jsoncodec.dumps(response), None
    raw = predictions.astype("<f8", copy=False).tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    header = jsoncodec.dumps(response)
    return header + raw, len(header)


# ---------------------------------------------------------------- KServe v1


def decode_v1(payload: Any, model: ServedModel, check_booleans: bool = True) -> np.ndarray:
    """`{"instances": [[x1, x2, ...], ...]}` or instances as objects keyed by feature name."""
    instances = _field(_object(payload, "predict request"), "instances", list, "predict request")
    objects = sum(isinstance(instance, Mapping) for instance in instances)
    if objects == len(instances) > 0:
        instances = [
            _row_from_object(instance, index, model.feature_names) for index, instance in enumerate(instances)
        ]
    elif objects:
        raise BadRequest(
            "instances must be all lists of numbers or all objects keyed by feature name, not both"
        )
    values = numeric_array(instances, "FP64", "instances", check_booleans)
    n = model.n_features
    shape = values.shape
    if is_matrix_shape(shape, n) or shape == (0,):
        return values.reshape(-1, n)
    raise BadRequest(f"instances: expected shape [rows, {n}] (lists of {n} numbers), got {list(shape)}")


def decode_v1_inputs(
    payload: Any, model: ServedModel, check_booleans: bool = True
) -> tuple[np.ndarray, dict[str, int], list[Any]]:
    """A model with category inputs: instances are its raw inputs, as lists in input order or as
    objects keyed by input name (strings for categories, null for a missing one). The one-hot
    columns are never sent by hand: (features, unseen values per category input, the raw columns)."""
    instances = _field(_object(payload, "predict request"), "instances", list, "predict request")
    raw = model.raw_inputs
    objects = sum(isinstance(instance, Mapping) for instance in instances)
    if objects == len(instances) > 0:
        rows = [
            _row_from_object(instance, index, raw.names, "inputs") for index, instance in enumerate(instances)
        ]
    elif objects:
        raise BadRequest("instances must be all lists or all objects keyed by input name, not both")
    else:
        rows = [_raw_row(instance, index, raw) for index, instance in enumerate(instances)]
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in raw.items]
    if check_booleans:
        _refuse_booleans(raw, columns)
    return (*_encode(raw, columns, _v1_where), columns)


def _raw_row(instance: Any, index: int, raw: Inputs) -> Sequence[Any]:
    n = len(raw.items)
    if not isinstance(instance, list) or len(instance) != n:
        got = f"{len(instance)} values" if isinstance(instance, list) else _describe(instance)
        raise BadRequest(
            f"instances[{index}]: expected a list of {n} values, one per input ({', '.join(raw.names)}), "
            f"or an object keyed by input name; got {got}"
        )
    return instance


def _refuse_booleans(raw: Inputs, columns: list[Any]) -> None:
    """numpy reads true/false among numbers as 1/0; JSON booleans are not numbers."""
    for item, column in zip(raw.items, columns, strict=True):
        if item.is_category:
            continue  # encoding refuses anything but strings and null there
        row = next((row for row, value in enumerate(column) if type(value) is bool), None)
        if row is not None:
            raise BadRequest(f"{_v1_where(item.name, row)}: must be a number, got boolean")


def _v1_where(name: str, row: int | None) -> str:
    return ("instances" if row is None else f"instances[{row}]") + f": input '{name}'"


def _row_from_object(
    instance: Mapping[str, Any], index: int, names: Sequence[str], kind: str = "features"
) -> Sequence[Any]:
    """An instance keyed by name → its values in `names` order; `kind` names them in messages."""
    unknown = [key for key in instance if key not in names]
    if unknown:
        raise BadRequest(f"instances[{index}]: unknown {kind} {', '.join(map(str, unknown))}")
    missing = [name for name in names if name not in instance]
    if missing:
        raise BadRequest(f"instances[{index}]: missing {kind} {', '.join(missing)}")
    return [instance[name] for name in names]


def encode_v1(predictions: np.ndarray) -> bytes:
    return jsoncodec.dumps({"predictions": predictions.tolist()})
