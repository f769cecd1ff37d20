"""TrainingJob reconciliation: one training Job per (spec, dataset version); the result is the status.

`decide` is a pure function of what was observed (`shared.observation`): the TrainingJob, the Dataset it
trains on, then its Job (with parallelism, the Indexed Job of shards first, the reduce once they are
done), the Job's pods, its stored result or progress report, and the Jobs of earlier inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from marina.contract import API_VERSION, MODEL_VERSION_LENGTH
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import MODELS, Settings
from marina.controller.shared import builders, jobs, partials, retention
from marina.controller.shared.conditions import Outcome, State, ready_condition
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.jobs import JobStep, Work, job_plan, run_job
from marina.controller.shared.observation import Observation
from marina.controller.shared.plan import Action, Plan
from marina.controller.shared.reconciler import invalid, settle
from marina.controller.shared.termination import JobResult
from marina.controller.trainingjobs import manifests
from marina.controller.trainingjobs import spec as trainingjob_spec

KIND = "TrainingJob"
TRAINING = Work("train", "Training", "TrainingFailed")
RETENTION = retention.Kind(
    MODELS,
    "models",
    retention.model_versions,
    retention.owns_model,
    lambda status: (status.get("model") or {}).get("sha256"),
    lambda spec: trainingjob_spec.parse(spec).keep_last,
)


def reconcile(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    outcome = settle(kube, settings, body, decide)
    retention.follow(kube, settings, body, outcome, RETENTION)
    partials.collect(kube, settings, body, outcome, MODELS)
    return outcome


def dataset_input(
    seen: Observation, settings: Settings, spec: trainingjob_spec.TrainingJobSpec
) -> tuple[str, str] | Outcome:
    """(version, uri) of the data to train on, or why there is none yet."""
    namespace = seen.namespace
    dataset = seen.child(API_VERSION, "Dataset", spec.dataset)
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


def decide(settings: Settings, seen: Observation) -> Plan:
    body = seen.body
    try:
        spec = trainingjob_spec.parse(body.get("spec"))
    except InvalidSpec as error:
        return Plan(invalid(error))
    owner = builders.Owner.of(body)
    data = dataset_input(seen, settings, spec)
    if isinstance(data, Outcome):
        return Plan(data)
    version, uri = data
    digest = builders.short_hash(spec, version, uri)
    status = body.get("status") or {}
    if status.get("inputsHash") == digest and status.get("phase") == "Succeeded":
        return Plan(trained(status))
    gathered: tuple[Action, ...] = ()
    if spec.parallelism > 1:
        spec = replace(spec, parallelism=jobs.shards_in_flight(seen, owner, digest, spec.parallelism))
        shards = gather_shards(seen, settings, owner, spec, uri, digest, version)
        if isinstance(shards, Plan):
            return shards
        gathered = shards
    job = manifests.train_job(settings, owner, spec, uri, digest)
    job_name = job["metadata"]["name"]
    step = run_job(seen, settings, owner, job)
    progress = (
        None
        if spec.parallelism > 1 or step.starting
        else builders.progress_uri(settings.models_prefix(owner.namespace, owner.name), job_name)
    )
    fields = {"jobName": job_name, "datasetVersion": version, "shards": spec.parallelism}
    return from_job(seen, owner, step, job_name, fields, digest, progress).after(gathered)


def gather_shards(
    seen: Observation,
    settings: Settings,
    owner: builders.Owner,
    spec: trainingjob_spec.TrainingJobSpec,
    uri: str,
    digest: str,
    version: str,
) -> Plan | tuple[Action, ...]:
    """Run the Indexed Job of shards: its plan while it runs (or cannot); once every index succeeded, the
    writes that go before the reduce (forgetting earlier shard Jobs)."""
    job = manifests.shard_job(settings, owner, spec, uri, digest)
    job_name = job["metadata"]["name"]
    fields = {"jobName": job_name, "datasetVersion": version, "shards": spec.parallelism}
    progress = builders.progress_uri(settings.models_prefix(owner.namespace, owner.name), job_name)

    def running(step: JobStep, shards: tuple[int, int]) -> Plan:
        reported = None if step.starting else progress
        return from_job(seen, owner, step, job_name, fields, digest, reported, shards)

    return jobs.gather_shards(seen, settings, owner, job, running)


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
    """The outcome of the Job's step (a Job that just starts reports no progress yet)."""
    count = int(fields.get("shards") or 1)
    if shards is not None:
        doing = f"is gathering statistics in {count} shards"
    else:
        doing = f"is merging the {count} shards' statistics and fitting" if count > 1 else "is training"

    def done(result: JobResult, fields: dict[str, Any]) -> Outcome:
        return trained(succeeded(result, fields, digest))

    return job_plan(seen, owner, step, job_name, fields, TRAINING, doing, done, progress, shards)


def succeeded(result: JobResult, fields: dict[str, Any], digest: str) -> dict[str, Any]:
    """The status fields of a trained model."""
    summary = result.summary
    metrics = {k: v for k, v in (summary.get("metrics") or {}).items() if k in ("mse", "rmse", "mae", "r2")}
    return {
        **fields,
        "phase": "Succeeded",
        "inputsHash": digest,
        "metrics": metrics,
        "bestParameters": summary.get("bestParameters") or summary.get("parameters") or {},
        "model": {"uri": summary.get("uri"), "sha256": summary.get("sha256")},
    }


def trained(fields: Mapping[str, Any]) -> Outcome:
    metrics = fields.get("metrics") or {}
    sha = str((fields.get("model") or {}).get("sha256", ""))
    scores = ", ".join(f"{key}={metrics[key]:.6g}" for key in ("r2", "rmse", "mae") if key in metrics)
    message = (
        f"model {sha[:MODEL_VERSION_LENGTH]} on dataset version {fields.get('datasetVersion')}: {scores}"
    )
    return Outcome(State.READY, "Trained", message, fields)
