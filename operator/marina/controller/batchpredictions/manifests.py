"""A BatchPrediction's children: one `marina predict` Job, or an Indexed Job of shards and the Job that
writes their manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marina.contract import PredictRequest
from marina.controller.batchpredictions.spec import BatchPredictionSpec
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders
from marina.controller.shared.builders import ModelReference, Owner


@dataclass(frozen=True)
class Scoring:
    """What one run scores: the model, the data (`--data`, and the split of a prepared dataset); where
    the resource's runs go (`root`: each run's folder under it, its Jobs' progress and results beside)."""

    model: ModelReference
    data: str
    split: str
    root: str

    def output(self, digest: str) -> str:
        """The run's folder: its parts and manifest.json, named by what it scores."""
        return f"{self.root.rstrip('/')}/{digest}/"


def predict_request(
    spec: BatchPredictionSpec, scoring: Scoring, digest: str, phase: str, progress: str | None
) -> PredictRequest:
    return PredictRequest(
        model=scoring.model.uri,
        sha256=scoring.model.sha256,
        data=scoring.data,
        split=scoring.split,
        output=scoring.output(digest),
        outputs=spec.outputs,
        level=spec.level,
        passthrough=spec.passthrough,
        phase=phase,
        shards=spec.parallelism,
        progress=progress,
        result_file=builders.TERMINATION_LOG,
    )


def _job(
    settings: Settings,
    owner: Owner,
    spec: BatchPredictionSpec,
    scoring: Scoring,
    digest: str,
    role: str,
    phase: str,
) -> dict[str, Any]:
    name = builders.child_name(owner, role, digest)
    progress = builders.progress_uri(scoring.root.rstrip("/"), name)
    args = predict_request(spec, scoring, digest, phase, progress).to_argv()
    container = builders.marina_container(settings, args, spec.resources, builders.DEFAULT_JOB_RESOURCES)
    return builders.job(
        owner,
        name,
        role,
        container,
        backoff_limit=spec.backoff_limit,
        deadline_seconds=spec.active_deadline_seconds,
        digest=digest,
    )


def predict_job(
    settings: Settings, owner: Owner, spec: BatchPredictionSpec, scoring: Scoring, digest: str
) -> dict[str, Any]:
    """The run: the whole scoring in one pod, or with parallelism the manifest of the shards' parts."""
    phase = "manifest" if spec.parallelism > 1 else "all"
    built = _job(settings, owner, spec, scoring, digest, "predict", phase)
    return builders.storing_result(built, scoring.root.rstrip("/"))


def shard_job(
    settings: Settings, owner: Owner, spec: BatchPredictionSpec, scoring: Scoring, digest: str
) -> dict[str, Any]:
    """An Indexed Job of `parallelism` pods, pod i scoring every i-th part of the source."""
    built = _job(settings, owner, spec, scoring, digest, "score", "shard")
    return builders.indexed(built, spec.parallelism, spec.backoff_limit)
