"""Dataset reconciliation: one preparation Job per distinct input; its result becomes the status.

`decide` is a pure function of what was observed (`shared.observation`): the Dataset, then its Job, the
Job's pods, its stored result or its progress report, and the Jobs of earlier inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marina.contract import API_VERSION, MODEL_DEPLOYMENT, REFRESH_ANNOTATION
from marina.controller.datasets import manifests
from marina.controller.datasets import spec as dataset_spec
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import DATASETS, Settings
from marina.controller.shared import builders, retention, storage_area
from marina.controller.shared.conditions import Outcome, State, is_ready
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.jobs import JobStep, failure_message, forget_old_jobs, run_job, running_outcome
from marina.controller.shared.observation import Observation
from marina.controller.shared.plan import Plan
from marina.controller.shared.reconciler import invalid, settle
from marina.controller.shared.termination import JobPhase

KIND = "Dataset"
RETENTION = retention.Kind(
    DATASETS,
    "dataset versions",
    retention.dataset_versions,
    retention.owns_dataset,
    lambda status: status.get("version"),
    lambda spec: dataset_spec.parse(spec).keep_last,
    data=True,
)
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
    retention.follow(kube, settings, body, outcome, RETENTION)
    return outcome


def inputs_digest(spec: dataset_spec.DatasetSpec, body: Mapping[str, Any]) -> str:
    refresh = (body["metadata"].get("annotations") or {}).get(REFRESH_ANNOTATION, "")
    return builders.short_hash(spec, refresh, *([spec.served] if spec.served is not None else []))


def parse(settings: Settings, namespace: str, body: Mapping[str, Any]) -> dataset_spec.DatasetSpec:
    """The typed spec; a CSV source must lie in the namespace's storage area (or a shared one)."""
    spec = dataset_spec.parse(body.get("spec"))
    if spec.stored_uri is not None:
        areas = settings.csv_areas(namespace)
        storage_area.require_inside(spec.uri_field, spec.stored_uri, areas, settings.shared_prefixes)
    return spec


def decide(settings: Settings, seen: Observation) -> Plan:
    body = seen.body
    owner = builders.Owner.of(body)
    try:
        spec = parse(settings, owner.namespace, body)
    except InvalidSpec as error:
        return Plan(invalid(error))
    digest = inputs_digest(spec, body)
    status = body.get("status") or {}
    if status.get("inputsHash") == digest and status.get("version") and is_ready(status):
        return Plan(prepared(status))
    waiting = served_deployment_missing(seen, spec)
    if waiting is not None:
        return Plan(waiting)
    job = manifests.prepare_job(settings, owner, spec, digest)
    name = job["metadata"]["name"]
    step = run_job(seen, settings, owner, job, manifests.inline_rows_config_map(owner, spec, digest))
    progress = builders.progress_uri(settings.datasets_prefix(owner.namespace, owner.name), name)
    return from_job(seen, owner, step, name, digest, None if step.starting else progress)


def served_deployment_missing(seen: Observation, spec: dataset_spec.DatasetSpec) -> Outcome | None:
    """Before a preparation that reads served rows: why not yet, when their ModelDeployment does not
    exist (a version already prepared from it stays Ready)."""
    if spec.served is None:
        return None
    name = spec.served.model_deployment
    if seen.child(API_VERSION, MODEL_DEPLOYMENT.kind, name) is not None:
        return None
    return Outcome(
        State.WAITING,
        "ModelDeploymentNotFound",
        f"{spec.served.field}: ModelDeployment {name} not found in namespace {seen.namespace}; preparing "
        "starts once it exists",
    )


def from_job(
    seen: Observation, owner: builders.Owner, step: JobStep, job_name: str, digest: str, progress: str | None
) -> Plan:
    """The outcome of the Job's step (a Job that just starts reports no progress yet)."""
    result = step.result
    if isinstance(result, Outcome):
        return Plan(result, step.actions)
    if result.phase is JobPhase.RUNNING:
        fields = {"jobName": job_name}
        running = running_outcome(
            seen, result, "Preparing", "is preparing the data", job_name, fields, progress
        )
        return Plan(running, step.actions)
    if result.phase is JobPhase.FAILED:
        reason = result.reason or "PrepareFailed"
        return Plan(Outcome(State.FAILED, reason, failure_message(result, job_name), {"jobName": job_name}))
    fields = {key: result.summary[key] for key in RESULT_FIELDS if key in result.summary}
    forgotten = forget_old_jobs(seen, owner, "prepare", keep=job_name)
    return Plan(prepared({**fields, "jobName": job_name, "inputsHash": digest}), forgotten)


def prepared(fields: Mapping[str, Any]) -> Outcome:
    features = max(len(fields.get("columns") or []) - 1, 0)
    rows, uri = fields.get("rows"), fields.get("uri")
    message = f"version {fields.get('version')}: {rows} rows, {features} features at {uri}"
    return Outcome(State.READY, "Prepared", message, fields)
