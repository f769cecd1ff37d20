"""Reading a Job's outcome: its conditions and its pod's termination message (the result JSON).

`marina prepare` and `marina train` write one JSON object to /dev/termination-log: the summary on
success, `{"error": "..."}` on failure. With `FallbackToLogsOnError`, a crash before that write
leaves the log tail instead, which is reported as the error text.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MESSAGE_LIMIT = 1024
# Failures worth retrying with a new Job once the environment is fixed (not the data's fault).
TRANSIENT_MARKERS = ("unreachable", "access denied", "must be set to use")
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
    summary: Mapping[str, Any]  # the result JSON on success
    error: str | None  # what went wrong, in one line

    @property
    def transient(self) -> bool:
        return self.error is not None and any(m in self.error.lower() for m in TRANSIENT_MARKERS)


def job_phase(job: Mapping[str, Any]) -> JobPhase:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobPhase.SUCCEEDED
        if condition.get("type") == "Failed":
            return JobPhase.FAILED
    return JobPhase.RUNNING


def job_failure_reason(job: Mapping[str, Any]) -> str:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return one_line(f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}")
    return "the Job failed"


def failed_at(job: Mapping[str, Any]) -> datetime | None:
    """When the Job was marked Failed (the start of the wait before a retry)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            stamp = condition.get("lastTransitionTime")
            if stamp:
                return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return None


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else "..." + flat[-(limit - 3) :]


def parse_message(text: str | None) -> tuple[dict[str, Any], str | None]:
    """(summary, error) from a termination message; non-JSON text is an error (a log tail)."""
    if not text or not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError:
        return {}, one_line(text)
    if not isinstance(value, dict):
        return {}, one_line(text)
    if "error" in value:
        return {}, one_line(str(value["error"]))
    return value, None


def terminated_message(pod: Mapping[str, Any]) -> str | None:
    """The termination message of the pod's first container (current or last state)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for state_key in ("state", "lastState"):
            terminated = (status.get(state_key) or {}).get("terminated")
            if terminated and terminated.get("message"):
                return str(terminated["message"])
    return None


def pod_problem(pod: Mapping[str, Any]) -> str | None:
    """Why a pod cannot run, when the kubelet says so (missing Secret, image, crash loop)."""
    name = (pod.get("metadata") or {}).get("name", "pod")
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            detail = (
                terminated_message(pod) if waiting["reason"] == "CrashLoopBackOff" else waiting.get("message")
            )
            return one_line(f"pod {name}: {waiting['reason']}: {detail or ''}".rstrip(": "))
    return None


def _newest_first(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)


def job_result(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> JobResult:
    phase = job_phase(job)
    ordered = _newest_first(pods)
    if phase is JobPhase.RUNNING:
        problem = next((p for p in map(pod_problem, ordered) if p), None)
        return JobResult(phase, {}, problem)
    for pod in ordered:
        summary, error = parse_message(terminated_message(pod))
        if phase is JobPhase.SUCCEEDED and summary:
            return JobResult(phase, summary, None)
        if phase is JobPhase.FAILED and error:
            return JobResult(phase, {}, error)
    if phase is JobPhase.SUCCEEDED:
        return JobResult(JobPhase.FAILED, {}, "the Job succeeded but its pod left no result JSON")
    return JobResult(phase, {}, job_failure_reason(job))
