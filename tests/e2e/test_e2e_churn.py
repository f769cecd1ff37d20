"""Churn (issue 20): objects created and deleted in batches, round after round; the operator's series and
memory follow the live objects, not every object it ever saw.

A batch is BATCH objects, a third of each kind, none of them starting a Job: Datasets whose features name
the target (Stalled at once), TrainingJobs waiting for a Dataset that does not exist and ModelDeployments
waiting for a TrainingJob that does not exist. Each round creates a batch, waits until every object has
its conditions, and deletes it; then the leader's /metrics names none of them (their series go on the
DELETED event), and its resident memory after the second round is within 10 % of after the first.
`benchmarks/churn_bench.py` runs the issue's whole bar (five rounds, then 1,000 objects alive at once)
with these same steps and prints the figures."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from tests.e2e.test_e2e_leader import SYSTEM, leader

# Runs alone (serial): thousands of objects through the one operator every other test shares.
pytestmark = pytest.mark.serial

BATCH, ROUNDS = 200, 2
MEMORY_GROWTH = 0.10
METRICS_PORT = 8081  # manifests/operator/deployment.yaml, port "metrics"
KINDS = ("Dataset", "TrainingJob", "ModelDeployment")


def body(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "Dataset": {"source": {"builtin": "diabetes"}, "features": ["bmi", "target"]},
        "TrainingJob": {"dataset": {"name": f"missing-{name}"}},
        "ModelDeployment": {"model": {"trainingJob": f"missing-{name}"}},
    }[kind]
    return {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"churn": "yes"}},
        "spec": spec,
    }


def batch(label: str, size: int = BATCH) -> list[dict[str, Any]]:
    objects = [body(KINDS[i % 3], f"{label}-{i}") for i in range(size)]
    for item in objects:
        item["metadata"]["labels"]["batch"] = label
    return objects


def with_conditions(marina: Any) -> int:
    count = 0
    for kind in KINDS:
        listed = json.loads(marina.kubectl("get", kind.lower() + "s", "-l", "churn=yes", "-o", "json"))
        count += sum(bool((item.get("status") or {}).get("conditions")) for item in listed["items"])
    return count


def remaining(marina: Any) -> int:
    names = marina.kubectl("get", ",".join(k.lower() + "s" for k in KINDS), "-l", "churn=yes", "-o", "name")
    return len(names.split())


def leader_pod(cluster: Any) -> dict[str, Any]:
    name = leader(cluster)
    assert name, "no operator leader"
    return dict(json.loads(cluster.kubectl("-n", SYSTEM, "get", "pod", name, "-o", "json")))


def series_naming(cluster: Any, pod: dict[str, Any], namespace: str) -> list[str]:
    """The leader's series that name `namespace`, read through the API server's proxy to the pod (the
    host reaches no pod of a kind cluster)."""
    path = f"/api/v1/namespaces/{SYSTEM}/pods/{pod['metadata']['name']}:{METRICS_PORT}/proxy/metrics"
    text = cluster.kubectl("get", "--raw", path)
    return [line for line in text.splitlines() if not line.startswith("#") and f'"{namespace}"' in line]


def resident_mib(cluster: Any, pod: dict[str, Any]) -> float:
    """VmRSS of the operator's process (PID 1 of its container)."""
    status = cluster.kubectl("-n", SYSTEM, "exec", pod["metadata"]["name"], "--", "cat", "/proc/1/status")
    (kib,) = re.findall(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(kib) / 1024


def churn(
    marina: Any, pod: dict[str, Any], labels: list[str], size: int = BATCH
) -> tuple[float, float, float]:
    """Create the batches `labels`, wait for every object's conditions, delete them and wait until they
    and their series are gone: (seconds to reconcile, seconds to go, the leader's MiB with them alive)."""
    started = time.monotonic()
    for label in labels:
        marina.apply(*batch(label, size))
    alive = size * len(labels)
    marina.wait_for(f"{alive} objects with conditions", lambda: with_conditions(marina) == alive, 900, 3)
    reconciled = time.monotonic() - started
    peak = resident_mib(marina.cluster, pod)
    for label in labels:
        marina.kubectl(
            "delete", "--wait=false", ",".join(k.lower() + "s" for k in KINDS), "-l", f"batch={label}"
        )
    marina.wait_for("every object gone", lambda: remaining(marina) == 0, 600, 3)
    # gone on the DELETED events; 30 s leaves room for a busy operator's queue of them
    marina.wait_for(
        "no series naming a deleted object",
        lambda: not series_naming(marina.cluster, pod, marina.namespace),
        30,
        2,
    )
    return reconciled, time.monotonic() - started - reconciled, peak


def test_series_and_memory_follow_the_live_objects(marina: Any) -> None:
    pod = leader_pod(marina.cluster)
    memory: list[float] = []
    for round_ in range(ROUNDS):
        reconciled, gone, _ = churn(marina, pod, [f"r{round_}"])
        memory.append(resident_mib(marina.cluster, pod))
        print(
            f"round {round_ + 1}: {BATCH} objects reconciled in {reconciled:.0f} s, gone {gone:.0f} s later; "
            f"leader {memory[-1]:.1f} MiB after"
        )
    assert leader_pod(marina.cluster)["metadata"]["name"] == pod["metadata"]["name"], "the leader changed"
    assert memory[-1] <= memory[0] * (1 + MEMORY_GROWTH), memory
