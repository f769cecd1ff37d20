"""Deciding about a kind's Job from what was observed of it: create it, read its typed result, run it
again when its result is lost or its failure is worth a new Job, forget the Jobs of earlier inputs, and
what a running Job's pods report. Pure functions of an `Observation`; the writes go into the plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from marina.contract import FailureKind, Success
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders, ownership
from marina.controller.shared.conditions import Outcome, State
from marina.controller.shared.observation import Observation, ProgressReport, StoredResult
from marina.controller.shared.plan import Action, Create, Delete, Plan
from marina.controller.shared.termination import (
    JobPhase,
    JobResult,
    failed_at,
    job_phase,
    job_result,
    result_location,
)
from marina.jobs import progress

# The condition reason of each failure worth a new Job (`FailureKind.retryable`); the rest are permanent.
RETRY_REASONS = {
    FailureKind.STORAGE_UNAVAILABLE: "StorageUnavailable",
    FailureKind.STORAGE_DENIED: "StorageAccessDenied",
    FailureKind.STORAGE_CONFIG: "CredentialsMissing",
}


@dataclass(frozen=True)
class JobStep:
    """Where a Job stands: its result, or the outcome that stands in for one (it cannot start yet, or it
    runs again); and the writes that get it there."""

    result: JobResult | Outcome
    actions: tuple[Action, ...] = ()

    @property
    def starting(self) -> bool:
        """The Job is created by this reconcile (nothing of it was there to read)."""
        return any(isinstance(action, Create) for action in self.actions)


def run_job(
    seen: Observation,
    settings: Settings,
    owner: builders.Owner,
    job: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> JobStep:
    """Create the Job (and `extra`, a child it mounts) if absent, else read its result."""
    name = job["metadata"]["name"]
    existing = seen.child("batch/v1", "Job", name)
    ownership.require_owned(owner, existing)
    if existing is None:
        blocked = seen.blocked()
        if blocked is not None:
            return JobStep(blocked)
        return JobStep(JobResult(JobPhase.RUNNING), tuple(Create(c) for c in (extra, job) if c is not None))
    pods = seen.children("v1", "Pod", f"job-name={name}")
    uri = result_location(existing)
    finished = job_phase(existing) is not JobPhase.RUNNING
    stored = seen.get(StoredResult(uri)) if not pods and finished and uri is not None else None
    again = Delete("batch/v1", "Job", name)
    if not pods and job_phase(existing) is JobPhase.SUCCEEDED and not isinstance(stored, Success):
        # Its pod, and with it the termination message that held the result, is gone (garbage-collected,
        # its node lost), and no result was stored either. Run it again: outputs are content-addressed,
        # so the same input gives the same result again and nothing stored is overwritten.
        lost = f"Job {name} succeeded but its pod is gone with the result; running it again"
        return JobStep(Outcome(State.WAITING, "ResultLost", lost), (again,))
    result = job_result(existing, pods, stored)
    failure = result.failure
    if result.phase is JobPhase.FAILED and failure is not None and failure.kind.retryable:
        # Not the data's fault (storage down, credentials wrong): a new Job after a pause, until fixed.
        failed = failed_at(existing)
        paused = failed is None or seen.seconds_since(failed) >= settings.retry_delay_seconds
        retry = Outcome(
            State.WAITING, RETRY_REASONS[failure.kind], f"{failure.message}; retrying with a new Job"
        )
        return JobStep(retry, (again,) if paused else ())
    return JobStep(result)


def gather_shards(
    seen: Observation,
    settings: Settings,
    owner: builders.Owner,
    job: Mapping[str, Any],
    running: Callable[[JobStep, tuple[int, int]], Plan],
    extra: Mapping[str, Any] | None = None,
) -> Plan | tuple[Action, ...]:
    """Run an Indexed Job of shards (`builders.indexed`) before its reduce: while it runs (or cannot),
    `running(its step, (indexes done, of))` is the plan; once every index succeeded, the writes that go
    before the reduce (forgetting the owner's shard Jobs of earlier inputs)."""
    name = job["metadata"]["name"]
    step = run_job(seen, settings, owner, job, extra)
    if not isinstance(step.result, Outcome) and step.result.phase is JobPhase.SUCCEEDED:
        component = job["metadata"]["labels"][builders.COMPONENT_LABEL]
        return forget_old_jobs(seen, owner, component, keep=name)
    return running(step, (shards_done(seen, name), int(job["spec"]["completions"])))


def shards_in_flight(seen: Observation, owner: builders.Owner, digest: str, parallelism: int) -> int:
    """The shard count of a run: a sharded run already started keeps its own (parallelism is not an input,
    so changing it mid-run is not a new run), and its reduce must ask for as many partial results as there
    are shards, not the new value, or it would wait for shards that never ran."""
    job = seen.child("batch/v1", "Job", builders.child_name(owner, "shard", digest)) or {}
    started = int((job.get("spec") or {}).get("completions") or 0)
    return started if started > 1 else parallelism


def shards_done(seen: Observation, job_name: str) -> int:
    """Indexes of an Indexed Job that succeeded (the Job controller counts them)."""
    job = seen.child("batch/v1", "Job", job_name) or {}
    return int((job.get("status") or {}).get("succeeded") or 0)


def forget_old_jobs(
    seen: Observation, owner: builders.Owner, component: str, keep: str
) -> tuple[Action, ...]:
    """Delete this owner's finished Jobs of earlier inputs (their results live on in storage); a Job that
    only carries the labels is someone else's."""
    selector = f"{owner.label_key}={owner.name},{builders.COMPONENT_LABEL}={component}"
    return tuple(
        Delete("batch/v1", "Job", job["metadata"]["name"])
        for job in seen.children("batch/v1", "Job", selector)
        if job["metadata"]["name"] != keep and ownership.owns(owner, job)
    )


def running_outcome(
    seen: Observation,
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
    reported = _reported(seen, progress_uri, shards[1] if shards else 0) if progress_uri else None
    if shards is not None:
        reported = {**(reported or {}), "shardsDone": shards[0], "shards": shards[1]}
        what = f"{what}, {shards[0]} of {shards[1]} done"
    if reported is not None:
        fields = {**fields, "progress": reported}
        share = f", {reported['percent']}%" if "percent" in reported else ""
        what = f"{what} ({reported['rows']} rows{share})" if "rows" in reported else what
    return Outcome(State.PROGRESSING, reason, f"Job {job_name} {what}", fields)


@dataclass(frozen=True)
class Work:
    """What a kind's Job does, in its status's words."""

    step: str  # the Job's step (`builders.job_name`): older Jobs of it go once one succeeds
    reason: str  # the Progressing reason while it runs ("Training")
    failed: str  # the Failed reason when the command names none ("TrainingFailed")


def job_times(seen: Observation, job_name: str) -> dict[str, str]:
    job = seen.child("batch/v1", "Job", job_name) or {}
    status = job.get("status") or {}
    return {key: status[key] for key in ("startTime", "completionTime") if status.get(key)}


def job_plan(
    seen: Observation,
    owner: builders.Owner,
    step: JobStep,
    job_name: str,
    fields: Mapping[str, Any],
    work: Work,
    doing: str,
    done: Callable[[JobResult, dict[str, Any]], Outcome],
    progress_uri: str | None = None,
    shards: tuple[int, int] | None = None,
) -> Plan:
    """The plan of a kind whose status follows one Job (phase Running, Failed or Succeeded, with the Job's
    times): `doing` says what it does while it runs, `done` makes the outcome of its success."""
    if isinstance(step.result, Outcome):
        return Plan(step.result, step.actions)
    result = step.result
    fields = {**fields, **job_times(seen, job_name)}
    if result.phase is JobPhase.RUNNING:
        running = {**fields, "phase": "Running"}
        outcome = running_outcome(seen, result, work.reason, doing, job_name, running, progress_uri, shards)
        return Plan(outcome, step.actions)
    if result.phase is JobPhase.FAILED:
        message = failure_message(result, job_name)
        return Plan(
            Outcome(State.FAILED, result.reason or work.failed, message, {**fields, "phase": "Failed"})
        )
    return Plan(done(result, fields), forget_old_jobs(seen, owner, work.step, keep=job_name))


def failure_message(result: JobResult, job_name: str) -> str:
    """The status message of a failed Job: the command's own words (or the Job controller's)."""
    return f"Job {job_name}: {result.failure.message if result.failure else 'failed'}"


def _reported(seen: Observation, uri: str, shards: int) -> dict[str, Any] | None:
    if not shards:
        found: dict[str, Any] | None = seen.get(ProgressReport(uri))
        return found
    reports = [seen.get(ProgressReport(progress.shard_uri(uri, index))) for index in range(shards)]
    return progress.merged([report for report in reports if report is not None])
