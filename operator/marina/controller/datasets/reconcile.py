"""Dataset reconciliation: one preparation Job per distinct input; its result becomes the status.

`decide` is a pure function of what was observed (`shared.observation`): the Dataset, then its Job, the
Job's pods, its stored result or its progress report, and the Jobs of earlier inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from marina.contract import API_VERSION, MODEL_DEPLOYMENT, REFRESH_ANNOTATION
from marina.controller.datasets import manifests
from marina.controller.datasets import spec as dataset_spec
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import DATASETS, Settings
from marina.controller.shared import builders, jobs, partials, retention, storage_area
from marina.controller.shared.conditions import Outcome, State, is_ready
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.jobs import JobStep, failure_message, forget_old_jobs, run_job, running_outcome
from marina.controller.shared.observation import Observation
from marina.controller.shared.plan import Action, Plan
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
    partials.collect(kube, settings, body, outcome, DATASETS)
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
    inline = manifests.inline_rows_config_map(owner, spec, digest)
    gathered: tuple[Action, ...] = ()
    if spec.parallelism > 1:
        spec = replace(spec, parallelism=jobs.shards_in_flight(seen, owner, digest, spec.parallelism))
        shards = gather_shards(seen, settings, owner, spec, digest, inline)
        if isinstance(shards, Plan):
            return shards
        gathered = shards
    job = manifests.prepare_job(settings, owner, spec, digest)
    name = job["metadata"]["name"]
    step = run_job(seen, settings, owner, job, inline)
    progress = builders.progress_uri(settings.datasets_prefix(owner.namespace, owner.name), name)
    reported = None if step.starting or spec.parallelism > 1 else progress
    fields = {"jobName": name, "shards": spec.parallelism}
    return from_job(seen, owner, step, fields, digest, reported).after(gathered)


def gather_shards(
    seen: Observation,
    settings: Settings,
    owner: builders.Owner,
    spec: dataset_spec.DatasetSpec,
    digest: str,
    inline: Mapping[str, Any] | None,
) -> Plan | tuple[Action, ...]:
    """Run the Indexed Job of shards: its plan while it runs (or cannot); once every index succeeded, the
    writes that go before the reduce (forgetting earlier shard Jobs)."""
    job = manifests.shard_job(settings, owner, spec, digest)
    name = job["metadata"]["name"]
    progress = builders.progress_uri(settings.datasets_prefix(owner.namespace, owner.name), name)

    def running(step: JobStep, shards: tuple[int, int]) -> Plan:
        fields = {"jobName": name, "shards": spec.parallelism}
        return from_job(seen, owner, step, fields, digest, None if step.starting else progress, shards)

    return jobs.gather_shards(seen, settings, owner, job, running, inline)


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
    seen: Observation,
    owner: builders.Owner,
    step: JobStep,
    fields: dict[str, Any],
    digest: str,
    progress: str | None,
    shards: tuple[int, int] | None = None,
) -> Plan:
    """The outcome of the Job's step (a Job that just starts reports no progress yet); with `shards`, of the
    Indexed Job of shards, whose success is not the end."""
    result = step.result
    job_name = fields["jobName"]
    if isinstance(result, Outcome):
        return Plan(result, step.actions)
    if result.phase is JobPhase.RUNNING:
        reason, doing = _doing(int(fields.get("shards") or 1), shards is not None)
        running = running_outcome(seen, result, reason, doing, job_name, fields, progress, shards)
        return Plan(running, step.actions)
    if result.phase is JobPhase.FAILED:
        reason = result.reason or "PrepareFailed"
        return Plan(Outcome(State.FAILED, reason, failure_message(result, job_name), fields))
    summary = {key: result.summary[key] for key in RESULT_FIELDS if key in result.summary}
    # The Jobs of earlier inputs go, shard Jobs too (a run in one pod after sharded ones forgets them).
    forgotten = forget_old_jobs(seen, owner, "prepare", keep=job_name)
    forgotten += forget_old_jobs(seen, owner, "shard", keep=builders.child_name(owner, "shard", digest))
    return Plan(prepared({**summary, **fields, "inputsHash": digest}), forgotten)


def _doing(shards: int, sharing: bool) -> tuple[str, str]:
    """The Progressing reason and words of a preparation Job: its own reason for the shards, so that an
    event marks when they are done and the reduce starts."""
    if sharing:
        return "PreparingShards", f"is reading the source in {shards} shards"
    if shards > 1:
        return "Preparing", f"is merging the {shards} shards into the dataset"
    return "Preparing", "is preparing the data"


def prepared(fields: Mapping[str, Any]) -> Outcome:
    features = max(len(fields.get("columns") or []) - 1, 0)
    rows, uri = fields.get("rows"), fields.get("uri")
    shards = int(fields.get("shards") or 1)
    by = f", prepared by {shards} pods" if shards > 1 else ""
    message = f"version {fields.get('version')}: {rows} rows, {features} features at {uri}{by}"
    return Outcome(State.READY, "Prepared", message, fields)
