"""spec.retention on the real cluster: a Dataset keeping its last version deletes the older version
folders from MinIO once a new one is Ready, except one a TrainingJob's status still names."""

from __future__ import annotations

import json
import re
from typing import Any

from marina import storage

VERSION = re.compile(r"[0-9a-f]{16}")


def csv_of(rows: int, slope: float) -> bytes:
    lines = ["x1,x2,y"] + [f"{i},{i % 5},{slope * i - (i % 5) + 4}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def stored_versions(folder: str) -> set[str]:
    """The version folders MinIO holds under a Dataset's folder (read with the root credentials)."""
    prefix = folder.rstrip("/") + "/"
    names = {o.uri[len(prefix) :].split("/")[0] for o in storage.list_objects(folder)}
    return {name for name in names if VERSION.fullmatch(name)}


def parts_left(folder: str, versions: set[str]) -> tuple[set[str], set[str]]:
    """(the data parts stored in the Dataset's parts folder, those the dataset.json of `versions` name);
    both empty for datasets stored in the first format (train.csv and test.csv in the version folder)."""
    stored = {o.uri for o in storage.list_objects(f"{folder}/parts")}
    named = set()
    for version in versions:
        description = json.loads(storage.read_bytes(f"{folder}/{version}/dataset.json"))
        parts = description.get("parts") or {}
        named |= {
            f"{folder}/parts/{p['name']}"
            for split in ("train", "test")
            for p in parts.get(split, {}).get("parts", [])
        }
    return stored, named


def test_keep_last_deletes_older_versions_but_not_one_a_training_job_names(
    marina: Any, storage_env: None
) -> None:
    ns = marina.namespace
    uri = f"s3://marina/raw/{ns}/points.csv"
    folder = f"s3://marina/datasets/{ns}/points"
    storage.write_bytes(uri, csv_of(50, 2.0), "text/csv")
    marina.apply(
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "points"},
            "spec": {"source": {"csv": {"uri": uri}}, "target": "y", "retention": {"keepLast": 1}},
        },
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "points"},
            "spec": {"dataset": {"name": "points"}},
        },
    )
    first = marina.wait_ready("dataset", "points", timeout=180)["version"]
    assert marina.wait_ready("trainingjob", "points", timeout=180)["datasetVersion"] == first
    # Point the TrainingJob at a Dataset that does not exist: it waits, and only its status still
    # names the first version (its spec no longer does).
    marina.kubectl(
        "patch", "trainingjob", "points", "--type=merge", "-p", '{"spec":{"dataset":{"name":"later"}}}'
    )
    marina.wait_reason("trainingjob", "points", "DatasetNotFound", timeout=120)
    assert marina.status("trainingjob", "points")["datasetVersion"] == first

    versions = [first]
    for refresh, (rows, slope) in enumerate(((60, 3.0), (70, 4.0)), start=1):
        storage.write_bytes(uri, csv_of(rows, slope), "text/csv")
        marina.kubectl("annotate", "dataset", "points", f"marina.dev/refresh={refresh}", "--overwrite")
        versions.append(
            marina.wait_for(
                f"Dataset version {refresh + 1} and its retention run",
                lambda: (
                    (status := marina.status("dataset", "points")).get("version") not in versions
                    and ((status.get("retention") or {}).get("kept") or [None])[0] == status["version"]
                    and status["version"]
                ),
                timeout=180,
            )
        )
    first, second, third = versions

    assert stored_versions(folder) == {first, third}
    stored, named = parts_left(folder, {first, third})
    assert stored == named  # the second version's own data parts went with it
    status = marina.status("dataset", "points")
    assert status["retention"]["deleted"] == [second]
    assert status["retention"]["kept"] == [third, first]
    assert marina.condition("dataset", "points")["status"] == "True"
    events = marina.events_with("points", "RetentionApplied")
    applied = [e for e in events if e["reason"] == "RetentionApplied"]
    assert len(applied) == 1 and applied[0]["type"] == "Normal" and second in applied[0]["message"]
    assert not [e for e in marina.events("points") if e["reason"] == "RetentionFailed"]
