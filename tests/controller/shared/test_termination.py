"""A pod the kernel killed at its memory limit: reported as `OutOfMemory` naming the pod, the limit and the
field to raise, decided from the kubelet's typed reason, never from a message or log text."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from marina.contract import EXIT_PERMANENT, Failure, FailureKind, encode
from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.settings import Settings
from marina.controller.shared import termination
from marina.controller.shared.conditions import State
from marina.controller.trainingjobs import reconcile as trainingjobs

POD = "big-prepare-0123456789-x7k2p"
LOG_TAIL = "generating 2000000 rows x 50 features"


def failed_job(reason: str = "BackoffLimitExceeded") -> dict[str, Any]:
    """A Job as the Job controller leaves it after its last pod failed."""
    words = {
        "BackoffLimitExceeded": "Job has reached the specified backoff limit",
        "PodFailurePolicy": f"Container marina for pod team-a/{POD} failed with exit code 137 matching "
        "FailJob rule at index 1",
    }[reason]
    failed = {
        "status": "True",
        "reason": reason,
        "message": words,
        "lastTransitionTime": "2026-01-01T00:01:00Z",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "big-prepare-0123456789", "namespace": "team-a"},
        "status": {
            "failed": 1,
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "FailureTarget", **failed}, {"type": "Failed", **failed}],
        },
    }


def terminated(exit_code: int, reason: str, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": "2026-01-01T00:00:02Z",
        "finishedAt": "2026-01-01T00:00:40Z",
        "containerID": "containerd://4f2a",
    }
    if message is not None:
        state["message"] = message
    return {"terminated": state}


def pod(
    state: dict[str, Any],
    *,
    name: str = POD,
    limits: dict[str, str] | None = None,
    last_state: dict[str, Any] | None = None,
    created: str = "2026-01-01T00:00:01Z",
) -> dict[str, Any]:
    """A Job's pod as the API server returns it: the container's resources in spec, its fate in status."""
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "256Mi"}}
    if limits is not None:
        resources["limits"] = limits
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "creationTimestamp": created,
            "labels": {"job-name": "big-prepare-0123456789"},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "marina", "image": "marina.local/marina:dev", "resources": resources}],
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "marina",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "image": "marina.local/marina:dev",
                    "state": state,
                    "lastState": last_state or {},
                }
            ],
        },
    }


@pytest.mark.parametrize("job_reason", ["BackoffLimitExceeded", "PodFailurePolicy"])
@pytest.mark.parametrize("log_tail", [None, LOG_TAIL], ids=["no-log", "log-tail"])
def test_oom_killed_pod_is_out_of_memory_naming_its_limit(job_reason: str, log_tail: str | None) -> None:
    killed = pod(terminated(137, "OOMKilled", log_tail), limits={"memory": "512Mi"})
    result = termination.job_result(failed_job(job_reason), [killed])
    assert result.phase is termination.JobPhase.FAILED and result.reason == "OutOfMemory"
    assert result.failure is not None and not result.failure.kind.retryable
    assert result.failure.message == (
        f"pod {POD}: container marina was killed at its memory limit of 512Mi; "
        "raise spec.resources.limits.memory"
    )


def test_oom_in_the_last_state_counts_too() -> None:
    """A container restarted in place (restartPolicy OnFailure) keeps its OOM kill in lastState."""
    waiting = {
        "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}
    }
    restarted = pod(waiting, limits={"memory": "64Mi"}, last_state=terminated(137, "OOMKilled"))
    result = termination.job_result(failed_job(), [restarted])
    assert result.reason == "OutOfMemory" and result.failure is not None
    assert "limit of 64Mi" in result.failure.message


def test_oom_without_a_limit_asks_for_a_memory_request() -> None:
    result = termination.job_result(failed_job(), [pod(terminated(137, "OOMKilled"))])
    assert result.reason == "OutOfMemory" and result.failure is not None
    assert "no memory limit" in result.failure.message
    assert "spec.resources.requests.memory" in result.failure.message


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (terminated(137, "Error"), "BackoffLimitExceeded: Job has reached the specified backoff limit"),
        (
            terminated(137, "Error", "MemoryError: OOMKilled while decoding"),
            "MemoryError: OOMKilled while decoding",
        ),
    ],
    ids=["sigkill", "words-only"],
)
def test_only_the_kubelets_reason_means_out_of_memory(state: dict[str, Any], message: str) -> None:
    """A SIGKILL for another cause (exit 137, reason Error) or a log that merely says "OOMKilled" is not
    an OOM kill: the Job controller's or the log's words are reported as before."""
    result = termination.job_result(failed_job(), [pod(state, limits={"memory": "512Mi"})])
    assert result.reason is None
    assert result.failure == Failure(FailureKind.INTERNAL, message)


def test_the_newest_pod_decides() -> None:
    data_error = Failure(FailureKind.DATA, "column 'city' row 2: 'Paris' is not a number")
    said = terminated(EXIT_PERMANENT, "Error", encode(data_error.to_json()))
    oom = terminated(137, "OOMKilled")
    early, late = "2026-01-01T00:00:01Z", "2026-01-01T00:00:30Z"
    first_oom = [pod(oom, name="a", created=early), pod(said, name="b", created=late)]
    last_oom = [pod(said, name="a", created=early), pod(oom, name="b", created=late)]
    assert termination.job_result(failed_job(), first_oom) == termination.JobResult(
        termination.JobPhase.FAILED, failure=data_error
    )
    assert termination.job_result(failed_job(), last_oom).reason == "OutOfMemory"


def test_a_job_that_succeeded_after_an_oom_is_a_success() -> None:
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    oom = pod(terminated(137, "OOMKilled"), name="p-old", limits={"memory": "512Mi"})
    done = pod(terminated(0, "Completed", '{"version": "abc"}'), name="p-new", created="2026-01-01T00:00:30Z")
    result = termination.job_result(complete, [oom, done])
    assert result.phase is termination.JobPhase.SUCCEEDED and result.reason is None
    assert result.summary == {"version": "abc"}


def kill_for_memory(kube: Any, job_name: str) -> None:
    """The Job failed; its pod, made from the Job's own template, was OOM-killed by the kernel."""
    job = kube.get("batch/v1", "Job", "default", job_name)
    kube.set_status("batch/v1", "Job", job_name, failed_job("PodFailurePolicy")["status"])
    killed = pod(terminated(137, "OOMKilled"), name=f"{job_name}-x7k2p")
    killed["metadata"]["namespace"] = "default"
    killed["metadata"]["labels"] = {"job-name": job_name}
    killed["spec"] = copy.deepcopy(job["spec"]["template"]["spec"])
    kube.add(killed)


def conditions_of(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in body["status"]["conditions"]}


@pytest.mark.parametrize(
    ("resources", "limit"),
    [(None, "512Mi"), ({"limits": {"memory": "24Mi"}}, "24Mi")],
    ids=["default-limit", "spec-resources"],
)
def test_dataset_killed_for_memory_is_stalled_with_a_warning(
    kube: Any, settings: Settings, resources: dict[str, Any] | None, limit: str
) -> None:
    spec: dict[str, Any] = {"source": {"synthetic": {"rows": 2_000_000, "features": 50}}}
    if resources is not None:
        spec["resources"] = resources
    kube.add_resource("Dataset", "big", spec)
    datasets.reconcile(kube, settings, kube.current("Dataset", "big"))
    (job_name,) = kube.jobs()
    kill_for_memory(kube, job_name)
    for _ in range(2):  # the same limit would be killed again: no new Job until the spec changes
        outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "big"))
        assert (outcome.state, outcome.reason) == (State.FAILED, "OutOfMemory")
        assert kube.jobs() == [job_name]
    assert outcome.message == (
        f"Job {job_name}: pod {job_name}-x7k2p: container marina was killed at its memory limit of "
        f"{limit}; raise spec.resources.limits.memory"
    )
    body = kube.current("Dataset", "big")
    assert conditions_of(body)["Ready"] == ("False", "OutOfMemory")
    assert conditions_of(body)["Stalled"] == ("True", "OutOfMemory")
    warnings = [e for e in kube.events if e[1] == "Warning"]
    assert warnings == [("big", "Warning", "OutOfMemory", outcome.message)]


def test_trainingjob_killed_for_memory_fails_and_a_raised_limit_trains_again(
    kube: Any, settings: Settings
) -> None:
    kube.add_resource(
        "Dataset",
        "diabetes",
        {"source": {"builtin": "diabetes"}},
        {"version": "0123456789abcdef", "uri": "s3://marina/datasets/default/diabetes/0123456789abcdef"},
    )
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}})
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    (job_name,) = kube.jobs()
    kill_for_memory(kube, job_name)
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert (outcome.state, outcome.reason) == (State.FAILED, "OutOfMemory")
    assert "limit of 512Mi" in outcome.message
    assert kube.current("TrainingJob", "ridge")["status"]["phase"] == "Failed"
    stored = kube.objects[("marina.dev/v1alpha1", "TrainingJob", "default", "ridge")]
    stored["spec"]["resources"] = {"limits": {"memory": "2Gi"}}
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    (new_job,) = (j for j in kube.jobs() if j != job_name)
    assert outcome.state is State.PROGRESSING
    container = kube.get("batch/v1", "Job", "default", new_job)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"memory": "2Gi"}}
