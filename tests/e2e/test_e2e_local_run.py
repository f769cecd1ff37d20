"""`marina run` and the cluster agree: the sample Dataset run on this machine has the version the cluster
gives it, and a bad CSV fails with the same reason and message in both (the same YAML, the same contract,
the same code)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from marina import storage

BAD_CSV = b"x,target\n1,2\n2,oops\n3,4\n"


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == "Ready")


def run_locally(resources: list[dict[str, Any]], folder: Path, namespace: str) -> dict[str, dict[str, Any]]:
    """`marina run --once` of `resources` in `namespace` with a store in `folder`; each one's status."""
    path = folder / "resources.yaml"
    path.write_text(yaml.safe_dump_all(resources))
    store = folder / "store"
    command = ["run", "--once", "-f", str(path), "--store", str(store), "--namespace", namespace]
    done = subprocess.run(
        [sys.executable, "-m", "marina.cli", *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a resource failed, as one must here
    state = store / "state" / namespace / "Dataset"
    names = [body["metadata"]["name"] for body in resources]
    return {name: json.loads((state / f"{name}.json").read_text())["status"] for name in names}


def test_a_local_run_and_the_cluster_give_the_same_version_and_the_same_failure(
    marina: Any, storage_env: None, tmp_path: Path
) -> None:
    sample = marina.sample("Dataset")
    uri = f"s3://marina/raw/{marina.namespace}/bad.csv"
    bad = {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "bad"},
        "spec": {"source": {"csv": {"uri": uri}}},
    }
    local_raw = tmp_path / "store" / "objects" / "marina" / "raw" / marina.namespace
    local_raw.mkdir(parents=True)
    (local_raw / "bad.csv").write_bytes(BAD_CSV)
    storage.write_bytes(uri, BAD_CSV, "text/csv")

    local = run_locally([sample, bad], tmp_path, marina.namespace)
    marina.apply(sample, bad)
    cluster_sample = marina.wait_ready("dataset", sample["metadata"]["name"], timeout=300)
    failed = marina.wait_reason("dataset", "bad", "PrepareFailed", timeout=300)

    assert local[sample["metadata"]["name"]]["version"] == cluster_sample["version"]
    assert local[sample["metadata"]["name"]]["rows"] == cluster_sample["rows"]
    local_failed = ready_condition(local["bad"])
    assert local_failed["reason"] == failed["reason"] == "PrepareFailed"
    assert local_failed["message"] == failed["message"]
    assert "column 'target' row 2: 'oops' is not a number" in failed["message"]
