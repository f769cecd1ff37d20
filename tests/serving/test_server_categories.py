"""A model with category inputs: raw values in (v1 objects and lists, v2 BYTES as JSON and binary),
the training encoding applied, unseen values counted, and every malformed request refused with 400.
Served by conftest's fixtures, with this module's artifact."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from server_helpers import Client

from marina.data.distribution import Reference, bin_counts
from marina.data.encoding import Inputs
from marina.model.artifact import ModelArtifact
from marina.serving.model import ServedModel
from marina.serving.protocol import SUPPORTED

INPUTS = [
    {"name": "age", "type": "number"},
    {"name": "colour", "type": "category", "categories": ["blue", "green", "red"]},
    {"name": "bp", "type": "number"},
]
FEATURES = ["age", "colour=blue", "colour=green", "colour=red", "bp"]
COEFFICIENTS = [1.0, 10.0, 20.0, 30.0, 0.5]
INTERCEPT = 100.0
COLOUR = {"blue": 10.0, "green": 20.0, "red": 30.0}
INFER = "/v2/models/diabetes/infer"
PREDICT = "/v1/models/diabetes:predict"
ROWS = [[1, "red", 2], [3, "blue", 4], [5, "green", 6]]


def expected(rows: list[list[Any]]) -> list[float]:
    """By hand: 100 + age + the colour's coefficient (0 when unseen) + bp / 2."""
    return [INTERCEPT + age + COLOUR.get(colour, 0.0) + 0.5 * bp for age, colour, bp in rows]


EXPECTED = [132.0, 115.0, 128.0]


def training_matrix() -> np.ndarray:
    rng = np.random.default_rng(3)
    colours = rng.choice(["blue", "green", "red"], size=300).tolist()
    matrix, _ = Inputs.from_list(INPUTS).encode([rng.normal(40, 9, 300), colours, rng.normal(80, 5, 300)])
    return matrix


@pytest.fixture(scope="module")
def artifact() -> ModelArtifact:
    """Overrides conftest's: its `served` and `client` fixtures then serve this model as 'diabetes'."""
    x = training_matrix()
    reference = Reference.of(x, x @ np.array(COEFFICIENTS) + INTERCEPT, bins=4)
    return ModelArtifact(
        coefficients=COEFFICIENTS,
        intercept=INTERCEPT,
        feature_names=FEATURES,
        dataset={"name": "diabetes"},
        reference=reference.to_dict(FEATURES),
        inputs=INPUTS,
    )


def v1_objects(rows: list[list[Any]]) -> dict[str, Any]:
    return {"instances": [dict(zip(["age", "colour", "bp"], row, strict=True)) for row in rows]}


def v2_json(rows: list[list[Any]], column: bool = False) -> dict[str, Any]:
    """One tensor per input, in reverse order (inputs are matched by name); [rows, 1] when `column`."""
    tensors = []
    for i, (name, datatype) in enumerate([("age", "FP64"), ("colour", "BYTES"), ("bp", "INT32")]):
        data = [[row[i]] if column else row[i] for row in rows]
        shape = [len(rows), 1] if column else [len(rows)]
        tensors.append({"name": name, "datatype": datatype, "shape": shape, "data": data})
    return {"inputs": tensors[::-1]}


def bytes_elements(values: list[str]) -> bytes:
    """The binary form of a BYTES tensor: each element's 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(raw)) + raw for raw in (v.encode() for v in values))


def v2_binary(
    rows: list[list[Any]], colour_bytes: bytes | None = None, extra: bytes = b"", binary_output: bool = False
) -> tuple[bytes, dict[str, str]]:
    """age as binary FP64, colour as binary BYTES, bp as JSON: the mix a client may send."""
    age = np.array([row[0] for row in rows], dtype="<f8").tobytes()
    colour = bytes_elements([row[1] for row in rows]) if colour_bytes is None else colour_bytes
    shape = [len(rows)]
    header: dict[str, Any] = {
        "inputs": [
            {"name": "age", "datatype": "FP64", "shape": shape, "parameters": {"binary_data_size": len(age)}},
            {
                "name": "colour",
                "datatype": "BYTES",
                "shape": shape,
                "parameters": {"binary_data_size": len(colour)},
            },
            {"name": "bp", "datatype": "FP64", "shape": shape, "data": [row[2] for row in rows]},
        ]
    }
    if binary_output:
        header["parameters"] = {"binary_data_output": True}
    encoded = json.dumps(header).encode()
    return encoded + age + colour + extra, {"Inference-Header-Content-Length": str(len(encoded))}


def unseen_line(count: int) -> str:
    return f'marina_unseen_category_values_total{{input="colour",model="diabetes"}} {float(count)!r}'


# ------------------------------------------------------------------------------ answered requests


def test_v1_objects_with_strings(client: Client, artifact: ModelArtifact) -> None:
    response = client.post(PREDICT, json=v1_objects(ROWS))
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": EXPECTED}
    encoded, _ = Inputs.of(artifact).encode([[r[i] for r in ROWS] for i in range(3)])
    assert response.json()["predictions"] == artifact.predict(encoded).tolist()


def test_v1_lists_in_input_order(client: Client) -> None:
    response = client.post(PREDICT, json={"instances": ROWS})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": EXPECTED}


def test_v1_no_instances(client: Client) -> None:
    response = client.post(PREDICT, json={"instances": []})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": []}


@pytest.mark.parametrize("column", [False, True])
def test_v2_json_bytes(client: Client, served: ServedModel, column: bool) -> None:
    response = client.post(INFER, json={"id": "r1", **v2_json(ROWS, column)})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "model_name": "diabetes",
        "model_version": served.version,
        "id": "r1",
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [3], "data": EXPECTED}],
    }


def test_v2_binary_bytes(client: Client) -> None:
    rows = [[1.5, "red", 2], [3, "grün", 4], [5, "", 6], [7, "green", 8]]  # non-ASCII and empty elements
    body, headers = v2_binary(rows)
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == expected(rows)


def test_v2_binary_bytes_with_binary_output(client: Client) -> None:
    body, headers = v2_binary(ROWS, binary_output=True)
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    assert np.frombuffer(response.content[length:], dtype="<f8").tolist() == EXPECTED


def test_unseen_and_null_encode_as_zeros_and_are_counted(client: Client) -> None:
    assert unseen_line(0) in client.get("/metrics").text.splitlines()
    rows = [[1, "purple", 2], [3, None, 4], [5, "red", 6]]
    response = client.post(PREDICT, json=v1_objects(rows))
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [102.0, 105.0, 138.0]}
    body, headers = v2_binary([[1, "Red", 2]])  # case matters: unseen
    assert client.post(INFER, content=body, headers=headers).json()["outputs"][0]["data"] == [102.0]
    assert client.post(INFER, json=v2_json([[1, None, 2], [1, "blue", 2]])).status_code == 200
    lines = client.get("/metrics").text.splitlines()
    assert unseen_line(4) in lines
    assert "# TYPE marina_unseen_category_values_total counter" in lines


def test_refused_requests_count_no_unseen_values(client: Client) -> None:
    response = client.post(PREDICT, json=v1_objects([[1, "purple", 2], [2, "red", "x"]]))
    assert response.status_code == 400
    assert unseen_line(0) in client.get("/metrics").text.splitlines()


def test_numbers_only_models_export_no_unseen_metric(make_client: Any, artifact: ModelArtifact) -> None:
    numbers = ModelArtifact(coefficients=[1.0], intercept=0.0, feature_names=["x"])
    text = make_client(ServedModel.from_artifact(numbers, "n", "memory")).get("/metrics").text
    assert "marina_unseen_category_values_total" not in text


def test_metadata_lists_each_raw_input_with_its_datatype(client: Client, served: ServedModel) -> None:
    response = client.get("/v2/models/diabetes")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["inputs"] == [
        {"name": "age", "datatype": "FP64", "shape": [-1]},
        {"name": "colour", "datatype": "BYTES", "shape": [-1]},
        {"name": "bp", "datatype": "FP64", "shape": [-1]},
    ]
    parameters = metadata["parameters"]
    assert (parameters["feature_names"], parameters["sha256"]) == (FEATURES, served.sha256)
    assert parameters["inputs"] == INPUTS
    # No training means or answers section in this artifact: predictions and the category guard only.
    assert metadata["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [-1]},
        {"name": "extrapolation", "datatype": "BYTES", "shape": [-1]},
    ]
    assert set(parameters["unavailable"]) == {"contribution", "lower", "upper"}
    assert parameters["extrapolation"]["checks"]["category"] == {"inputs": ["colour"]}


def test_drift_histograms_count_the_encoded_features(client: Client, artifact: ModelArtifact) -> None:
    rows = [[30, "red", 70], [40, "red", 80], [50, "blue", 90], [60, "purple", 100]]
    assert client.post(PREDICT, json={"instances": rows}).status_code == 200
    document = client.get("/v2/models/diabetes/distribution").json()
    window = document["windows"][-1]
    assert window["rows"] == 4
    assert list(window["features"]) == FEATURES
    encoded, _ = Inputs.of(artifact).encode([[r[i] for r in rows] for i in range(3)])
    reference = artifact.reference_distribution()
    assert reference is not None
    for j, name in enumerate(FEATURES):
        counts = bin_counts(reference.features[j].edge_array, encoded[:, j]).tolist()
        assert window["features"][name] == counts
    assert window["features"]["colour=red"] != window["features"]["colour=blue"]  # 2 ones vs 1


# -------------------------------------------------------------------------------------- refusals

V1_ERRORS = [
    (
        v1_objects([[1, "red", 2], [2, 7, 3]]),
        "instances[1]: input 'colour': must be a string (a category) or null, got number",
    ),
    (v1_objects([[1, "red", 2], [2, "red", "3"]]), "instances[1]: input 'bp': must be a number, got string"),
    (v1_objects([[1, "red", 2], [None, "red", 3]]), "instances[1]: input 'age': must be a number, got null"),
    (v1_objects([[True, "red", 2]]), "instances[0]: input 'age': must be a number, got boolean"),
    (
        v1_objects([[1, True, 2]]),
        "instances[0]: input 'colour': must be a string (a category) or null, got boolean",
    ),
    (
        v1_objects([[1, ["red"], 2]]),
        "instances[0]: input 'colour': must be a string (a category) or null, got array",
    ),
    (v1_objects([[1, "red", [2]]]), "instances[0]: input 'bp': must be a number, got array"),
    (
        {"instances": [[1, 0, 0, 1, 2]]},
        "instances[0]: expected a list of 3 values, one per input (age, colour, bp), "
        "or an object keyed by input name; got 5 values",
    ),
    (
        {"instances": [[1, "red", 2], 5]},
        "instances[1]: expected a list of 3 values, one per input (age, colour, bp), "
        "or an object keyed by input name; got number",
    ),
    ({"instances": [{"age": 1, "colour=red": 1, "bp": 2}]}, "instances[0]: unknown inputs colour=red"),
    ({"instances": [{"age": 1, "bp": 2}]}, "instances[0]: missing inputs colour"),
    (
        {"instances": [{"age": 1, "colour": "red", "bp": 2}, [1, "red", 2]]},
        "instances must be all lists or all objects keyed by input name, not both",
    ),
    ({"inputs": []}, "missing field 'instances' in predict request"),
]


@pytest.mark.parametrize(("payload", "error"), V1_ERRORS)
def test_v1_refusals(client: Client, payload: Any, error: str) -> None:
    response = client.post(PREDICT, json=payload)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def tensor(name: str, datatype: str, data: list[Any], shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


AGE_T, COLOUR_T, BP_T = (
    tensor("age", "FP64", [1, 2]),
    tensor("colour", "BYTES", ["red", "blue"]),
    tensor("bp", "FP64", [3, 4]),
)
V2_ERRORS = [
    (
        [AGE_T, tensor("colour", "BYTES", ["red", 7]), BP_T],
        "input 'colour' element 1: must be a string (a category) or null, got number",
    ),
    (
        [AGE_T, tensor("colour", "FP64", [1, 2]), BP_T],
        "input 'colour' is a category input: datatype must be BYTES (strings), got 'FP64'",
    ),
    (
        [tensor("age", "BYTES", ["1", "2"]), COLOUR_T, BP_T],
        f"input 'age' is a number input: datatype 'BYTES' is not supported; use one of {SUPPORTED}",
    ),
    (
        [tensor("age", "FP64", [1, "2"]), COLOUR_T, BP_T],
        "input 'age' data must hold only numbers, got strings",
    ),
    (
        [tensor("age", "FP64", [1, True]), COLOUR_T, BP_T],
        "input 'age' data must hold only numbers, got booleans",
    ),
    (
        [tensor("input-0", "FP64", [1, 0, 0, 1, 2], [1, 5])],
        "input 'input-0' is not an input of model 'diabetes'; send one tensor per input: "
        "age (FP64), colour (BYTES), bp (FP64)",
    ),
    (
        [AGE_T, BP_T],
        "missing inputs: colour; send one tensor per input: age (FP64), colour (BYTES), bp (FP64)",
    ),
    ([AGE_T, COLOUR_T, BP_T, COLOUR_T], "input 'colour' appears more than once"),
    (
        [AGE_T, tensor("colour", "BYTES", ["red"]), BP_T],
        "input 'colour': expected 2 rows like the other inputs, got 1",
    ),
    (
        [AGE_T, tensor("colour", "BYTES", ["red", "blue"], [1, 2]), BP_T],
        "input 'colour': expected shape [rows] or [rows, 1] for one input, got [1, 2]",
    ),
    (
        [AGE_T, tensor("colour", "BYTES", ["red", "blue"], [3]), BP_T],
        "input 'colour': shape [3] needs 3 values, got 2",
    ),
    (
        [AGE_T, tensor("colour", "BYTES", [["red"], "blue"], [2, 1]), BP_T],
        "input 'colour' element 0: must be a string (a category) or null, got array",
    ),
    (
        [AGE_T, {"name": "colour", "datatype": "BYTES", "shape": [2]}, BP_T],
        "missing field 'data' in input 'colour'",
    ),
]


@pytest.mark.parametrize(("inputs", "error"), V2_ERRORS)
def test_v2_refusals(client: Client, inputs: list[dict[str, Any]], error: str) -> None:
    response = client.post(INFER, json={"inputs": inputs})
    assert response.status_code == 400
    assert response.json() == {"error": error}


TWO = [[1, "red", 2], [3, "blue", 4]]
BINARY_ERRORS = [
    (
        bytes_elements(["red"]) + b"\x01\x00",
        b"",
        "input 'colour' binary element 1: 2 bytes left, too few for its 4-byte length",
    ),
    (
        bytes_elements(["red"]) + struct.pack("<I", 9) + b"blue",
        b"",
        "input 'colour' binary element 1: its length 9 runs past binary_data_size",
    ),
    (
        bytes_elements(["red"]) + struct.pack("<I", 2) + b"\xff\xfe",
        b"",
        "input 'colour' binary element 1 is not UTF-8 text",
    ),
    (bytes_elements(["red"]), b"", "input 'colour': shape [2] needs 2 values, got 1"),
    (None, b"\x00", "the body has 1 bytes of binary data no input claims"),
]


@pytest.mark.parametrize(("colour", "extra", "error"), BINARY_ERRORS)
def test_v2_binary_bytes_refusals(client: Client, colour: bytes | None, extra: bytes, error: str) -> None:
    body, headers = v2_binary(TWO, colour, extra)
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_v2_binary_bytes_without_the_header_is_refused(client: Client) -> None:
    body, _ = v2_binary(TWO)
    response = client.post(INFER, content=body[: body.index(b"}]}") + 3])
    assert response.status_code == 400
    assert response.json() == {
        "error": "input 'age' has binary_data_size but the request has no "
        "Inference-Header-Content-Length header"
    }
