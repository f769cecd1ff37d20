"""A ModelDeployment's spec: which model to serve, how many replicas, how to roll out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina import contract
from marina.controller.fields import Fields, InvalidSpec, Resources


@dataclass(frozen=True)
class ModelSource:
    training_job: str | None = None
    uri: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int


@dataclass(frozen=True)
class ModelDeploymentSpec:
    model: ModelSource
    replicas: int
    resources: Resources
    autoscaling: Autoscaling | None
    progress_deadline_seconds: int


def parse(spec: Mapping[str, Any] | None) -> ModelDeploymentSpec:
    fields = Fields(spec)
    autoscaling = _autoscaling(fields.section("autoscaling")) if fields.has("autoscaling") else None
    return ModelDeploymentSpec(
        model=_model(fields.section("model")),
        replicas=fields.integer("replicas", 1, contract.REPLICAS),
        resources=fields.resources(),
        autoscaling=autoscaling,
        progress_deadline_seconds=fields.section("rollout").integer(
            "progressDeadlineSeconds", 120, contract.PROGRESS_DEADLINE_SECONDS
        ),
    )


def _model(model: Fields) -> ModelSource:
    if model.has("trainingJob") == model.has("uri"):
        raise InvalidSpec(model.path, "set exactly one of trainingJob or uri (with sha256)")
    if model.has("trainingJob"):
        if model.has("sha256"):
            raise InvalidSpec(model.where("sha256"), "goes with uri, not with trainingJob")
        return ModelSource(training_job=model.required_string("trainingJob"))
    return ModelSource(
        uri=model.required_string("uri", pattern=contract.S3_URI_PATTERN),
        sha256=model.required_string("sha256", pattern=contract.SHA256_PATTERN),
    )


def _autoscaling(autoscaling: Fields) -> Autoscaling:
    minimum = autoscaling.integer("minReplicas", 1, contract.MIN_REPLICAS)
    maximum = autoscaling.integer("maxReplicas", minimum, contract.MAX_REPLICAS)
    if not autoscaling.has("maxReplicas"):
        raise InvalidSpec(autoscaling.where("maxReplicas"), "is required")
    if minimum > maximum:
        raise InvalidSpec(autoscaling.where("minReplicas"), f"{minimum} exceeds maxReplicas {maximum}")
    return Autoscaling(
        minimum,
        maximum,
        autoscaling.integer("targetCPUUtilizationPercentage", 80, contract.TARGET_CPU_PERCENT),
    )
