"""BatchPrediction reconciliation: one scoring run per (spec, model, data); its manifest is the status.

`decide` is a pure function of what was observed (`shared.observation`): the BatchPrediction, the
TrainingJob or ModelDeployment whose model it scores (unless given by URI), the Dataset whose split it
scores (unless it reads CSV or Parquet objects), then its Job (with parallelism, the Indexed Job of shards
first, the Job writing their manifest once they are done), the Job's pods and its stored result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marina.contract import API_VERSION, MODEL_VERSION_LENGTH
from marina.controller.batchpredictions import manifests
from marina.controller.batchpredictions import spec as batch_spec
from marina.controller.batchpredictions.manifests import Scoring
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import PREDICTIONS, Settings
from marina.controller.shared import builders, storage_area
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.conditions import Outcome, State, ready_condition
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.jobs import JobStep, Work, forget_old_jobs, job_plan, run_job
from marina.controller.shared.observation import Observation
from marina.controller.shared.plan import Action, Plan
from marina.controller.shared.reconciler import invalid, settle
from marina.controller.shared.termination import JobPhase, JobResult

KIND = "BatchPrediction"
SCORING = Work("predict", "Scoring", "ScoringFailed")


def reconcile(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    return settle(kube, settings, body, decide)


def parse(settings: Settings, namespace: str, body: Mapping[str, Any]) -> batch_spec.BatchPredictionSpec:
    """The typed spec; every URI it names must lie in the namespace's own areas (or a shared one)."""
    spec = batch_spec.parse(body.get("spec"))
    shared = settings.shared_prefixes
    if spec.model.uri is not None:
        storage_area.require_inside("spec.model.uri", spec.model.uri, settings.model_areas(namespace), shared)
    if spec.source.uri is not None:
        areas = settings.csv_areas(namespace)
        storage_area.require_inside(spec.source.uri_field, spec.source.uri, areas, shared)
    if spec.output_uri is not None:
        storage_area.require_inside(
            "spec.output.uri", spec.output_uri, (settings.area(PREDICTIONS, namespace),)
        )
    return spec


def model_to_score(seen: Observation, spec: batch_spec.BatchPredictionSpec) -> ModelReference | Outcome:
    """The model: given by URI, a TrainingJob's latest, or what a ModelDeployment serves now."""
    choice = spec.model
    if choice.uri is not None and choice.sha256 is not None:
        return ModelReference(choice.uri, choice.sha256)
    kind, name = (
        ("TrainingJob", choice.training_job)
        if choice.training_job
        else ("ModelDeployment", choice.model_deployment)
    )
    assert name is not None
    found = seen.child(API_VERSION, kind, name)
    if found is None:
        return Outcome(
            State.WAITING,
            f"{kind}NotFound",
            f"{kind} {name} not found in namespace {seen.namespace}; scoring starts once it has a model",
        )
    model = ModelReference.of((found.get("status") or {}).get("model"))
    if model is None:
        why = ready_condition(found.get("status")).get("reason") or "no model yet"
        return Outcome(
            State.PROGRESSING,
            "WaitingForModel",
            f"{kind} {name} has no model yet ({why}); scoring starts when it has one",
        )
    return model


def data_to_score(
    seen: Observation, settings: Settings, spec: batch_spec.BatchPredictionSpec
) -> tuple[str, dict[str, Any]] | Outcome:
    """(`--data`, status.source) of the rows to score, or why there are none yet."""
    source = spec.source
    if source.uri is not None:
        return source.uri, {"uri": source.uri}
    assert source.dataset is not None
    if source.version is not None:
        uri = f"{settings.datasets_prefix(seen.namespace, source.dataset)}/{source.version}"
        return uri, {"uri": uri, "version": source.version, "split": source.split}
    dataset = seen.child(API_VERSION, "Dataset", source.dataset)
    if dataset is None:
        return Outcome(
            State.WAITING,
            "DatasetNotFound",
            f"Dataset {source.dataset} not found in namespace {seen.namespace}; scoring starts when it does",
        )
    status = dataset.get("status") or {}
    if not status.get("version") or not status.get("uri"):
        why = ready_condition(status).get("reason") or "not prepared yet"
        return Outcome(
            State.PROGRESSING,
            "WaitingForDataset",
            f"Dataset {source.dataset} has no version yet ({why}); scoring starts when it has one",
        )
    uri = str(status["uri"])
    return uri, {"uri": uri, "version": str(status["version"]), "split": source.split}


def decide(settings: Settings, seen: Observation) -> Plan:
    body = seen.body
    owner = builders.Owner.of(body)
    try:
        spec = parse(settings, owner.namespace, body)
    except InvalidSpec as error:
        return Plan(invalid(error))
    model = model_to_score(seen, spec)
    if isinstance(model, Outcome):
        return Plan(model)
    data = data_to_score(seen, settings, spec)
    if isinstance(data, Outcome):
        return Plan(data)
    uri, source = data
    digest = builders.short_hash(spec, model.sha256, source)
    status = body.get("status") or {}
    fields = {"model": model.as_status(), "source": source}
    if status.get("inputsHash") == digest and status.get("phase") == "Succeeded":
        return Plan(scored(status))
    root = spec.output_uri or f"{settings.area(PREDICTIONS, owner.namespace)}{owner.name}/"
    scoring = Scoring(model, uri, spec.source.split, root)
    gathered: tuple[Action, ...] = ()
    if spec.parallelism > 1:
        shards = score_shards(seen, settings, owner, spec, scoring, digest, fields)
        if isinstance(shards, Plan):
            return shards
        gathered = shards
    job = manifests.predict_job(settings, owner, spec, scoring, digest)
    job_name = job["metadata"]["name"]
    step = run_job(seen, settings, owner, job)
    progress = (
        None if spec.parallelism > 1 or step.starting else builders.progress_uri(root.rstrip("/"), job_name)
    )
    return from_job(seen, owner, step, job_name, {**fields, "jobName": job_name}, digest, progress).after(
        gathered
    )


def score_shards(
    seen: Observation,
    settings: Settings,
    owner: builders.Owner,
    spec: batch_spec.BatchPredictionSpec,
    scoring: Scoring,
    digest: str,
    fields: dict[str, Any],
) -> Plan | tuple[Action, ...]:
    """The Indexed Job of shards: its plan while it runs (or cannot); once every index succeeded, the
    writes that go before the manifest's Job (forgetting earlier shard Jobs)."""
    job = manifests.shard_job(settings, owner, spec, scoring, digest)
    job_name = job["metadata"]["name"]
    step = run_job(seen, settings, owner, job)
    if not isinstance(step.result, Outcome) and step.result.phase is JobPhase.SUCCEEDED:
        return forget_old_jobs(seen, owner, "score", keep=job_name)
    found = seen.child("batch/v1", "Job", job_name) or {}
    done = int((found.get("status") or {}).get("succeeded") or 0)
    progress = None if step.starting else builders.progress_uri(scoring.root.rstrip("/"), job_name)
    running = {**fields, "jobName": job_name}
    return from_job(seen, owner, step, job_name, running, digest, progress, (done, spec.parallelism))


def from_job(
    seen: Observation,
    owner: builders.Owner,
    step: JobStep,
    job_name: str,
    fields: dict[str, Any],
    digest: str,
    progress: str | None = None,
    shards: tuple[int, int] | None = None,
) -> Plan:
    doing = f"is scoring in {shards[1]} shards" if shards else "is scoring"

    def done(result: JobResult, fields: dict[str, Any]) -> Outcome:
        return scored(succeeded(result, fields, digest))

    return job_plan(seen, owner, step, job_name, fields, SCORING, doing, done, progress, shards)


def succeeded(result: JobResult, fields: dict[str, Any], digest: str) -> dict[str, Any]:
    summary = result.summary
    manifest = str(summary.get("manifest") or "")
    outside = summary.get("extrapolated")
    return {
        **fields,
        "phase": "Succeeded",
        "inputsHash": digest,
        "rows": summary.get("rows"),
        "parts": summary.get("parts"),
        "uri": manifest.rsplit("/", 1)[0] + "/" if manifest else None,
        "manifest": {"uri": manifest, "sha256": summary.get("sha256")},
        **({"extrapolated": sum(int(v) for v in outside.values())} if isinstance(outside, Mapping) else {}),
    }


def scored(fields: Mapping[str, Any]) -> Outcome:
    model = str((fields.get("model") or {}).get("sha256", ""))[:MODEL_VERSION_LENGTH]
    message = f"{fields.get('rows')} rows scored by model {model} into {fields.get('uri')}"
    return Outcome(State.READY, "Scored", message, fields)
