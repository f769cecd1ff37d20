"""Bad input on the real cluster: rejected by the API server where the schema can say it, otherwise a
clear condition and event; waits that recover by themselves once the missing piece appears."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marina import storage


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "marina.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (resource("Dataset", "two", {"source": {"builtin": "diabetes", "synthetic": {}}}), "exactly one of"),
        (
            resource("Dataset", "frac", {"source": {"builtin": "diabetes"}, "split": {"testFraction": 1.5}}),
            "testFraction",
        ),
        (resource("Dataset", "boston", {"source": {"builtin": "boston"}}), "Unsupported value"),
        (resource("Dataset", "Bad_Name", {"source": {"builtin": "diabetes"}}), "metadata.name"),
        (resource("TrainingJob", "ratio", {"dataset": {"name": "d"}, "model": {"l1Ratio": 2}}), "l1Ratio"),
        (
            resource("TrainingJob", "search", {"dataset": {"name": "d"}, "search": {"alphas": [1]}}),
            "search needs",
        ),
        (
            resource(
                "ModelDeployment",
                "both",
                {"model": {"trainingJob": "t", "uri": "s3://marina/m.json", "sha256": "a" * 64}},
            ),
            "exactly one of model",
        ),
        (
            resource(
                "ModelDeployment",
                "scale",
                {"model": {"trainingJob": "t"}, "autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
            ),
            "minReplicas",
        ),
    ],
    ids=[
        "two-sources",
        "test-fraction",
        "unknown-builtin",
        "name",
        "l1-ratio",
        "search-without-penalty",
        "two-models",
        "autoscaling-bounds",
    ],
)
def test_api_server_rejects_what_the_schema_can_say(
    marina: Any, document: dict[str, Any], message: str
) -> None:
    result = marina.try_kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(document))
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_spec_the_schema_accepts_but_marina_cannot_use_fails_clearly(marina: Any) -> None:
    marina.apply(
        resource(
            "Dataset", "target-feature", {"source": {"builtin": "diabetes"}, "features": ["bmi", "target"]}
        )
    )
    ready = marina.wait_reason("dataset", "target-feature", "InvalidSpec", timeout=60)
    assert ready["status"] == "False" and "spec.features" in ready["message"]
    assert marina.condition("dataset", "target-feature", "Stalled")["status"] == "True"
    events = marina.wait_for(
        "a Warning event",
        lambda: [e for e in marina.events("target-feature") if e["type"] == "Warning"],
        timeout=30,
    )
    assert "spec.features" in events[0]["message"]


def test_missing_dataset_recovers_once_created(marina: Any) -> None:
    marina.apply(resource("TrainingJob", "late", {"dataset": {"name": "late-data"}}))
    waiting = marina.wait_reason("trainingjob", "late", "DatasetNotFound", timeout=60)
    assert "late-data" in waiting["message"]
    marina.apply(resource("Dataset", "late-data", {"source": {"synthetic": {"rows": 200, "features": 3}}}))
    status = marina.wait_ready("trainingjob", "late", timeout=300)
    assert status["metrics"]["r2"] > 0.9


@pytest.mark.parametrize("cell", ["Paris", "unreachable"])
def test_csv_with_a_text_column_names_the_column_and_fails_once(
    marina: Any, storage_env: None, cell: str
) -> None:
    """A bad cell is the data's fault whatever it reads: the Job fails by its exit code (podFailurePolicy),
    the Dataset is Stalled, and no new Job is made. A cell reading `unreachable` once made the operator
    retry forever, when retrying was decided by searching the message for words."""
    name = f"floors-{cell.lower()}"
    uri = f"s3://marina/raw/{marina.namespace}/{name}.csv"
    # Mostly numbers, so a numeric column (a mostly-text column would be a category): the text cell is bad.
    storage.write_bytes(
        uri, f"rooms,floors,price\n3,{cell},100\n4,2,120\n2,1,90\n5,3,150\n".encode(), "text/csv"
    )
    marina.apply(resource("Dataset", name, {"source": {"csv": {"uri": uri}}, "target": "price"}))
    ready = marina.wait_reason("dataset", name, "PrepareFailed", timeout=180)
    assert "column 'floors' row 1" in ready["message"] and f"'{cell}' is not a number" in ready["message"]
    assert marina.condition("dataset", name, "Stalled")["status"] == "True"
    assert marina.condition("dataset", name, "Reconciling")["status"] == "False"
    marina.wait_for(
        "a warning naming the column",
        lambda: [e for e in marina.events(name) if e["type"] == "Warning" and "floors" in e["message"]],
        timeout=60,
    )
    jobs = json.loads(marina.kubectl("get", "jobs", "-l", f"marina.dev/dataset={name}", "-o", "json"))[
        "items"
    ]
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    failed = [c for c in jobs[0]["status"].get("conditions", []) if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "PodFailurePolicy", jobs[0]["status"]
