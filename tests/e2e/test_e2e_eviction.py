"""An eviction is not the run's fault: a training pod evicted through the Eviction API (policy/v1) while
its TrainingJob allows no retries at all (`backoffLimit: 0`) is replaced by the Job controller, since
the Job's podFailurePolicy ignores pods with the `DisruptionTarget` condition, and the TrainingJob
becomes Ready from that same Job (the operator never had to start another).

The eviction keeps the default grace period, as `kubectl drain` does: the command (PID 1 of its
container) stops at once on SIGTERM. Before it had a handler the kernel ignored SIGTERM, and the evicted
pod simply ran on and Succeeded, which this test reports as "not evicted mid-run"."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

TRAINING = "evicted"
SLOW_RESOURCES = {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"cpu": "100m", "memory": "512Mi"}}
WATCH_SECONDS = 180


def running(pod: Any) -> bool:
    return any(s.state is not None and s.state.running for s in pod.status.container_statuses or [])


def disrupted(pod: Any) -> bool:
    return any(c.type == "DisruptionTarget" and c.status == "True" for c in pod.status.conditions or [])


def evict_when_running(kube: Any, namespace: str) -> tuple[str, set[str], dict[str, list[str]]]:
    """Watch the training pods; evict the first as soon as its container runs; go on watching until
    the evicted pod carries `DisruptionTarget` and a replacement exists. (evicted, pods seen, phases)"""
    from kubernetes import client, watch

    core = client.CoreV1Api(kube)
    phases: dict[str, list[str]] = {}
    evicted: str | None = None
    marked = False
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod,
        namespace,
        label_selector=f"marina.dev/trainingjob={TRAINING}",
        timeout_seconds=WATCH_SECONDS,
    ):
        pod = event["object"]
        name = pod.metadata.name
        phases.setdefault(name, []).append(str(pod.status.phase))
        if evicted is None and running(pod):
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
            core.create_namespaced_pod_eviction(name, namespace, body)
            evicted = name
        marked = marked or (name == evicted and disrupted(pod))
        if marked and set(phases) - {evicted}:
            stream.stop()
    if evicted is None or not marked or not set(phases) - {evicted}:
        pytest.fail(
            f"no training pod evicted, marked and replaced within {WATCH_SECONDS}s: {phases}", pytrace=False
        )
    return evicted, set(phases), phases


def train_slowly(marina: Any, training: str, **spec: Any) -> None:
    """The sample Dataset made Ready, then the sample TrainingJob (with `spec` on top) on it, its pod
    held to a tenth of a core so that it runs for many seconds: long enough to be disrupted mid-run
    however fast training gets."""
    dataset = marina.sample("Dataset")
    marina.apply(dataset)
    marina.wait_ready("dataset", dataset["metadata"]["name"], timeout=600)
    body = marina.sample("TrainingJob")
    body["metadata"]["name"] = training
    body["spec"].update({"resources": SLOW_RESOURCES, **spec})
    marina.apply(body)


def test_an_evicted_training_pod_is_retried_with_backoff_limit_zero(marina: Any, kube: Any) -> None:
    train_slowly(marina, TRAINING, backoffLimit=0)
    evicted, pods, phases = evict_when_running(kube, marina.namespace)
    evicted_at = time.monotonic()
    status = marina.wait_ready("trainingjob", TRAINING, timeout=600)
    print(
        f"evicted {evicted} while running; Ready {time.monotonic() - evicted_at:.1f}s later; "
        f"pods {json.dumps(phases)}"
    )
    assert "Succeeded" not in phases[evicted]  # it was evicted mid-run, not after finishing
    job = marina.get("job", status["jobName"])
    assert job["spec"]["backoffLimit"] == 0
    assert job["status"].get("succeeded") == 1 and not job["status"].get("failed")  # not counted
    jobs = marina.kubectl("get", "jobs", "-l", f"marina.dev/trainingjob={TRAINING}", "-o", "name").split()
    assert jobs == [f"job.batch/{status['jobName']}"]  # the Job controller retried, not the operator
    assert len(pods) >= 2 and status["phase"] == "Succeeded"
