"""What every reconciler shares: writing an Outcome into status (and an event on transitions), turning
conflicts and refused child writes into outcomes, running a Job to completion, and serialising work
per object."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from marina.contract import Failure, FailureKind, Success
from marina.controller.kube import metrics
from marina.controller.kube.client import KubeApi, KubeError
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders, ownership, preflight
from marina.controller.shared.conditions import Outcome, State, differs, needs_event, status_patch
from marina.controller.shared.termination import (
    JobPhase,
    JobResult,
    failed_at,
    job_phase,
    job_result,
    result_location,
)
from marina.jobs import progress, results
from marina.system.clock import seconds_since

# The condition reason of each failure worth a new Job (`FailureKind.retryable`); the rest are permanent.
RETRY_REASONS = {
    FailureKind.STORAGE_UNAVAILABLE: "StorageUnavailable",
    FailureKind.STORAGE_DENIED: "StorageAccessDenied",
    FailureKind.STORAGE_CONFIG: "CredentialsMissing",
}
# A child write the API server refused, by HTTP code: 400 and 422 (`Invalid`, including admission
# policies) refuse the same body again, so the resource is Stalled until something changes; 403
# (`Forbidden`: RBAC, an admission webhook, or a ResourceQuota, which the server reports as plain
# `Forbidden` with no reason of its own), 409 (`Conflict`, `AlreadyExists`), 429 and 5xx may pass
# later, so they are retried.
PERMANENT_REJECTIONS = frozenset({400, 422})
REJECTION_REASONS = {403: "Forbidden", 409: "Conflict"}
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def lock_for(kind: str, namespace: str, name: str) -> threading.Lock:
    """One lock per object: a watch event of a child and a change of the object never interleave."""
    with _locks_guard:
        return _locks.setdefault((kind, namespace, name), threading.Lock())


def report(kube: KubeApi, body: Mapping[str, Any], outcome: Outcome) -> Outcome:
    """Write the outcome into the status (only if it changes anything) and post an event on transitions."""
    metrics.reconciled(
        str(body.get("kind")), outcome.state.value, outcome.reason if outcome.warning else None
    )
    current = body.get("status") or {}
    patch = status_patch(outcome, current, int(body["metadata"].get("generation") or 0))
    if differs(patch, current):
        kube.patch_status(body, patch)
    if needs_event(outcome, current):
        kube.event(body, "Warning" if outcome.warning else "Normal", outcome.reason, outcome.message)
    return outcome


def invalid(error: Exception) -> Outcome:
    return Outcome(State.FAILED, "InvalidSpec", str(error))


def rejected(error: KubeError, settings: Settings) -> Outcome:
    """The outcome of a child write the API server refused, decided by the code, never by the words."""
    said = f"the API server refused to {error.verb} {error.kind} {error.where}: {error.said}"
    reason = REJECTION_REASONS.get(error.code or 0, "ChildRejected")
    if error.code in PERMANENT_REJECTIONS:
        return Outcome(State.FAILED, reason, f"{said}; not retried until the spec changes")
    return Outcome(State.WAITING, reason, f"{said}; retrying every {settings.retry_delay_seconds:g}s")


Reconcile = Callable[[KubeApi, Settings, Mapping[str, Any]], Outcome]  # also each kind's `decide`


def settle(kube: KubeApi, settings: Settings, body: Mapping[str, Any], decide: Reconcile) -> Outcome:
    """Decide and report; a name taken by someone else's object or a refused child write is reported
    too (condition and Warning event), instead of only reaching the operator's log."""
    try:
        outcome = decide(kube, settings, body)
    except ownership.NameConflict as conflict:
        outcome = conflict.outcome()
    except KubeError as error:
        if not error.write:
            raise  # reads failing: the API server itself is in trouble, kopf retries
        outcome = rejected(error, settings)
    return report(kube, body, outcome)


def run_job(
    kube: KubeApi,
    settings: Settings,
    owner: builders.Owner,
    job: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> JobResult | Outcome:
    """Create the Job if needed and read its result; an Outcome when it cannot start or must be retried."""
    name = job["metadata"]["name"]
    existing = kube.get("batch/v1", "Job", owner.namespace, name)
    ownership.require_owned(owner, existing)
    if existing is None:
        blocked = preflight.blocking_outcome(kube, settings, owner.namespace)
        if blocked is not None:
            return blocked
        for child in (extra, job):
            if child is not None:
                ownership.create(kube, owner, child)
        return JobResult(JobPhase.RUNNING)
    pods = kube.list("v1", "Pod", owner.namespace, f"job-name={name}")
    stored = None if pods else stored_result(existing)
    if not pods and job_phase(existing) is JobPhase.SUCCEEDED and not isinstance(stored, Success):
        # Its pod, and with it the termination message that held the result, is gone (garbage-collected,
        # its node lost), and no result was stored either. Run it again: outputs are content-addressed,
        # so the same input gives the same result again and nothing stored is overwritten.
        kube.delete("batch/v1", "Job", owner.namespace, name)
        return Outcome(
            State.WAITING,
            "ResultLost",
            f"Job {name} succeeded but its pod is gone with the result; running it again",
        )
    result = job_result(existing, pods, stored)
    failure = result.failure
    if result.phase is JobPhase.FAILED and failure is not None and failure.kind.retryable:
        # Not the data's fault (storage down, credentials wrong): a new Job after a pause, until fixed.
        failed = failed_at(existing)
        if failed is None or seconds_since(failed) >= settings.retry_delay_seconds:
            kube.delete("batch/v1", "Job", owner.namespace, name)
        return Outcome(
            State.WAITING, RETRY_REASONS[failure.kind], f"{failure.message}; retrying with a new Job"
        )
    return result


def stored_result(job: Mapping[str, Any]) -> Success | Failure | None:
    """The result document the Job's command stored (marina.jobs.results), read only once the Job finished."""
    uri = result_location(job)
    if uri is None or job_phase(job) is JobPhase.RUNNING:
        return None
    return results.read_stored(uri)


def forget_old_jobs(kube: KubeApi, owner: builders.Owner, component: str, keep: str) -> None:
    """Delete this owner's finished Jobs of earlier inputs (their results live on in storage); a Job that
    only carries the labels is someone else's."""
    selector = f"{owner.label_key}={owner.name},app.kubernetes.io/component={component}"
    for job in kube.list("batch/v1", "Job", owner.namespace, selector):
        if job["metadata"]["name"] != keep and ownership.owns(owner, job):
            kube.delete("batch/v1", "Job", owner.namespace, job["metadata"]["name"])


def running_outcome(
    result: JobResult,
    reason: str,
    what: str,
    job_name: str,
    fields: Mapping[str, Any],
    progress_uri: str | None = None,
    shards: tuple[int, int] | None = None,
) -> Outcome:
    """A running Job's outcome with what its pod reported at `progress_uri`; with `shards` (done, of), what
    each shard reported beside it, merged, and how many shards are done."""
    if result.problem:
        return Outcome(State.WAITING, "PodNotRunning", f"Job {job_name}: {result.problem}", fields)
    reported = _reported(progress_uri, shards[1] if shards else 0) if progress_uri else None
    if shards is not None:
        reported = {**(reported or {}), "shardsDone": shards[0], "shards": shards[1]}
        what = f"{what}, {shards[0]} of {shards[1]} done"
    if reported is not None:
        fields = {**fields, "progress": reported}
        share = f", {reported['percent']}%" if "percent" in reported else ""
        what = f"{what} ({reported['rows']} rows{share})" if "rows" in reported else what
    return Outcome(State.PROGRESSING, reason, f"Job {job_name} {what}", fields)


def failure_message(result: JobResult, job_name: str) -> str:
    """The status message of a failed Job: the command's own words (or the Job controller's)."""
    return f"Job {job_name}: {result.failure.message if result.failure else 'failed'}"


def _reported(uri: str, shards: int) -> dict[str, Any] | None:
    if not shards:
        return progress.read(uri)
    reports = [progress.read(progress.shard_uri(uri, index)) for index in range(shards)]
    return progress.merged([report for report in reports if report is not None])
