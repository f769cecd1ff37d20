"""The server's v1 and v2 endpoints in-process: exact statuses and bodies."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from server_helpers import FEATURES, Client

from marina import __version__
from marina.model.artifact import ModelArtifact
from marina.serving import app as app_module
from marina.serving.limits import ServerLimits
from marina.serving.model import ServedModel
from marina.serving.protocol import DATATYPES

ROWS = [[1, 2, 3], [4, 5, 6]]
INFER = "/v2/models/diabetes/infer"
PREDICT = "/v1/models/diabetes:predict"


def v2_inputs(form: str, datatype: str, rows: list[list[Any]]) -> list[dict[str, Any]]:
    """The same rows in each input form a v2 client may send."""
    if form == "flat":
        data: Any = [value for row in rows for value in row]
        return [{"name": "input-0", "shape": [len(rows), 3], "datatype": datatype, "data": data}]
    if form == "nested":
        return [{"name": "input-0", "shape": [len(rows), 3], "datatype": datatype, "data": rows}]
    as_column = form == "per-feature-column"
    columns = [
        {
            "name": name,
            "shape": [len(rows), 1] if as_column else [len(rows)],
            "datatype": datatype,
            "data": [[row[i]] if as_column else row[i] for row in rows],
        }
        for i, name in enumerate(FEATURES)
    ]
    return columns[::-1]  # order must not matter: inputs are matched by name


def v2_response(served: ServedModel, predictions: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "model_name": "diabetes",
        "model_version": served.version,
        **extra,
        "outputs": [
            {"name": "predict", "datatype": "FP64", "shape": [len(predictions)], "data": predictions}
        ],
    }


@pytest.mark.parametrize("form", ["flat", "nested", "per-feature", "per-feature-column"])
@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_v2_infer_equals_artifact_predict(
    client: Client, served: ServedModel, artifact: ModelArtifact, form: str, datatype: str
) -> None:
    response = client.post(INFER, json={"inputs": v2_inputs(form, datatype, ROWS)})
    expected = artifact.predict(np.array(ROWS, dtype=DATATYPES[datatype])).tolist()
    assert (response.status_code, response.json()) == (200, v2_response(served, expected))
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("datatype", "dtype"), [("FP32", np.float32), ("FP16", np.float16), ("FP64", np.float64)]
)
def test_v2_infer_reads_fractions_at_the_declared_precision(
    client: Client, served: ServedModel, artifact: ModelArtifact, datatype: str, dtype: type
) -> None:
    rows = [[0.1, 0.2, 0.3]]
    response = client.post(INFER, json={"id": "req-7", "inputs": v2_inputs("flat", datatype, rows)})
    expected = artifact.predict(np.array(rows, dtype=dtype)).tolist()
    assert response.json() == v2_response(served, expected, id="req-7")


@pytest.mark.parametrize("version_of", [lambda m: m.version, lambda m: m.sha256])
def test_v2_versioned_infer_and_requested_output(
    client: Client, served: ServedModel, artifact: ModelArtifact, version_of: Callable[[ServedModel], str]
) -> None:
    body = {"inputs": v2_inputs("flat", "FP64", ROWS), "outputs": [{"name": "predict"}]}
    response = client.post(f"/v2/models/diabetes/versions/{version_of(served)}/infer", json=body)
    assert response.json() == v2_response(served, artifact.predict(np.array(ROWS)).tolist())


def test_v2_infer_zero_rows(client: Client, served: ServedModel) -> None:
    body = {"inputs": [{"name": "x", "shape": [0, 3], "datatype": "FP32", "data": []}]}
    assert client.post(INFER, json=body).json() == v2_response(served, [])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        ("/v2", {"name": "marina", "version": __version__, "extensions": ["binary_tensor_data"]}),
        ("/v2/models/diabetes/ready", {"name": "diabetes", "ready": True}),
        ("/v1/models", {"models": ["diabetes"]}),
        ("/v1/models/diabetes", {"name": "diabetes", "ready": True}),
    ],
)
def test_health_and_readiness(client: Client, path: str, body: dict[str, Any]) -> None:
    response = client.get(path)
    assert (response.status_code, response.json()) == (200, body)


def test_v2_model_metadata(client: Client, served: ServedModel) -> None:
    """This artifact predates the answers section: it explains (its statistics hold every mean) and guards
    ranges, and says why it has no intervals."""
    response = client.get("/v2/models/diabetes")
    assert response.status_code == 200
    metadata = response.json()
    parameters = metadata.pop("parameters")
    assert metadata == {
        "name": "diabetes",
        "versions": [served.version],
        "platform": "marina_linear",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}],
        "outputs": [
            {"name": "predict", "datatype": "FP64", "shape": [-1]},
            {"name": "contribution", "datatype": "FP64", "shape": [-1, 3]},
            {"name": "extrapolation", "datatype": "BYTES", "shape": [-1]},
        ],
    }
    assert (parameters["feature_names"], parameters["sha256"]) == (FEATURES, served.sha256)
    assert parameters["explanation"]["inputs"] == FEATURES
    assert "retrain" not in json.dumps(parameters["explanation"])
    assert set(parameters["unavailable"]) == {"lower", "upper"}
    assert "leverage" in parameters["extrapolation"]["checks"]
    assert client.get(f"/v2/models/diabetes/versions/{served.version}").json() == response.json()


@pytest.mark.parametrize(
    "instances",
    [
        ROWS,
        [dict(zip(FEATURES, row, strict=True)) for row in ROWS],
        [{"bp": 3, "age": 1, "bmi": 2}, dict(zip(FEATURES[::-1], ROWS[1][::-1], strict=True))],
    ],
    ids=["lists", "objects", "objects-in-any-key-order"],
)
def test_v1_predict(client: Client, artifact: ModelArtifact, instances: list[Any]) -> None:
    response = client.post(PREDICT, json={"instances": instances})
    expected = artifact.predict(np.array(ROWS, dtype=np.float64)).tolist()
    assert (response.status_code, response.json()) == (200, {"predictions": expected})


def tensor(
    data: Any, shape: list[int] | None = None, datatype: str = "FP64", name: str = "input-0"
) -> dict[str, Any]:
    return {"name": name, "shape": shape or [1, 3], "datatype": datatype, "data": data}


PER_FEATURE = "one input per feature: age, bmi, bp"
BAD_V2_REQUESTS: list[tuple[str, Any, str]] = [
    ("empty body", b"", "request body is empty; expected a JSON object"),
    ("not an object", [1, 2], "inference request must be a JSON object, got array"),
    ("no inputs", {}, "missing field 'inputs' in inference request"),
    (
        "inputs not a list",
        {"inputs": {}},
        "field 'inputs' in inference request must be a JSON array, got object",
    ),
    ("zero inputs", {"inputs": []}, "field 'inputs' must hold at least one tensor"),
    ("tensor not an object", {"inputs": [3]}, "inputs[0] must be a JSON object, got number"),
    ("no name", {"inputs": [{"shape": [1, 3]}]}, "missing field 'name' in inputs[0]"),
    (
        "no datatype",
        {"inputs": [{"name": "x", "shape": [1, 3], "data": [1, 2, 3]}]},
        "missing field 'datatype' in input 'x'",
    ),
    (
        "no data",
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64"}]},
        "missing field 'data' in input 'x'",
    ),
    (
        "bad shape",
        {"inputs": [tensor([1, 2, 3], [1, -3])]},
        "input 'input-0': 'shape' must be a list of non-negative integers, got [1, -3]",
    ),
    (
        "wrong width",
        {"inputs": [tensor([1, 2], [1, 2])]},
        f"input 'input-0': expected shape [rows, 3] (or {PER_FEATURE}), got [1, 2]",
    ),
    (
        "1-D single input",
        {"inputs": [tensor([1, 2, 3], [3])]},
        f"input 'input-0': expected shape [rows, 3] (or {PER_FEATURE}), got [3]",
    ),
    (
        "count vs shape",
        {"inputs": [tensor([1, 2], [1, 3])]},
        "input 'input-0': shape [1, 3] needs 3 values, got 2",
    ),
    (
        "BYTES",
        {"inputs": [tensor(["a", "b", "c"], datatype="BYTES")]},
        "input 'input-0': datatype 'BYTES' is not supported; use one of "
        "FP16, FP32, FP64, INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64",
    ),
    (
        "lowercase datatype",
        {"inputs": [tensor([1, 2, 3], datatype="fp32")]},
        "input 'input-0': datatype 'fp32' is not supported; use one of "
        "FP16, FP32, FP64, INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64",
    ),
    (
        "strings",
        {"inputs": [tensor(["1", "2", "3"])]},
        "input 'input-0' data must hold only numbers, got strings",
    ),
    (
        "nulls",
        {"inputs": [tensor([1, None, 3])]},
        "input 'input-0' data must hold only numbers, got nulls, objects or mixed types",
    ),
    (
        "booleans",
        {"inputs": [tensor([True, False, True])]},
        "input 'input-0' data must hold only numbers, got booleans",
    ),
    (
        "a boolean among numbers",
        {"inputs": [tensor([1, True, 3.5])]},
        "input 'input-0' data must hold only numbers, got booleans",
    ),
    (
        "a boolean in nested rows",
        {"inputs": [tensor([[1, 2, 3], [4, False, 6]], [2, 3])]},
        "input 'input-0' data must hold only numbers, got booleans",
    ),
    (
        "ragged",
        {"inputs": [tensor([[1, 2, 3], [4, 5]], [2, 3])]},
        "input 'input-0' data is a ragged nested array; rows must have equal lengths",
    ),
    (
        "fraction as INT32",
        {"inputs": [tensor([1.5, 2, 3], datatype="INT32")]},
        "input 'input-0' data must be JSON integers for INT32, got numbers with a fraction or exponent",
    ),
    (
        "INT8 overflow",
        {"inputs": [tensor([300, 1, 1], datatype="INT8")]},
        "input 'input-0' data has values out of range for INT8 [-128, 127]",
    ),
    (
        "negative UINT8",
        {"inputs": [tensor([-1, 1, 1], datatype="UINT8")]},
        "input 'input-0' data has values out of range for UINT8 [0, 255]",
    ),
    (
        "FP32 overflow",
        {"inputs": [tensor([1e39, 1, 1], datatype="FP32")]},
        "input 'input-0' data holds values too large for FP32",
    ),
    (
        "unknown feature",
        {"inputs": [tensor([1], [1], name=n) for n in ("age", "bmi", "sex")]},
        "input 'sex' is not a feature of model 'diabetes'; send one input of shape [rows, 3] or "
        "one input per feature: age, bmi, bp",
    ),
    (
        "missing feature",
        {"inputs": [tensor([1], [1], name=n) for n in ("age", "bmi")]},
        "missing inputs for features: bp",
    ),
    (
        "duplicate feature",
        {"inputs": [tensor([1], [1], name=n) for n in ("age", "age", "bp")]},
        "input 'age' appears more than once",
    ),
    (
        "rows differ",
        {"inputs": [tensor([1], [1], name="age"), tensor([1, 2], [2], name="bmi")]},
        "input 'bmi': expected 1 rows like the other inputs, got 2",
    ),
    (
        "feature as matrix",
        {"inputs": [tensor([1, 2], [1, 2], name="age"), tensor([1], [1], name="bmi")]},
        "input 'age': expected shape [rows] or [rows, 1] for one feature, got [1, 2]",
    ),
    (
        "id not a string",
        {"id": 5, "inputs": [tensor([1, 2, 3])]},
        "field 'id' must be a JSON string, got number",
    ),
    (
        "unknown output",
        {"inputs": [tensor([1, 2, 3])], "outputs": [{"name": "proba"}]},
        "unknown output 'proba'; this model's outputs are predict, contribution, extrapolation",
    ),
]


@pytest.mark.parametrize(
    ("body", "error"), [case[1:] for case in BAD_V2_REQUESTS], ids=[case[0] for case in BAD_V2_REQUESTS]
)
def test_v2_infer_rejects_bad_requests(client: Client, body: Any, error: str) -> None:
    response = client.post(INFER, content=body) if isinstance(body, bytes) else client.post(INFER, json=body)
    assert (response.status_code, response.json()) == (400, {"error": error})


@pytest.mark.parametrize("body", [b'{"inputs": [', b"not json", b'{"inputs": [NaN]}', b"\xff\xfe"])
def test_malformed_json_is_400(client: Client, body: bytes) -> None:
    for path in (INFER, PREDICT):
        response = client.post(path, content=body)
        assert response.status_code == 400
        assert response.json()["error"].startswith("malformed JSON: ")


BAD_V1_REQUESTS: list[tuple[str, Any, str]] = [
    ("no instances", {"inputs": ROWS}, "missing field 'instances' in predict request"),
    (
        "instances not a list",
        {"instances": 3},
        "field 'instances' in predict request must be a JSON array, got number",
    ),
    (
        "short rows",
        {"instances": [[1, 2]]},
        "instances: expected shape [rows, 3] (lists of 3 numbers), got [1, 2]",
    ),
    (
        "flat list",
        {"instances": [1, 2, 3]},
        "instances: expected shape [rows, 3] (lists of 3 numbers), got [3]",
    ),
    ("strings", {"instances": [["a", "b", "c"]]}, "instances must hold only numbers, got strings"),
    ("a boolean", {"instances": [[1, 2, True]]}, "instances must hold only numbers, got booleans"),
    (
        "a boolean in an object",
        {"instances": [{"age": 1, "bmi": 2, "bp": False}]},
        "instances must hold only numbers, got booleans",
    ),
    ("missing feature", {"instances": [{"age": 1, "bmi": 2}]}, "instances[0]: missing features bp"),
    (
        "unknown feature",
        {"instances": [{"age": 1, "bmi": 2, "bp": 3, "sex": 1}]},
        "instances[0]: unknown features sex",
    ),
    (
        "mixed forms",
        {"instances": [{"age": 1, "bmi": 2, "bp": 3}, [1, 2, 3]]},
        "instances must be all lists of numbers or all objects keyed by feature name, not both",
    ),
]


@pytest.mark.parametrize(
    ("body", "error"), [case[1:] for case in BAD_V1_REQUESTS], ids=[case[0] for case in BAD_V1_REQUESTS]
)
def test_v1_predict_rejects_bad_requests(client: Client, body: Any, error: str) -> None:
    response = client.post(PREDICT, json=body)
    assert (response.status_code, response.json()) == (400, {"error": error})


NOT_SERVED = "model 'other' is not served here; this server serves 'diabetes'"


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("POST", "/v2/models/other/infer", NOT_SERVED),
        ("GET", "/v2/models/other", NOT_SERVED),
        ("GET", "/v2/models/other/ready", NOT_SERVED),
        ("POST", "/v1/models/other:predict", NOT_SERVED),
        ("GET", "/v1/models/other", NOT_SERVED),
        (
            "POST",
            "/v2/models/diabetes/versions/0123/infer",
            "model 'diabetes' has no version '0123'; the served version is '{version}'",
        ),
        ("GET", "/v3/models", "no such path: /v3/models"),
        ("GET", "/v2/models/diabetes/explain", "no such path: /v2/models/diabetes/explain"),
        ("POST", "/v1/models/other:explain", NOT_SERVED),
    ],
)
def test_unknown_model_or_path_is_404(
    client: Client, served: ServedModel, method: str, path: str, error: str
) -> None:
    response = client.request(
        method, path, json={"instances": ROWS, "inputs": v2_inputs("flat", "FP64", ROWS)}
    )
    assert (response.status_code, response.json()) == (404, {"error": error.format(version=served.version)})


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", INFER, "POST"),
        ("PUT", PREDICT, "POST"),
        ("POST", "/v2/health/ready", "GET"),
        ("DELETE", "/metrics", "GET"),
    ],
)
def test_wrong_method_is_405(client: Client, method: str, path: str, allowed: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json() == {"error": f"method {method} is not allowed on {path}; use {allowed}"}


def test_oversized_body_is_413(served: ServedModel, make_client: Callable[..., Client]) -> None:
    client = make_client(served, limits=ServerLimits(max_body_bytes=100))
    response = client.post(INFER, json={"inputs": v2_inputs("flat", "FP64", ROWS * 10)})
    assert response.status_code == 413
    assert response.json()["error"].endswith("exceeds the limit of 100 bytes")
    assert client.post(INFER, json={"inputs": v2_inputs("flat", "FP64", ROWS[:1])}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/health/live", 200),
        ("GET", "/v2/health/ready", 503),
        ("POST", INFER, 503),
        ("GET", "/v2/models/diabetes", 503),
        ("POST", PREDICT, 503),
        ("GET", "/v1/models", 200),
    ],
)
def test_not_ready_until_loaded(
    make_client: Callable[..., Client], method: str, path: str, status: int
) -> None:
    response = make_client().request(method, path, json={"instances": ROWS})
    assert response.status_code == status
    if status == 503:
        assert response.json() == {"error": "the model is not loaded yet"}


def test_metrics_count_requests_and_input_statistics(client: Client, served: ServedModel) -> None:
    client.post(INFER, json={"inputs": v2_inputs("flat", "FP64", ROWS)})
    client.post(PREDICT, json={"instances": [[7, 8, 9]]})
    client.post(INFER, json={"inputs": []})
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = set(response.text.splitlines())
    columns = np.array([*ROWS, [7, 8, 9]], dtype=np.float64).T
    predictions = served.predict(columns.T)
    expected = {
        'marina_http_requests_total{endpoint="v2_infer",status="200"} 1.0',
        'marina_http_requests_total{endpoint="v2_infer",status="400"} 1.0',
        'marina_http_requests_total{endpoint="v1_predict",status="200"} 1.0',
        'marina_http_requests_total{endpoint="unmatched",status="404"} 1.0',
        'marina_http_request_duration_seconds_count{endpoint="v2_infer",status="200"} 1.0',
        'marina_http_request_duration_seconds_bucket{endpoint="v2_infer",le="+Inf",status="200"} 1.0',
        f'marina_model_info{{model="diabetes",n_features="3",sha256="{served.sha256}",'
        f'version="{served.version}"}} 1.0',
        'marina_model_features{model="diabetes"} 3.0',
        'marina_prediction_count{model="diabetes"} 3.0',
        f'marina_prediction_mean{{model="diabetes"}} {float(predictions.mean())!r}',
    }
    for name, column in zip(FEATURES, columns, strict=True):
        labels = f'{{feature="{name}",model="diabetes"}}'
        expected |= {
            f"marina_feature_count{labels} 3.0",
            f"marina_feature_mean{labels} {float(column.mean())!r}",
            f"marina_feature_variance{labels} {float(column.var())!r}",
            f"marina_feature_min{labels} {float(column.min())!r}",
            f"marina_feature_max{labels} {float(column.max())!r}",
        }
    expected |= {
        'marina_feature_training_mean{feature="age",model="diabetes"} 2.0',
        'marina_feature_training_std{feature="bp",model="diabetes"} 3.0',
        'marina_feature_training_max{feature="bp",model="diabetes"} 20.0',
        'marina_feature_mean_shift_stds{feature="age",model="diabetes"} 1.0',  # (4 - 2) / 2
        'marina_feature_mean_shift_stds{feature="bp",model="diabetes"} -0.5',  # (6 - 7.5) / 3
    }
    assert expected <= lines, sorted(expected - lines)
    assert not any(
        line.startswith('marina_feature_mean_shift_stds{feature="bmi",model="diabetes"}') for line in lines
    )


def binary_request(datatype: str, dtype: str, binary_output: bool) -> tuple[bytes, dict[str, str]]:
    """A request in Triton's binary tensor data extension, as tritonclient sends it by default."""
    raw = np.array(ROWS, dtype=dtype).tobytes()
    header: dict[str, Any] = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 3],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }
    if binary_output:
        header["parameters"] = {"binary_data_output": True}
    encoded = json.dumps(header).encode()
    return encoded + raw, {"Inference-Header-Content-Length": str(len(encoded))}


@pytest.mark.parametrize(
    ("datatype", "dtype"), [("FP32", "<f4"), ("FP64", "<f8"), ("INT64", "<i8"), ("UINT8", "u1")]
)
@pytest.mark.parametrize("binary_output", [False, True])
def test_v2_binary_tensor_extension(
    client: Client,
    served: ServedModel,
    artifact: ModelArtifact,
    datatype: str,
    dtype: str,
    binary_output: bool,
) -> None:
    body, headers = binary_request(datatype, dtype, binary_output)
    response = client.post(INFER, content=body, headers=headers)
    expected = artifact.predict(np.array(ROWS, dtype=dtype))
    assert response.status_code == 200
    if not binary_output:
        assert response.json() == v2_response(served, expected.tolist())
        return
    length = int(response.headers["inference-header-content-length"])
    assert json.loads(response.content[:length]) == {
        "model_name": "diabetes",
        "model_version": served.version,
        "outputs": [
            {"name": "predict", "datatype": "FP64", "shape": [2], "parameters": {"binary_data_size": 16}}
        ],
    }
    np.testing.assert_array_equal(np.frombuffer(response.content[length:], dtype="<f8"), expected)


@pytest.mark.parametrize(
    ("cut", "header_length", "error"),
    [
        (0, "9999", "Inference-Header-Content-Length is 9999 but the body has only {size} bytes"),
        (0, "abc", "Inference-Header-Content-Length must be a byte count, got 'abc'"),
        (4, None, "input 'input-0': binary_data_size 24 runs past the end of the body's binary part"),
    ],
)
def test_v2_binary_tensor_errors(client: Client, cut: int, header_length: str | None, error: str) -> None:
    body, headers = binary_request("FP32", "<f4", False)
    body = body[: len(body) - cut]
    headers["Inference-Header-Content-Length"] = header_length or headers["Inference-Header-Content-Length"]
    response = client.post(INFER, content=body, headers=headers)
    assert (response.status_code, response.json()) == (400, {"error": error.format(size=len(body))})


def test_v2_binary_data_without_the_header_is_rejected(client: Client) -> None:
    body, _ = binary_request("FP32", "<f4", False)
    response = client.post(INFER, content=body)
    assert response.status_code == 400  # the JSON part is followed by bytes: not JSON


def test_v2_binary_size_without_the_header_is_rejected(client: Client) -> None:
    tensor = {"name": "input-0", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}
    response = client.post(INFER, json={"inputs": [tensor]})
    assert response.json() == {
        "error": "input 'input-0' has binary_data_size but the request has no "
        "Inference-Header-Content-Length header"
    }


def test_v2_binary_nan_is_rejected(client: Client) -> None:
    body, headers = binary_request("FP32", "<f4", False)
    body = body[:-4] + np.array([np.nan], dtype="<f4").tobytes()
    response = client.post(INFER, content=body, headers=headers)
    assert response.json() == {"error": "input 'input-0' binary data holds NaN or infinite values"}


def test_unexpected_failure_is_500_and_the_server_keeps_serving(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ServedModel, features: np.ndarray) -> np.ndarray:
        raise RuntimeError("bug")

    with monkeypatch.context() as patch:
        patch.setattr(ServedModel, "predict", broken)
        response = client.post(PREDICT, json={"instances": ROWS})
    assert (response.status_code, response.json()) == (500, {"error": "internal server error"})
    assert client.post(PREDICT, json={"instances": ROWS}).status_code == 200


def test_new_request_ids_are_distinct_128_bit_hex_across_reads() -> None:
    ids = [app_module.request_id({"headers": []}) for _ in range(3 * app_module.IDS_PER_READ + 5)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and len(set(ids)) == len(ids)


def test_a_forked_child_never_answers_with_its_parents_ids() -> None:
    app_module.request_id({"headers": []})  # the parent holds ids read ahead
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's side
        os.write(writing, app_module.request_id({"headers": []}).encode())
        os._exit(0)
    os.waitpid(child, 0)
    drawn = os.read(reading, 64).decode()
    os.close(reading)
    os.close(writing)
    parents = [app_module.request_id({"headers": []}) for _ in range(app_module.IDS_PER_READ)]
    assert len(drawn) == 32 and drawn not in parents
