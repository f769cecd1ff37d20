"""With the operator scaled to 0, a namespace holding a Dataset, a TrainingJob and a ModelDeployment
is deleted within 60 s: Marina's objects carry no finalizer that would wait for the operator, and
their children go with them by ownerReferences. And a training Job that succeeds while the operator is
down, its pod (with the result in its termination message) and its stored result document both deleted
before the operator is back, is run again, so the TrainingJob still becomes Ready (with the stored
document kept, test_e2e_result_persisted shows it is Ready without a second run). The operator is
scaled back afterwards, always."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from marina import storage
from marina.controller.shared import termination

# Runs alone (serial): it scales the operator to 0, and no other test's resources would be reconciled
# meanwhile.
pytestmark = pytest.mark.serial

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"
SYSTEM = "marina-system"
OPERATOR = "deployment/marina-operator"
OPERATOR_PODS = "app.kubernetes.io/name=marina-operator"
DELETED_WITHIN = 60.0


@pytest.fixture
def doomed(cluster: Any, operator: None) -> Iterator[str]:
    """A namespace of its own, which the test deletes (deleted here too if the test failed first)."""
    name = f"marina-e2e-down-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


@contextmanager
def operator_scaled_to_zero(cluster: Any) -> Iterator[None]:
    """The operator scaled to 0 with its pods gone; scaled back to its replicas and rolled out after."""
    replicas = cluster.kubectl("-n", SYSTEM, "get", OPERATOR, "-o", "jsonpath={.spec.replicas}").strip()
    try:
        cluster.kubectl("-n", SYSTEM, "scale", OPERATOR, "--replicas=0")
        cluster.kubectl(
            "-n", SYSTEM, "wait", "--for=delete", "pod", "-l", OPERATOR_PODS, "--timeout=90s", timeout=120
        )
        yield
    finally:
        cluster.kubectl("-n", SYSTEM, "scale", OPERATOR, f"--replicas={replicas or 2}")
        cluster.kubectl("-n", SYSTEM, "rollout", "status", OPERATOR, "--timeout=180s", timeout=200)


def wait_until(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        time.sleep(1)


def handled(cluster: Any, namespace: str, kind: str, name: str) -> bool:
    """The operator has written a status for the current generation (so it had every chance to add a
    finalizer, had it wanted one)."""
    body = json.loads(cluster.kubectl("-n", namespace, "get", kind, name, "-o", "json"))
    return bool((body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"])


def apply_samples(cluster: Any, namespace: str, *kinds: str) -> list[dict[str, Any]]:
    samples = [yaml.safe_load((SAMPLES / f"marina.dev_v1alpha1_{kind}.yaml").read_text()) for kind in kinds]
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": samples})
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=listed)
    return samples


def test_namespace_deletes_while_the_operator_is_down(cluster: Any, doomed: str) -> None:
    samples = apply_samples(cluster, doomed, "dataset", "trainingjob", "modeldeployment")
    kinds = [(d["kind"], d["metadata"]["name"]) for d in samples]
    for kind, name in kinds:
        wait_until(f"{kind}/{name} handled", lambda k=kind, n=name: handled(cluster, doomed, k, n), 120)
    finalizers = {
        f"{kind}/{name}": json.loads(cluster.kubectl("-n", doomed, "get", kind, name, "-o", "json"))[
            "metadata"
        ].get("finalizers")
        for kind, name in kinds
    }
    assert not any(finalizers.values()), json.dumps(finalizers)

    with operator_scaled_to_zero(cluster):
        cluster.kubectl("delete", "namespace", doomed, "--wait=false")
        started = time.monotonic()
        wait_until(
            f"namespace {doomed} gone with the operator down",
            lambda: f"namespace/{doomed}" not in cluster.kubectl("get", "namespaces", "-o", "name").split(),
            DELETED_WITHIN,
        )
        print(f"namespace deleted in {time.monotonic() - started:.1f}s with the operator scaled to 0")


def test_a_result_lost_with_its_pod_while_the_operator_is_down_is_computed_again(
    cluster: Any, doomed: str, storage_env: None
) -> None:
    def kubectl(*args: str) -> str:
        return str(cluster.kubectl("-n", doomed, *args, timeout=400))

    (dataset,) = apply_samples(cluster, doomed, "dataset")
    kubectl("wait", "--for=condition=Ready", f"dataset/{dataset['metadata']['name']}", "--timeout=300s")
    # No pod may start until the operator is down, so it cannot read the result first.
    kubectl("create", "quota", "hold-pods", "--hard=pods=0")
    (training_job,) = apply_samples(cluster, doomed, "trainingjob")
    name = training_job["metadata"]["name"]
    wait_until(f"TrainingJob {name} started its Job", lambda: "jobName" in status(cluster, doomed, name), 120)
    job = status(cluster, doomed, name)["jobName"]
    with operator_scaled_to_zero(cluster):
        kubectl("delete", "quota", "hold-pods")
        kubectl("wait", "--for=condition=Complete", f"job/{job}", "--timeout=300s")
        kubectl("delete", "pods", "-l", f"job-name={job}", "--wait=true")
        stored = stored_result_uri(json.loads(kubectl("get", "job", job, "-o", "json")))
        assert storage.exists(stored)  # the command stored its result: this test takes it away
        storage.delete_objects([stored])
    kubectl("wait", "--for=condition=Ready", f"trainingjob/{name}", "--timeout=300s")
    events = json.loads(
        kubectl("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json")
    )
    assert "ResultLost" in {e["reason"] for e in events["items"]}
    assert status(cluster, doomed, name)["jobName"] == job  # the same Job, run again


def stored_result_uri(job: dict[str, Any]) -> str:
    """Where the Job's command stored its result document (marina.jobs.results)."""
    uri = termination.result_location(job)
    assert uri is not None, "the Job names no place for its result"
    return uri


def status(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    body = json.loads(cluster.kubectl("-n", namespace, "get", "trainingjob", name, "-o", "json"))
    return dict(body.get("status") or {})
