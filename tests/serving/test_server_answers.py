"""What the server answers beside predictions: the extra v2 outputs asked for by name (and nothing new
unless asked), KServe's `:explain`, the guard's verdicts counted and, under `--extrapolation reject`,
refused with 422. Models are trained by `marina train`; a real server answers tritonclient."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from server_helpers import Client, ServerProcess

from bounds import EPS, SAFETY, explanation_tolerance, sum_tolerance
from marina.model import artifact
from marina.model.answers import Answers
from marina.model.artifact import ModelArtifact
from marina.serving.app import ServingApp
from marina.serving.model import ServedModel
from tabular import write_diamonds
from trained import prepare, splits, train

INFER = "/v2/models/m/infer"
PREDICT = "/v1/models/m:predict"
EXPLAIN = "/v1/models/m:explain"
ALL = ["predict", "contribution", "lower", "upper", "extrapolation"]


@pytest.fixture(scope="module")
def rows(diabetes_data: str) -> np.ndarray:
    return splits(diabetes_data).x_test[:5]


@pytest.fixture
def app(diabetes_model: ModelArtifact) -> ServingApp:
    return ServingApp(ServedModel.from_artifact(diabetes_model, "m", "memory"))


def infer_body(rows: np.ndarray, outputs: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}]
    }
    if outputs is not None:
        body["outputs"] = outputs
    return {**body, **extra}


def tensors(response: httpx.Response) -> dict[str, Any]:
    return {output["name"]: output for output in response.json()["outputs"]}


def test_a_request_naming_no_outputs_gets_exactly_the_prediction(
    app: ServingApp, diabetes_model: ModelArtifact, rows: np.ndarray
) -> None:
    client = Client(app)
    expected = {
        "model_name": "m",
        "model_version": app.model.version if app.model else "",
        "outputs": [
            {
                "name": "predict",
                "datatype": "FP64",
                "shape": [5],
                "data": diabetes_model.predict(rows).tolist(),
            }
        ],
    }
    assert client.post(INFER, json=infer_body(rows)).json() == expected
    assert client.post(INFER, json=infer_body(rows, [{"name": "predict"}])).json() == expected


def test_every_output_by_name_in_the_order_asked(
    app: ServingApp, diabetes_model: ModelArtifact, rows: np.ndarray
) -> None:
    asked = [
        {"name": "extrapolation"},
        {"name": "upper"},
        {"name": "contribution"},
        {"name": "lower"},
        {"name": "predict"},
    ]
    response = Client(app).post(INFER, json=infer_body(rows, asked))
    assert response.status_code == 200
    assert [o["name"] for o in response.json()["outputs"]] == [o["name"] for o in asked]
    got = tensors(response)
    answers = Answers(diabetes_model)
    predictions = diabetes_model.predict(rows)
    assert got["predict"]["data"] == predictions.tolist()
    assert got["contribution"]["shape"] == [5, 10] and got["contribution"]["datatype"] == "FP64"
    contributions = np.array(got["contribution"]["data"]).reshape(5, 10)
    np.testing.assert_array_equal(contributions, answers.contributions(rows))
    assert answers.base is not None and answers.means is not None
    bound = explanation_tolerance(
        np.array(diabetes_model.coefficients), diabetes_model.intercept, rows, answers.means
    )
    assert np.all(np.abs(answers.base + contributions.sum(axis=1) - predictions) <= bound)
    width = answers.half_widths(rows, 0.95)
    np.testing.assert_array_equal(got["lower"]["data"], (predictions - width).tolist())
    np.testing.assert_array_equal(got["upper"]["data"], (predictions + width).tolist())
    assert got["extrapolation"] == {
        "name": "extrapolation",
        "datatype": "BYTES",
        "shape": [5],
        "data": ["inside"] * 5,
    }


def test_the_level_comes_from_the_output_or_the_request(
    app: ServingApp, diabetes_model: ModelArtifact, rows: np.ndarray
) -> None:
    client = Client(app)
    asked = [{"name": "lower", "parameters": {"level": 0.5}}, {"name": "upper"}]
    got = tensors(client.post(INFER, json=infer_body(rows, asked, parameters={"level": 0.8})))
    answers, predictions = Answers(diabetes_model), diabetes_model.predict(rows)
    np.testing.assert_array_equal(
        got["lower"]["data"], (predictions - answers.half_widths(rows, 0.5)).tolist()
    )
    np.testing.assert_array_equal(
        got["upper"]["data"], (predictions + answers.half_widths(rows, 0.8)).tolist()
    )


@pytest.mark.parametrize(
    ("outputs", "parameters", "error"),
    [
        (
            [{"name": "lower", "parameters": {"level": 95}}],
            {},
            "parameter 'level' of output 'lower' must be a number in (0, 1), like 0.9 or 0.95, got 95",
        ),
        (
            [{"name": "upper"}],
            {"level": True},
            "parameter 'level' must be a number in (0, 1), like 0.9 or 0.95, got true",
        ),
        ([{"name": "lower"}, {"name": "lower"}], {}, "output 'lower' is asked for more than once"),
        (
            [{"name": "shap"}],
            {},
            "unknown output 'shap'; this model's outputs are " + ", ".join(ALL),
        ),
    ],
)
def test_bad_output_requests_are_400_naming_the_field(
    app: ServingApp, rows: np.ndarray, outputs: list[dict[str, Any]], parameters: dict[str, Any], error: str
) -> None:
    response = Client(app).post(INFER, json=infer_body(rows, outputs, parameters=parameters))
    assert (response.status_code, response.json()) == (400, {"error": error})


def test_binary_outputs_follow_the_json_in_the_order_asked(
    app: ServingApp, diabetes_model: ModelArtifact, rows: np.ndarray
) -> None:
    asked = [
        {"name": "contribution", "parameters": {"binary_data": True}},
        {"name": "extrapolation", "parameters": {"binary_data": True}},
        {"name": "predict"},
    ]
    response = Client(app).post(INFER, json=infer_body(rows, asked))
    length = int(response.headers["inference-header-content-length"])
    header, blob = json.loads(response.content[:length]), response.content[length:]
    contribution_size = header["outputs"][0]["parameters"]["binary_data_size"]
    assert contribution_size == 5 * 10 * 8
    contributions = np.frombuffer(blob[:contribution_size], dtype="<f8").reshape(5, 10)
    np.testing.assert_array_equal(contributions, Answers(diabetes_model).contributions(rows))
    strings, position = [], contribution_size
    while position < len(blob):
        (size,) = struct.unpack_from("<I", blob, position)
        strings.append(blob[position + 4 : position + 4 + size].decode())
        position += 4 + size
    assert strings == ["inside"] * 5
    assert header["outputs"][2]["data"] == diabetes_model.predict(rows).tolist()


def test_a_model_from_before_answers_says_which_outputs_need_a_retrain(
    diabetes_model_v1: ModelArtifact, rows: np.ndarray
) -> None:
    client = Client(ServingApp(ServedModel.from_artifact(diabetes_model_v1, "m", "memory")))
    response = client.post(INFER, json=infer_body(rows, [{"name": "lower"}]))
    assert response.status_code == 400
    assert response.json()["error"] == (
        "output 'lower' is not available: the model was trained before Marina recorded what intervals need "
        "(artifact format v1); retrain the model"
    )
    assert client.post(INFER, json=infer_body(rows)).status_code == 200  # it keeps serving predictions


def test_explain_answers_each_row_with_a_base_and_contributions_that_add_up(
    app: ServingApp, diabetes_model: ModelArtifact, rows: np.ndarray, diabetes_data: str
) -> None:
    instances = [dict(zip(diabetes_model.feature_names, row, strict=True)) for row in rows.tolist()]
    response = Client(app).post(EXPLAIN, json={"instances": instances, "parameters": {"level": 0.9}})
    assert response.status_code == 200
    document = response.json()
    answers = Answers(diabetes_model)
    assert document["base"] == answers.base and document["inputs"] == diabetes_model.feature_names
    assert document["intervals"] == {"method": "student-t", "level": 0.9}
    x_train = splits(diabetes_data).x_train
    means, coef = x_train.mean(axis=0), np.array(diabetes_model.coefficients)
    predictions, width = diabetes_model.predict(rows), answers.half_widths(rows, 0.9)
    for row, explanation in enumerate(document["explanations"]):
        assert explanation["prediction"] == predictions[row]
        assert list(explanation["contributions"]) == diabetes_model.feature_names
        shares = np.array(list(explanation["contributions"].values()))
        # numpy's means and training's differ by their summation rounding; each product rounds twice
        moved = np.abs(coef) * sum_tolerance(len(x_train)) * np.abs(x_train).mean(axis=0)
        bound = moved + 4 * SAFETY * EPS * np.abs(coef) * (np.abs(rows[row]) + np.abs(means))
        assert np.all(np.abs(shares - coef * (rows[row] - means)) <= bound)
        assert explanation["interval"] == {
            "lower": predictions[row] - width[row],
            "upper": predictions[row] + width[row],
            "level": 0.9,
        }
        assert explanation["extrapolation"] == {"inside": True, "reasons": []}


def test_explain_with_category_inputs_gives_one_contribution_per_raw_input(tmp_path: Path) -> None:
    write_diamonds(tmp_path / "diamonds.csv")
    data = prepare(
        str(tmp_path / "diamonds.csv"), tmp_path / "d", "--target", "price", "--features", "carat,cut,color"
    )
    model = train(data, tmp_path / "m")
    client = Client(ServingApp(ServedModel.from_artifact(model, "m", "memory")))
    instances = [{"carat": 1.2, "cut": "Ideal", "color": "E"}, {"carat": 0.5, "cut": "Fair", "color": "Z"}]
    document = client.post(EXPLAIN, json={"instances": instances}).json()
    assert document["inputs"] == ["carat", "cut", "color"]
    encoded, _ = Answers(model).inputs.encode(
        [[r["carat"] for r in instances], [r["cut"] for r in instances], [r["color"] for r in instances]]
    )
    expected = Answers(model).contributions(encoded)
    for row, explanation in enumerate(document["explanations"]):
        assert list(explanation["contributions"].values()) == expected[row].tolist()
    assert document["explanations"][0]["extrapolation"] == {"inside": True, "reasons": []}
    assert "category:color" in document["explanations"][1]["extrapolation"]["reasons"]  # Z was never seen


def far_rows(diabetes_model: ModelArtifact, rows: np.ndarray) -> np.ndarray:
    """The test rows, the second with bmi ten training standard deviations above its mean."""
    statistics = diabetes_model.feature_statistics["bmi"]
    moved = rows.copy()
    moved[1, diabetes_model.feature_names.index("bmi")] = statistics["mean"] + 10 * statistics["std"]
    return moved


def outside_counters(client: Client) -> dict[str, float]:
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("marina_extrapolation_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_reject_answers_422_naming_the_row_and_why_and_counts_it(
    diabetes_model: ModelArtifact, rows: np.ndarray
) -> None:
    client = Client(
        ServingApp(ServedModel.from_artifact(diabetes_model, "m", "memory"), extrapolation="reject")
    )
    moved = far_rows(diabetes_model, rows)
    for path, body in (
        (INFER, infer_body(moved)),
        (PREDICT, {"instances": moved.tolist()}),
        (EXPLAIN, {"instances": moved.tolist()}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 422, path
        error = response.json()["error"]
        assert error.startswith("row 1 is outside the training data: input 'bmi' is ")
        assert error.endswith(
            "1 of 5 rows are outside and this server rejects extrapolation (--extrapolation reject)"
        )
    counters = outside_counters(client)
    assert counters['marina_extrapolation_rows_total{model="m",reason="range"}'] == 3
    assert counters['marina_extrapolation_input_rows_total{input="bmi",model="m",reason="range"}'] == 3
    assert client.post(INFER, json=infer_body(rows)).status_code == 200  # rows inside are answered
    assert client.get("/v2/models/m/traffic").json()["predictions"]["count"] == 5  # refused ones never count


def test_allow_answers_and_counts_rows_outside(
    app: ServingApp, diabetes_model: ModelArtifact, rows: np.ndarray
) -> None:
    client = Client(app)
    got = tensors(
        client.post(INFER, json=infer_body(far_rows(diabetes_model, rows), [{"name": "extrapolation"}]))
    )
    assert got["extrapolation"]["data"][0] == "inside"
    assert "range:bmi" in got["extrapolation"]["data"][1].split(";")
    before = outside_counters(client)['marina_extrapolation_rows_total{model="m",reason="range"}']
    assert (
        client.post(PREDICT, json={"instances": far_rows(diabetes_model, rows).tolist()}).status_code == 200
    )
    after = outside_counters(client)['marina_extrapolation_rows_total{model="m",reason="range"}']
    assert after == before + 1


@pytest.fixture(scope="module")
def server(
    diabetes_model: ModelArtifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    uri, digest = artifact.save(diabetes_model, str(tmp_path_factory.mktemp("served")))
    process = ServerProcess(uri, digest)
    process.wait_for_line("Uvicorn running on")
    yield process
    process.stop()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_receives_the_outputs_it_names(
    server: ServerProcess, diabetes_model: ModelArtifact, rows: np.ndarray, binary: bool
) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    metadata = client.get_model_metadata("dm")
    assert [o["name"] for o in metadata["outputs"]] == ALL
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    asked = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("contribution", "lower", "extrapolation")
    ]
    result = client.infer("dm", [tensor], outputs=asked)
    answers = Answers(diabetes_model)
    np.testing.assert_array_equal(result.as_numpy("contribution"), answers.contributions(rows))
    np.testing.assert_array_equal(
        result.as_numpy("lower"), diabetes_model.predict(rows) - answers.half_widths(rows, 0.95)
    )
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("extrapolation")] == [
        "inside"
    ] * 5
    assert result.as_numpy("predict") is None  # not asked for, not sent
    plain = client.infer("dm", [tensor])  # and a client naming nothing gets the prediction alone
    assert [o["name"] for o in plain.get_response()["outputs"]] == ["predict"]
    np.testing.assert_array_equal(plain.as_numpy("predict"), diabetes_model.predict(rows))
