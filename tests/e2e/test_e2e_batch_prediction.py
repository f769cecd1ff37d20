"""BatchPrediction on the cluster: a folder of Parquet files scored in one pod and in two (an Indexed Job of
shards and a last Job writing the manifest) gives the same manifest, whose rows are the model's own
predictions with their intervals and the guard's verdicts, and the passthrough ids in the source's order;
applying the same spec again scores nothing; a column the source lacks fails the run naming it."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bounds import EPS, SAFETY
from marina import storage
from marina.model import artifact
from marina.model.answers import Answers

FEATURES = ("x1", "x2", "x3", "x4")
PART_ROWS = (30_000, 20_000, 25_000, 15_000)  # four files: two units of work per shard
TRUTH = np.array([2.0, -1.0, 0.5, 3.0])


def parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def write_folder(folder: str, seed: int) -> pa.Table:
    """Four Parquet files of ids, features and target in `folder`; returns their rows in order."""
    rng = np.random.default_rng(seed)
    tables, first = [], 0
    for index, rows in enumerate(PART_ROWS):
        x = rng.standard_normal((rows, len(FEATURES)))
        columns: dict[str, Any] = {"id": [f"row-{first + i}" for i in range(rows)]}
        columns |= {name: x[:, j] for j, name in enumerate(FEATURES)}
        columns["y"] = x @ TRUTH + 1.0 + 0.5 * rng.standard_normal(rows)
        table = pa.table(columns)
        storage.write_bytes(storage.join(folder, f"part-{index}.parquet"), parquet(table))
        tables.append(table)
        first += rows
    return pa.concat_tables(tables)


def trained(marina: Any, name: str, folder: str) -> dict[str, Any]:
    """A Dataset and a TrainingJob named `name` of the Parquet folder; the TrainingJob's status once Ready."""
    marina.apply(
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": name},
            "spec": {"source": {"parquet": {"uri": folder}}, "target": "y", "features": list(FEATURES)},
        },
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": {"dataset": {"name": name}, "model": {"solver": "qr"}},
        },
    )
    return dict(marina.wait_ready("trainingjob", name, timeout=300))


def batch_prediction(name: str, model: str, folder: str, parallelism: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "BatchPrediction",
        "metadata": {"name": name},
        "spec": {
            "model": {"trainingJob": model},
            "source": {"parquet": {"uri": folder}},
            "outputs": ["predict", "lower", "upper", "extrapolation"],
            "level": 0.9,
            "passthrough": ["id"],
            "parallelism": parallelism,
            **spec,
        },
    }


def read_manifest(uri: str) -> tuple[dict[str, Any], pa.Table]:
    manifest = json.loads(storage.read_bytes(uri))
    folder = storage.join(uri.rsplit("/", 1)[0], manifest["partsFolder"])
    parts = [
        pq.read_table(io.BytesIO(storage.read_bytes(storage.join(folder, part["name"]))))
        for part in manifest["parts"]
    ]
    return manifest, pa.concat_tables(parts)


def test_one_pod_and_two_shards_write_the_same_manifest_of_the_models_answers(
    marina: Any, storage_env: None
) -> None:
    folder = f"s3://marina/raw/{marina.namespace}/scores/"
    source = write_folder(folder, seed=23)
    training = trained(marina, "scores", folder)
    marina.apply(batch_prediction("one", "scores", folder, 1), batch_prediction("two", "scores", folder, 2))
    one = marina.wait_ready("batchprediction", "one", timeout=300)
    two = marina.wait_ready("batchprediction", "two", timeout=300)

    rows = sum(PART_ROWS)
    assert one["rows"] == two["rows"] == rows
    assert one["model"]["sha256"] == two["model"]["sha256"] == training["model"]["sha256"]
    # How the work was shared does not change what was written: the same parts, the same manifest.
    assert one["manifest"]["sha256"] == two["manifest"]["sha256"]
    manifest, table = read_manifest(two["manifest"]["uri"])
    assert manifest["sha256"] == two["manifest"]["sha256"] and manifest["rows"] == rows
    assert table.column("id").to_pylist() == source.column("id").to_pylist()

    model = artifact.load(training["model"]["uri"], training["model"]["sha256"])
    x = np.column_stack([source.column(name).to_numpy() for name in FEATURES])
    expected = model.predict(x)
    # The pod scored the same rows with the same code; only the BLAS summation order of x·β (the chunking)
    # may differ: each prediction is a sum of p + 1 terms, so it is within (p + 1)·eps of its terms' size.
    coefficients = np.asarray(model.coefficients)
    size = np.abs(x) @ np.abs(coefficients) + abs(model.intercept)
    bound = SAFETY * (len(FEATURES) + 1) * EPS * size
    predicted = table.column("predict").to_numpy()
    assert np.all(np.abs(predicted - expected) <= bound)
    width = Answers(model).half_widths(x, 0.9)
    assert np.all(np.abs(table.column("lower").to_numpy() - (expected - width)) <= bound + EPS * width)
    assert np.all(np.abs(table.column("upper").to_numpy() - (expected + width)) <= bound + EPS * width)
    # The guard's false-alarm rate on rows like the training rows is a few per thousand (guard_bench.py).
    inside = table.column("extrapolation").to_pylist().count("inside")
    assert inside >= 0.98 * rows
    assert one.get("extrapolated", 0) == two.get("extrapolated", 0) >= rows - inside  # per reason

    # The same spec again is the same run: nothing is scored or written anew.
    runs_before = one["uri"]
    marina.apply(batch_prediction("one", "scores", folder, 1))
    assert marina.status("batchprediction", "one")["uri"] == runs_before


def test_a_passthrough_column_the_source_lacks_fails_the_run_naming_it(
    marina: Any, storage_env: None
) -> None:
    folder = f"s3://marina/raw/{marina.namespace}/lacking/"
    write_folder(folder, seed=29)
    trained(marina, "lacking", folder)
    marina.apply(batch_prediction("lacking", "lacking", folder, 1, passthrough=["customer"]))

    def stalled() -> dict[str, Any] | None:
        condition = marina.condition("batchprediction", "lacking", "Stalled")
        return dict(condition) if condition.get("status") == "True" else None

    condition = marina.wait_for("BatchPrediction lacking to stall", stalled, timeout=300)
    assert "customer" in condition["message"]
    # The operator posts the event just after the status patch: a poll may see the condition first.
    marina.wait_for(
        "an event naming the missing column",
        lambda: [e for e in marina.events("lacking") if "customer" in e.get("message", "")],
        timeout=60,
    )
