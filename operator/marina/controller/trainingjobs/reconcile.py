"""TrainingJob reconciliation: one training Job per (spec, dataset version); the result is the status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marina.contract import MODEL_VERSION_LENGTH
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders, retention
from marina.controller.shared.conditions import Outcome, State, ready_condition
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.reconciler import (
    failure_message,
    forget_old_jobs,
    invalid,
    run_job,
    running_outcome,
    settle,
)
from marina.controller.shared.termination import JobPhase, JobResult
from marina.controller.trainingjobs import spec as trainingjob_spec

KIND = "TrainingJob"


def reconcile(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    outcome = settle(kube, settings, body, decide)
    retention.follow(kube, settings, body, outcome, retention.MODEL)
    return outcome


def dataset_input(
    kube: KubeApi, settings: Settings, namespace: str, spec: trainingjob_spec.TrainingJobSpec
) -> tuple[str, str] | Outcome:
    """(version, uri) of the data to train on, or why there is none yet."""
    dataset = kube.get(builders.API_VERSION, "Dataset", namespace, spec.dataset)
    if dataset is None:
        return Outcome(
            State.WAITING,
            "DatasetNotFound",
            f"Dataset {spec.dataset} not found in namespace {namespace}; training starts once it exists",
        )
    if spec.dataset_version is not None:
        return (
            spec.dataset_version,
            f"{settings.datasets_prefix(namespace, spec.dataset)}/{spec.dataset_version}",
        )
    status = dataset.get("status") or {}
    if not status.get("version") or not status.get("uri"):
        why = ready_condition(status).get("reason") or "not prepared yet"
        # Upstream work in progress: followed by its events (and the re-check timer), not an error.
        return Outcome(
            State.PROGRESSING,
            "WaitingForDataset",
            f"Dataset {spec.dataset} has no version yet ({why}); training starts when it has one",
        )
    return str(status["version"]), str(status["uri"])


def decide(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    try:
        spec = trainingjob_spec.parse(body.get("spec"))
    except InvalidSpec as error:
        return invalid(error)
    owner = builders.Owner.of(body)
    data = dataset_input(kube, settings, owner.namespace, spec)
    if isinstance(data, Outcome):
        return data
    version, uri = data
    digest = builders.short_hash(spec, version, uri)
    status = body.get("status") or {}
    if status.get("inputsHash") == digest and status.get("phase") == "Succeeded":
        return trained(status)
    if spec.parallelism > 1:
        shards = gather_shards(kube, settings, owner, spec, uri, digest, version)
        if shards is not None:
            return shards
    job = builders.train_job(settings, owner, spec, uri, digest)
    job_name = job["metadata"]["name"]
    result = run_job(kube, settings, owner, job)
    if isinstance(result, Outcome):
        return result
    progress = (
        None
        if spec.parallelism > 1
        else builders.progress_uri(settings.models_prefix(owner.namespace, owner.name), job_name)
    )
    fields = {"jobName": job_name, "datasetVersion": version}
    return from_job(kube, owner, result, job_name, fields, digest, progress)


def gather_shards(
    kube: KubeApi,
    settings: Settings,
    owner: builders.Owner,
    spec: trainingjob_spec.TrainingJobSpec,
    uri: str,
    digest: str,
    version: str,
) -> Outcome | None:
    """Run the Indexed Job of shards; None once every index succeeded (then the reduce runs)."""
    job = builders.shard_job(settings, owner, spec, uri, digest)
    job_name = job["metadata"]["name"]
    result = run_job(kube, settings, owner, job)
    if isinstance(result, Outcome):
        return result
    fields = {"jobName": job_name, "datasetVersion": version, "shards": spec.parallelism}
    if result.phase is JobPhase.SUCCEEDED:
        forget_old_jobs(kube, owner, "shard", keep=job_name)
        return None
    progress = builders.progress_uri(settings.models_prefix(owner.namespace, owner.name), job_name)
    shards = (shards_done(kube, owner, job_name), spec.parallelism)
    return from_job(kube, owner, result, job_name, fields, digest, progress, shards)


def shards_done(kube: KubeApi, owner: builders.Owner, job_name: str) -> int:
    """Indexes of the shard Job that succeeded (the Job controller counts them)."""
    job = kube.get("batch/v1", "Job", owner.namespace, job_name) or {}
    return int((job.get("status") or {}).get("succeeded") or 0)


def job_times(kube: KubeApi, owner: builders.Owner, job_name: str) -> dict[str, str]:
    job = kube.get("batch/v1", "Job", owner.namespace, job_name) or {}
    status = job.get("status") or {}
    return {key: status[key] for key in ("startTime", "completionTime") if status.get(key)}


def from_job(
    kube: KubeApi,
    owner: builders.Owner,
    result: JobResult,
    job_name: str,
    fields: dict[str, Any],
    digest: str,
    progress: str | None = None,
    shards: tuple[int, int] | None = None,
) -> Outcome:
    fields = {**fields, **job_times(kube, owner, job_name)}
    if result.phase is JobPhase.RUNNING:
        doing = (
            f"is gathering statistics in {fields['shards']} shards" if "shards" in fields else "is training"
        )
        running = {**fields, "phase": "Running"}
        return running_outcome(result, "Training", doing, job_name, running, progress, shards)
    if result.phase is JobPhase.FAILED:
        return Outcome(
            State.FAILED,
            result.reason or "TrainingFailed",
            failure_message(result, job_name),
            {**fields, "phase": "Failed"},
        )
    summary = result.summary
    fields.update(
        {
            "phase": "Succeeded",
            "inputsHash": digest,
            "metrics": {
                k: v for k, v in (summary.get("metrics") or {}).items() if k in ("mse", "rmse", "mae", "r2")
            },
            "bestParameters": summary.get("bestParameters") or summary.get("parameters") or {},
            "model": {"uri": summary.get("uri"), "sha256": summary.get("sha256")},
        }
    )
    forget_old_jobs(kube, owner, "train", keep=job_name)
    return trained(fields)


def trained(fields: Mapping[str, Any]) -> Outcome:
    metrics = fields.get("metrics") or {}
    sha = str((fields.get("model") or {}).get("sha256", ""))
    scores = ", ".join(f"{key}={metrics[key]:.6g}" for key in ("r2", "rmse", "mae") if key in metrics)
    message = (
        f"model {sha[:MODEL_VERSION_LENGTH]} on dataset version {fields.get('datasetVersion')}: {scores}"
    )
    return Outcome(State.READY, "Trained", message, fields)
