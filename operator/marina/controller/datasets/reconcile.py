"""Dataset reconciliation: one preparation Job per distinct input; its result becomes the status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marina.controller.datasets import spec as dataset_spec
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders, retention, storage_area
from marina.controller.shared.conditions import Outcome, State, is_ready
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

KIND = "Dataset"
REFRESH_ANNOTATION = "marina.dev/refresh"  # change it to read a source again (e.g. a CSV replaced in place)
RESULT_FIELDS = (
    "version",
    "sha256",
    "uri",
    "rows",
    "trainRows",
    "testRows",
    "columns",
    "target",
    "statistics",
)


def reconcile(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    outcome = settle(kube, settings, body, decide)
    retention.follow(kube, settings, body, outcome, retention.DATASET)
    return outcome


def inputs_digest(spec: dataset_spec.DatasetSpec, body: Mapping[str, Any]) -> str:
    refresh = (body["metadata"].get("annotations") or {}).get(REFRESH_ANNOTATION, "")
    return builders.short_hash(spec, refresh)


def parse(settings: Settings, namespace: str, body: Mapping[str, Any]) -> dataset_spec.DatasetSpec:
    """The typed spec; a CSV source must lie in the namespace's storage area (or a shared one)."""
    spec = dataset_spec.parse(body.get("spec"))
    if spec.stored_uri is not None:
        areas = settings.csv_areas(namespace)
        storage_area.require_inside(spec.uri_field, spec.stored_uri, areas, settings.shared_prefixes)
    return spec


def decide(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    owner = builders.Owner.of(body)
    try:
        spec = parse(settings, owner.namespace, body)
    except InvalidSpec as error:
        return invalid(error)
    digest = inputs_digest(spec, body)
    status = body.get("status") or {}
    if status.get("inputsHash") == digest and status.get("version") and is_ready(status):
        return prepared(status)
    job = builders.prepare_job(settings, owner, spec, digest)
    job_name = job["metadata"]["name"]
    result = run_job(kube, settings, owner, job, builders.inline_rows_config_map(owner, spec, digest))
    if isinstance(result, Outcome):
        return result
    progress = builders.progress_uri(settings.datasets_prefix(owner.namespace, owner.name), job_name)
    return from_job(kube, owner, result, job_name, digest, progress)


def from_job(
    kube: KubeApi,
    owner: builders.Owner,
    result: JobResult,
    job_name: str,
    digest: str,
    progress: str | None = None,
) -> Outcome:
    if result.phase is JobPhase.RUNNING:
        fields = {"jobName": job_name}
        return running_outcome(result, "Preparing", "is preparing the data", job_name, fields, progress)
    if result.phase is JobPhase.FAILED:
        return Outcome(
            State.FAILED,
            result.reason or "PrepareFailed",
            failure_message(result, job_name),
            {"jobName": job_name},
        )
    fields = {key: result.summary[key] for key in RESULT_FIELDS if key in result.summary}
    forget_old_jobs(kube, owner, "prepare", keep=job_name)
    return prepared({**fields, "jobName": job_name, "inputsHash": digest})


def prepared(fields: Mapping[str, Any]) -> Outcome:
    features = max(len(fields.get("columns") or []) - 1, 0)
    rows, uri = fields.get("rows"), fields.get("uri")
    message = f"version {fields.get('version')}: {rows} rows, {features} features at {uri}"
    return Outcome(State.READY, "Prepared", message, fields)
