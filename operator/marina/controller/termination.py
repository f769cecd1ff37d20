"""Reading a Job's outcome: its conditions and its pod's termination message (the result JSON).

`marina prepare` and `marina train` write one JSON object to /dev/termination-log: the summary on
success, a typed failure (`marina.contract.Failure`) otherwise. With `FallbackToLogsOnError`, a crash
before that write leaves the log tail instead, which `contract.parse_result` reads as a failure of the
kind the exit code implies (internal, unless it is the retryable code).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marina.clock import parse_timestamp
from marina.contract import Failure, FailureKind, Success, parse_result
from marina.text import one_line

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


def job_result(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> JobResult:
    phase = job_phase(job)
    ordered = _newest_first(pods)
    if phase is JobPhase.RUNNING:
        return JobResult(phase, problem=next((p for p in map(pod_problem, ordered) if p), None))
    for reported in map(pod_result, ordered):
        if phase is JobPhase.SUCCEEDED and isinstance(reported, Success):
            return JobResult(phase, summary=reported.summary)
        if phase is JobPhase.FAILED and isinstance(reported, Failure):
            return JobResult(phase, failure=reported)
    if phase is JobPhase.SUCCEEDED:
        failure = Failure(FailureKind.INTERNAL, "the Job succeeded but its pod left no result JSON")
    else:  # no pod said why: a deadline, evictions, the backoff limit (the Job controller's words)
        failure = Failure(FailureKind.INTERNAL, job_failure_reason(job))
    return JobResult(JobPhase.FAILED, failure=failure)
