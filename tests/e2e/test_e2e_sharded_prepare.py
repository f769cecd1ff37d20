"""A Dataset prepared by two pods on the real cluster (issue 20): an Indexed Job whose pods each read a
share of the source, one large CSV cut at record boundaries or a Parquet prefix, then the reduce. Its
version, statistics and split are those of the same source prepared by one pod, exact median fills
included, and both shards read rows."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marina import storage

# Runs alone (serial): two sources of 35-60 MB through MinIO and five preparation pods.
pytestmark = pytest.mark.serial

#: 10 features and the target: parts of 95,320 source rows, so 400,000 rows give both shards whole parts.
ROWS, FEATURES = 400_000, 10
LIMITS = {"limits": {"memory": "512Mi"}, "requests": {"memory": "256Mi", "cpu": "100m"}}
#: What must be equal whatever the pods (status fields; the rest, jobName, shards, times, may differ).
SAME = ("version", "sha256", "uri", "rows", "trainRows", "testRows", "columns", "statistics")


def table() -> tuple[list[str], np.ndarray]:
    """Numbers with 4 decimals (a short CSV) and about 1 % of the feature cells missing."""
    rng = np.random.default_rng(20)
    x = rng.standard_normal((ROWS, FEATURES)).round(4)
    y = (x @ np.linspace(-1.0, 1.0, FEATURES) + 0.1 * rng.standard_normal(ROWS)).round(4)
    x[rng.random(x.shape) < 0.01] = np.nan
    return [*(f"x{j}" for j in range(FEATURES)), "y"], np.column_stack([x, y])


def write_csv(uri: str, names: list[str], values: np.ndarray) -> None:
    out = io.StringIO()
    out.write(",".join(names) + "\n")
    np.savetxt(out, values, delimiter=",", fmt="%.4f")
    storage.write_bytes(uri, out.getvalue().replace("nan", "").encode(), "text/csv")


def write_parquet(folder: str, names: list[str], values: np.ndarray) -> None:
    for index, block in enumerate(np.array_split(values, 3)):
        buffer = io.BytesIO()
        pq.write_table(pa.table({n: block[:, j] for j, n in enumerate(names)}), buffer, row_group_size=50_000)
        uri = storage.join(folder, f"part-{index}.parquet")
        storage.write_bytes(uri, buffer.getvalue(), "application/vnd.apache.parquet")


def resource(name: str, source: dict[str, Any], parallelism: int) -> dict[str, Any]:
    spec = {
        "source": source,
        "target": "y",
        "cleaning": {"missing": "median"},
        "parallelism": parallelism,
        "resources": LIMITS,
    }
    return {"apiVersion": "marina.dev/v1alpha1", "kind": "Dataset", "metadata": {"name": name}, "spec": spec}


def shard_rows(marina: Any, name: str) -> list[int]:
    """The source rows each shard read, from the typed results its pod left in its termination message."""
    selector = f"marina.dev/dataset={name},app.kubernetes.io/component=shard"
    pods = json.loads(marina.kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]
    results = [
        json.loads(status["state"]["terminated"]["message"])
        for pod in pods
        for status in pod["status"]["containerStatuses"]
        if pod["status"]["phase"] == "Succeeded"
    ]
    return [result["rowsIn"] for result in sorted(results, key=lambda r: int(r["shard"]))]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_two_pods_prepare_the_dataset_one_pod_prepares(marina: Any, storage_env: None, kind: str) -> None:
    names, values = table()
    if kind == "csv":
        uri = f"s3://marina/raw/{marina.namespace}/sharded.csv"
        write_csv(uri, names, values)
    else:
        uri = f"s3://marina/raw/{marina.namespace}/sharded/"
        write_parquet(uri, names, values)
    source = {kind: {"uri": uri}}
    marina.apply(resource(f"one-{kind}", source, 1), resource(f"two-{kind}", source, 2))
    one = marina.wait_ready("dataset", f"one-{kind}", timeout=900)
    two = marina.wait_ready("dataset", f"two-{kind}", timeout=900)
    assert one["rows"] == ROWS and (one["shards"], two["shards"]) == (1, 2)
    assert {key: two[key] for key in SAME if key != "uri"} == {key: one[key] for key in SAME if key != "uri"}
    assert one["uri"].rsplit("/", 1)[1] == two["uri"].rsplit("/", 1)[1] == one["version"]
    read = shard_rows(marina, f"two-{kind}")
    assert len(read) == 2 and sum(read) == ROWS and min(read) > 0, read  # both pods read a share
    # the shards' partial results went once the reduce's result was the status; the data parts stay
    prefix = two["uri"].rsplit("/", 1)[0]
    marina.wait_for(
        "the shards' partial results deleted",
        lambda: storage.list_objects(f"{prefix}/partials") == [],
        timeout=60,
    )
    assert storage.list_objects(f"{prefix}/parts")
    marina.events_with(f"two-{kind}", "PreparingShards", "Prepared")  # an event for each step
