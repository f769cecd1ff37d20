"""New data flows through: a CSV replaced in MinIO and a refresh of its Dataset give a new version,
and the TrainingJob that follows the Dataset trains again on it."""

from __future__ import annotations

from typing import Any

from marina import storage


def csv_of(rows: int, slope: float) -> bytes:
    lines = ["x1,x2,y"] + [f"{i},{i % 7},{slope * i + 2 * (i % 7) + 1}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_new_data_makes_a_new_version_and_retrains(marina: Any, storage_env: None) -> None:
    uri = f"s3://marina/raw/{marina.namespace}/lines.csv"
    storage.write_bytes(uri, csv_of(60, 3.0), "text/csv")
    marina.apply(
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "lines"},
            "spec": {"source": {"csv": {"uri": uri}}, "target": "y"},
        },
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "lines"},
            "spec": {"dataset": {"name": "lines"}},
        },
    )
    first = marina.wait_ready("dataset", "lines", timeout=180)["version"]
    trained = marina.wait_ready("trainingjob", "lines", timeout=180)
    assert trained["datasetVersion"] == first and trained["metrics"]["r2"] > 0.999

    storage.write_bytes(uri, csv_of(80, 5.0), "text/csv")
    marina.kubectl("annotate", "dataset", "lines", "marina.dev/refresh=2", "--overwrite")
    second = marina.wait_for(
        "a new Dataset version",
        lambda: (version := marina.status("dataset", "lines").get("version")) != first and version,
        timeout=180,
    )
    retrained = marina.wait_for(
        "training on the new version",
        lambda: (
            (status := marina.status("trainingjob", "lines")).get("datasetVersion") == second
            and status.get("phase") == "Succeeded"
            and status
        ),
        timeout=240,
    )
    assert retrained["model"]["sha256"] != trained["model"]["sha256"]
    assert marina.status("dataset", "lines")["rows"] == 80
    assert storage.exists(f"{trained['model']['uri']}")  # the earlier model stays stored
