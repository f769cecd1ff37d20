"""MinIO restarted while a training pod runs: its pod is deleted at once (grace period 0, the process
killed) as soon as the training container is running, and its Deployment starts a new one on the same
volume. The TrainingJob recovers by itself (the command's storage retries, the pod's retryable exit,
the Job's retries, the operator's new Job after its retry delay: whichever the outage needs) and
becomes Ready, and its models prefix holds exactly one model artifact (content-addressed, so a rerun
writes the same key, never a second copy).

So that the restart really meets the run, the training pod is held to a tenth of a core (it runs for
many seconds), and the test checks it did: the training container finished after the new MinIO pod
was created."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.e2e.test_e2e_eviction import train_slowly

from marina import storage
from marina.system.clock import parse_timestamp

# Runs alone (serial): it kills MinIO's pod, and every other test's storage would go away with it.
pytestmark = pytest.mark.serial

SYSTEM = "marina-system"
MINIO_PODS = "app.kubernetes.io/name=minio"
TRAINING = "restarted"


def pods_of(cluster: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
    listed = cluster.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json")
    return list(json.loads(listed)["items"])


def training_running(marina: Any) -> bool:
    return any(
        "running" in (status.get("state") or {})
        for pod in pods_of(marina.cluster, marina.namespace, f"marina.dev/trainingjob={TRAINING}")
        for status in pod["status"].get("containerStatuses") or []
    )


def finished_at(pod: dict[str, Any]) -> list[str]:
    return [
        state["terminated"]["finishedAt"]
        for status in pod["status"].get("containerStatuses") or []
        for state in (status.get("state") or {}, status.get("lastState") or {})
        if "terminated" in state
    ]


def model_artifacts(prefix: str) -> list[str]:
    names = [stored.uri for stored in storage.list_objects(prefix)]
    print(f"objects under {prefix}: {names}")
    return [uri for uri in names if uri.rsplit("/", 1)[-1].startswith("model-") and uri.endswith(".json")]


def test_training_recovers_from_a_minio_restart_without_duplicate_artifacts(
    marina: Any, cluster: Any, storage_env: None
) -> None:
    train_slowly(marina, TRAINING)
    marina.wait_for("the training container to run", lambda: training_running(marina), timeout=300, every=0.2)
    (old,) = pods_of(cluster, SYSTEM, MINIO_PODS)
    cluster.kubectl("-n", SYSTEM, "delete", "pod", old["metadata"]["name"], "--grace-period=0", "--force")
    killed = time.monotonic()
    cluster.kubectl("-n", SYSTEM, "rollout", "status", "deployment/minio", "--timeout=180s", timeout=200)
    back = time.monotonic()
    status = marina.wait_ready("trainingjob", TRAINING, timeout=600)
    ready = time.monotonic()
    (new,) = [
        p for p in pods_of(cluster, SYSTEM, MINIO_PODS) if p["metadata"]["uid"] != old["metadata"]["uid"]
    ]
    restarted = parse_timestamp(new["metadata"]["creationTimestamp"])
    ends = [
        parse_timestamp(t)
        for p in pods_of(cluster, marina.namespace, f"job-name={status['jobName']}")
        for t in finished_at(p)
    ]
    reasons = [event["reason"] for event in marina.events(TRAINING)]
    print(
        f"MinIO back {back - killed:.1f}s after its pod was killed; TrainingJob Ready {ready - back:.1f}s "
        f"after that; events {reasons}; training pods ended {[e.isoformat() for e in ends]}, new MinIO pod "
        f"{restarted.isoformat()}"
    )
    assert any(end >= restarted for end in ends), "the training run ended before MinIO restarted"
    assert status["phase"] == "Succeeded"
    prefix = status["model"]["uri"].rsplit("/", 1)[0] + "/"
    assert model_artifacts(prefix) == [status["model"]["uri"]]
    assert storage.size(status["model"]["uri"]) > 0
