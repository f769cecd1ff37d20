"""Text columns on the real cluster (issue 8): a diamonds-like CSV in MinIO with two selected text columns
(`cut`, `color`) and one unselected (`clarity`) prepares, trains with its categories one-hot encoded, and
serves raw values.

The TrainingJob's test R² equals scikit-learn's `OneHotEncoder` + `LinearRegression` on the very split the
Job trained on (read back from MinIO, category codes mapped through the dataset's dictionaries), and the
model Service answers a KServe v1 request of objects with strings and an Open Inference v2 request with
one tensor per input (BYTES for the categories) with scikit-learn's prediction. An unseen category answers
200, encodes as all zeros and counts in `marina_unseen_category_values_total`."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from marina import storage
from marina.data import dataset
from marina.model import artifact
from tabular import COLORS, CUTS, write_diamonds

NAME = "diamonds"
FEATURES = ["carat", "cut", "color"]
ROWS = 3_000
# Both sides are least-squares fits of the same rows: their predictions at rows like the training rows
# differ by rounding only (κ·ε with κ of the one-hot design far below 1e6), so 1e-6 relative is loose.
RELATIVE = 1e-6


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "marina.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def post(url: str, body: dict[str, Any], timeout: float = 10) -> tuple[int, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def v1(url: str, instances: list[dict[str, Any]]) -> tuple[int, Any]:
    return post(f"{url}/v1/models/{NAME}:predict", {"instances": instances})


def v2(url: str, instances: list[dict[str, Any]]) -> tuple[int, Any]:
    tensors = [
        {
            "name": name,
            "shape": [len(instances)],
            "datatype": "FP64" if name == "carat" else "BYTES",
            "data": [instance[name] for instance in instances],
        }
        for name in FEATURES
    ]
    return post(f"{url}/v2/models/{NAME}/infer", {"inputs": tensors})


def unseen_counts(url: str) -> dict[str, float]:
    """marina_unseen_category_values_total per input, from the server's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = r"^marina_unseen_category_values_total\{([^}]*)\} (\S+)$"
    counts = {}
    for match in re.finditer(pattern, text, re.MULTILINE):
        names = re.findall(r'input="([^"]*)"', match.group(1))
        counts[names[0]] = float(match.group(2))
    return counts


def close(a: float, b: float) -> bool:
    return abs(a - b) <= RELATIVE * max(1.0, abs(b))


def stored_split(uri: str, split: str) -> tuple[list[list[object]], np.ndarray]:
    """A split as the Job stored it: its Parquet parts (format 3) hold each category cell as its text."""
    stored = dataset.open_stored(uri)
    assert stored.features == tuple(FEATURES), stored.features
    tables = [
        pq.read_table(pa.BufferReader(storage.read_bytes(storage.join(stored.parts_folder, record["name"]))))
        for record in stored.part_records(split)
    ]
    table = pa.concat_tables(tables)
    rows = [list(row) for row in zip(*(table.column(name).to_pylist() for name in FEATURES), strict=True)]
    return rows, table.column("price").to_numpy()


@pytest.fixture(scope="module")
def served(marina: Any, minio: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The diamonds CSV uploaded; its Dataset, an OLS TrainingJob and a one-replica ModelDeployment Ready
    (one replica, so /metrics through the Service is the pod that answered)."""
    path = tmp_path_factory.mktemp("diamonds") / "diamonds.csv"
    write_diamonds(path, rows=ROWS)
    uri = f"s3://marina/raw/{marina.namespace}/diamonds.csv"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in minio.environment().items():
            patch.setenv(key, value)
        storage.write_bytes(uri, path.read_bytes(), "text/csv")
    marina.apply(
        resource("Dataset", NAME, {"source": {"csv": {"uri": uri}}, "target": "price", "features": FEATURES}),
        resource("TrainingJob", NAME, {"dataset": {"name": NAME}, "model": {"penalty": "none"}}),
        resource("ModelDeployment", NAME, {"model": {"trainingJob": NAME}, "replicas": 1}),
    )
    started, times = time.monotonic(), []
    for kind in ("dataset", "trainingjob", "modeldeployment"):
        marina.wait_ready(kind, NAME, timeout=300)
        times.append(f"{kind} Ready {time.monotonic() - started:.1f} s")
    print(f"\n{ROWS} diamonds rows after apply: " + ", ".join(times))
    return marina


@pytest.fixture(scope="module")
def scikit_learn(served: Any, minio: Any) -> Pipeline:
    """OneHotEncoder + LinearRegression fitted on the Job's train split, checked on its test split."""
    uri = served.status("dataset", NAME)["uri"]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in minio.environment().items():
            patch.setenv(key, value)
        (x_train, y_train), (x_test, y_test) = stored_split(uri, "train"), stored_split(uri, "test")
    assert len(x_train) + len(x_test) == ROWS
    encoder = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), [1, 2])], remainder="passthrough"
    )
    pipeline = make_pipeline(encoder, LinearRegression()).fit(x_train, y_train)
    pipeline.test_r2 = r2_score(y_test, pipeline.predict(x_test))  # type: ignore[attr-defined]
    return pipeline


def test_categories_train_as_scikit_learn_one_hot_encodes(served: Any, scikit_learn: Pipeline) -> None:
    prepared = served.status("dataset", NAME)
    assert prepared["rows"] == ROWS
    trained = served.status("trainingjob", NAME)
    assert trained["datasetVersion"] == prepared["version"]
    expected = scikit_learn.test_r2  # type: ignore[attr-defined]
    print(f"test R2: TrainingJob {trained['metrics']['r2']!r}, scikit-learn {expected!r}")
    assert abs(trained["metrics"]["r2"] - expected) <= 1e-6, (trained["metrics"]["r2"], expected)
    assert expected > 0.9  # the categories' effects are learnt, not only carat's


INSTANCES = [
    {"carat": 0.5, "cut": "Ideal", "color": "E"},
    {"carat": 1.7, "cut": "Fair", "color": "J"},
    {"carat": 1.01, "cut": "Very Good", "color": "G"},
]


def test_v1_instances_with_strings_answer_as_scikit_learn(served: Any, scikit_learn: Pipeline) -> None:
    url = served.service_url(NAME)
    answers: list[tuple[int, Any]] = []
    served.wait_for(  # the Service's rules reach this host a moment after Ready
        "the Service to answer",
        lambda: _try(answers, lambda: v1(url, INSTANCES)),
        timeout=30,
    )
    status, body = answers[-1]
    assert status == 200, body
    expected = scikit_learn.predict([[i[f] for f in FEATURES] for i in INSTANCES])
    assert len(body["predictions"]) == len(INSTANCES)
    for got, want in zip(body["predictions"], expected, strict=True):
        assert close(got, want), (got, want)


def test_v2_bytes_tensors_answer_as_scikit_learn(served: Any, scikit_learn: Pipeline) -> None:
    url = served.service_url(NAME)
    status, body = v2(url, INSTANCES)
    assert status == 200, body
    (output,) = body["outputs"]
    assert output["shape"][0] == len(INSTANCES)
    expected = scikit_learn.predict([[i[f] for f in FEATURES] for i in INSTANCES])
    for got, want in zip(output["data"], expected, strict=True):
        assert close(got, want), (got, want)
    with urllib.request.urlopen(f"{url}/v2/models/{NAME}", timeout=10) as response:
        metadata = json.load(response)
    datatypes = {item["name"]: item["datatype"] for item in metadata["inputs"]}
    assert datatypes == {"carat": "FP64", "cut": "BYTES", "color": "BYTES"}, metadata["inputs"]


def test_an_unseen_category_encodes_as_zeros_and_is_counted(served: Any, storage_env: None) -> None:
    url = served.service_url(NAME)
    before = unseen_counts(url)
    assert set(before) == {"cut", "color"}, before
    unseen = {"carat": 0.8, "cut": "Astonishing", "color": "E"}
    status, body = v1(url, [unseen])
    assert status == 200, body
    status, answer = v2(url, [unseen])
    assert status == 200, answer

    # All zeros for `cut`: the model's own intercept, carat and color terms, nothing of any cut.
    training = served.status("trainingjob", NAME)["model"]
    model = artifact.load(training["uri"], training["sha256"])
    coefficients = dict(zip(model.feature_names, model.coefficients, strict=True))
    assert [n.split("=", 1)[1] for n in coefficients if n.startswith("cut=")] == sorted(CUTS)
    assert [n.split("=", 1)[1] for n in coefficients if n.startswith("color=")] == sorted(COLORS)
    expected = model.intercept + 0.8 * coefficients["carat"] + coefficients["color=E"]
    assert close(body["predictions"][0], expected), (body["predictions"][0], expected)
    assert close(answer["outputs"][0]["data"][0], expected), (answer, expected)

    after = unseen_counts(url)
    assert after == {"cut": before["cut"] + 2, "color": before["color"]}, (before, after)


def _try(answers: list[tuple[int, Any]], call: Any) -> bool:
    try:
        answers.append(call())
    except (urllib.error.URLError, OSError):
        return False
    return True
