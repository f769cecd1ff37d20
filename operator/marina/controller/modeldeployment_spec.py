"""A ModelDeployment's spec: which model to serve, how many replicas, how to roll out, how to watch drift."""

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
class Monitoring:
    """Drift monitoring (`spec.monitoring`; absent: off). `on_drift` is recorded for the retraining step
    (`Retrain`); until that exists every drift is reported the way `Alert` reports it."""

    interval_seconds: int = 60
    min_rows: int = 1000
    psi_threshold: float = 0.2
    on_drift: str = "Alert"


@dataclass(frozen=True)
class ModelDeploymentSpec:
    model: ModelSource
    replicas: int
    resources: Resources
    autoscaling: Autoscaling | None
    progress_deadline_seconds: int
    monitoring: Monitoring | None = None


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
        monitoring=_monitoring(fields.section("monitoring")) if fields.has("monitoring") else None,
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


def _monitoring(monitoring: Fields) -> Monitoring:
    defaults = Monitoring()
    on_drift = monitoring.string("onDrift", defaults.on_drift, choices=contract.DRIFT_ACTIONS)
    assert on_drift is not None
    return Monitoring(
        interval_seconds=monitoring.integer(
            "intervalSeconds", defaults.interval_seconds, contract.MONITORING_INTERVAL_SECONDS
        ),
        min_rows=monitoring.integer("minRows", defaults.min_rows, contract.MONITORING_MIN_ROWS),
        psi_threshold=monitoring.number("psiThreshold", defaults.psi_threshold, contract.PSI_THRESHOLD),
        on_drift=on_drift,
    )
