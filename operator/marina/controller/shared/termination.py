"""Reading a Job's outcome: its conditions and its pod's termination message (the result JSON).

`marina prepare` and `marina train` write one JSON object to /dev/termination-log: the summary on
success, a typed failure (`marina.contract.Failure`) otherwise. With `FallbackToLogsOnError`, a crash
before that write leaves the log tail instead, which `contract.parse_result` reads as a failure of the
kind the exit code implies (internal, unless it is the retryable code).

A container the kernel killed at its memory limit writes nothing: the kubelet's `OOMKilled` reason
(a typed field of the pod's status) is what says so, and the result names the pod, its limit and the
field to raise, under the reason `OutOfMemory` instead of the Job controller's `BackoffLimitExceeded`.

The pod, and with it the termination message, can be gone (garbage-collected, its node lost) while the
Job remains. The command also stored its result document where the Job's container says
(`result_location`); the caller reads it and passes it as `stored`, used only when no pod reported and
only if it agrees with the Job's phase (a success for a Job that completed, a failure for one that
failed), so a document left by an earlier run of the same Job never contradicts the Job controller.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marina.contract import Failure, FailureKind, Success, parse_result
from marina.jobs.results import RESULT_URI_ENV
from marina.system.clock import parse_timestamp
from marina.system.text import one_line

OUT_OF_MEMORY = "OutOfMemory"  # the condition reason of a Job whose pod was killed at its memory limit
OOM_KILLED = "OOMKilled"  # the kubelet's reason for a container terminated by the OOM killer
MEMORY_FIELD = "spec.resources.limits.memory"
REQUEST_FIELD = "spec.resources.requests.memory"

# Pod waiting reasons that never fix themselves without a change outside the pod.
STUCK_REASONS = (
    "CreateContainerConfigError",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
)


class JobPhase(enum.Enum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobResult:
    phase: JobPhase
    summary: Mapping[str, Any] = field(default_factory=dict)  # the result JSON on success
    failure: Failure | None = None  # why it failed, as the command (or the Job controller) said
    problem: str | None = None  # while running: why its pod cannot run, in one line
    reason: str | None = None  # the condition reason when the pod's fate says more than the kind does


def job_phase(job: Mapping[str, Any]) -> JobPhase:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobPhase.SUCCEEDED
        if condition.get("type") == "Failed":
            return JobPhase.FAILED
    return JobPhase.RUNNING


def _failed_condition(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return dict(condition)
    return None


def job_failure_reason(job: Mapping[str, Any]) -> str:
    condition = _failed_condition(job)
    if condition is None:
        return "the Job failed"
    return one_line(f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}")


def failed_at(job: Mapping[str, Any]) -> datetime | None:
    """When the Job was marked Failed (the start of the wait before a retry)."""
    stamp = (_failed_condition(job) or {}).get("lastTransitionTime")
    return parse_timestamp(str(stamp)) if stamp else None


def terminated_state(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The terminated state of the pod's first container that left a message (current or last state)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for state_key in ("state", "lastState"):
            terminated = (status.get(state_key) or {}).get("terminated")
            if terminated and terminated.get("message"):
                return dict(terminated)
    return None


def terminated_message(pod: Mapping[str, Any]) -> str | None:
    terminated = terminated_state(pod)
    return str(terminated["message"]) if terminated else None


def memory_limit(pod: Mapping[str, Any], container: str) -> str | None:
    """The container's memory limit as its pod spec states it (e.g. "512Mi"); None when unlimited."""
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
            return str(limit) if limit is not None else None
    return None


def out_of_memory(pod: Mapping[str, Any]) -> str | None:
    """Why the pod died, in one line, when the kernel killed a container of it at its memory limit."""
    name = (pod.get("metadata") or {}).get("name", "pod")
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for state_key in ("state", "lastState"):
            terminated = (status.get(state_key) or {}).get("terminated") or {}
            if terminated.get("reason") == OOM_KILLED:
                container = str(status.get("name", ""))
                return oom_message(name, container, memory_limit(pod, container))
    return None


def oom_message(pod: str, container: str, limit: str | None) -> str:
    """A line to act on: the pod, the limit it met, and the spec field that changes it."""
    if limit is None:  # only the node's own memory bounded it
        return (
            f"pod {pod}: container {container} was killed for lack of memory with no memory limit (the node "
            f"ran out); request what it needs in {REQUEST_FIELD}"
        )
    return f"pod {pod}: container {container} was killed at its memory limit of {limit}; raise {MEMORY_FIELD}"


def pod_result(pod: Mapping[str, Any]) -> Success | Failure | None:
    """What the pod's command reported through its termination message (and exit code)."""
    terminated = terminated_state(pod)
    if terminated is None:
        return None
    exit_code = terminated.get("exitCode")
    return parse_result(str(terminated["message"]), exit_code if isinstance(exit_code, int) else None)


def pod_problem(pod: Mapping[str, Any]) -> str | None:
    """Why a pod cannot run, when the kubelet says so (missing Secret, image, crash loop)."""
    name = (pod.get("metadata") or {}).get("name", "pod")
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            detail = (
                terminated_message(pod) if waiting["reason"] == "CrashLoopBackOff" else waiting.get("message")
            )
            return one_line(f"pod {name}: {waiting['reason']}: {detail or ''}".rstrip(": "), keep_end=True)
    return None


def _newest_first(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)


def result_location(job: Mapping[str, Any]) -> str | None:
    """Where the Job's command stores its result document (`$MARINA_RESULT_URI` of its container)."""
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in template.get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") == RESULT_URI_ENV and variable.get("value"):
                return str(variable["value"])
    return None


def _from_storage(phase: JobPhase, stored: Success | Failure | None) -> JobResult | None:
    if phase is JobPhase.SUCCEEDED and isinstance(stored, Success):
        return JobResult(phase, summary=stored.summary)
    if phase is JobPhase.FAILED and isinstance(stored, Failure):
        return JobResult(phase, failure=stored)
    return None


def job_result(
    job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], stored: Success | Failure | None = None
) -> JobResult:
    """The Job's outcome from its pods, newest first; from `stored` (the result document the command
    stored) when no pod says."""
    phase = job_phase(job)
    ordered = _newest_first(pods)
    if phase is JobPhase.RUNNING:
        return JobResult(phase, problem=next((p for p in map(pod_problem, ordered) if p), None))
    for pod in ordered:
        if phase is JobPhase.FAILED and (killed := out_of_memory(pod)):
            # Checked first: a killed command wrote no result, only a log tail that says nothing typed.
            return JobResult(phase, failure=Failure(FailureKind.INTERNAL, killed), reason=OUT_OF_MEMORY)
        reported = pod_result(pod)
        if phase is JobPhase.SUCCEEDED and isinstance(reported, Success):
            return JobResult(phase, summary=reported.summary)
        if phase is JobPhase.FAILED and isinstance(reported, Failure):
            return JobResult(phase, failure=reported)
    if (kept := _from_storage(phase, stored)) is not None:
        return kept
    if phase is JobPhase.SUCCEEDED:
        failure = Failure(FailureKind.INTERNAL, "the Job succeeded but its pod left no result JSON")
    else:  # no pod said why: a deadline, evictions, the backoff limit (the Job controller's words)
        failure = Failure(FailureKind.INTERNAL, job_failure_reason(job))
    return JobResult(JobPhase.FAILED, failure=failure)
