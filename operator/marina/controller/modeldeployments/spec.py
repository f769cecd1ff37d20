"""A ModelDeployment's spec: which model to serve, how many replicas, how to roll out, how to watch drift."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina import contract
from marina.controller.shared.fields import Fields, InvalidSpec, Resources


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
    #: How long the HPA keeps the highest recent recommendation before scaling down (Kubernetes' default).
    scale_down_stabilization_seconds: int = 300


@dataclass(frozen=True)
class Monitoring:
    """Drift monitoring (`spec.monitoring`; absent: off). `on_drift: Retrain` also refreshes the Dataset
    behind the served TrainingJob, within the limits of `Retraining`."""

    interval_seconds: int = 60
    min_rows: int = 1000
    psi_threshold: float = 0.2
    on_drift: str = "Alert"


@dataclass(frozen=True)
class CanaryStep:
    """Run the canary at `weight` percent of spec.replicas (at least one pod) for `pause_seconds`."""

    weight: int
    pause_seconds: int


@dataclass(frozen=True)
class Analysis:
    """What each canary step must show over its pause, canary against stable. The prediction shift is
    |canary mean - stable mean| / stable standard deviation of the predictions both answered in the
    step: the two models' reference bins are each their own training quantiles, so a PSI would need a
    shared binning, and a shift in the stable's own spread reads the same whatever the target's scale."""

    max_error_rate: float = 0.01
    max_p99_latency_seconds: float = 1.0
    max_prediction_shift: float = 1.0
    min_requests: int = 20


DEFAULT_CANARY_STEPS = (CanaryStep(20, 60), CanaryStep(50, 60))


@dataclass(frozen=True)
class Rollout:
    """`spec.rollout`: RollingUpdate replaces the pods in place; Canary runs the new model beside the
    stable one through `steps` (analysed after each pause) before the stable is updated."""

    strategy: str = "RollingUpdate"
    steps: tuple[CanaryStep, ...] = DEFAULT_CANARY_STEPS
    analysis: Analysis = Analysis()

    @property
    def canary(self) -> bool:
        return self.strategy == "Canary"


@dataclass(frozen=True)
class Retraining:
    """The limits on refreshing the Dataset (`spec.retraining`), whatever triggers it (drift or the
    schedule): at most `max_per_day` refreshes a UTC day, `cooldown_seconds` apart; `every_seconds` (None:
    no schedule) refreshes it that long after the last refresh even without drift."""

    cooldown_seconds: int = 3600
    max_per_day: int = 4
    every_seconds: int | None = None


@dataclass(frozen=True)
class Promotion:
    """The gate before a new model replaces the serving one (`spec.promotion`). `IfBetter` scores both on
    the new model's test split and admits it only when its `metric` is no worse than the serving model's,
    within `tolerance` (relative for rmse and mae, absolute for r2)."""

    policy: str = "Always"
    metric: str = "rmse"
    tolerance: float = 0.0


@dataclass(frozen=True)
class ModelDeploymentSpec:
    model: ModelSource
    replicas: int
    resources: Resources
    autoscaling: Autoscaling | None
    progress_deadline_seconds: int
    monitoring: Monitoring | None = None
    rollout: Rollout = Rollout()
    retraining: Retraining = Retraining()
    promotion: Promotion = Promotion()

    @property
    def retrains(self) -> bool:
        """Whether the operator ever refreshes the Dataset: on drift, or on a schedule."""
        on_drift = self.monitoring is not None and self.monitoring.on_drift == "Retrain"
        return on_drift or self.retraining.every_seconds is not None


def parse(spec: Mapping[str, Any] | None) -> ModelDeploymentSpec:
    fields = Fields(spec)
    autoscaling = _autoscaling(fields.section("autoscaling")) if fields.has("autoscaling") else None
    parsed = ModelDeploymentSpec(
        model=_model(fields.section("model")),
        replicas=fields.integer("replicas", 1, contract.REPLICAS),
        resources=fields.resources(),
        autoscaling=autoscaling,
        progress_deadline_seconds=fields.section("rollout").integer(
            "progressDeadlineSeconds", 120, contract.PROGRESS_DEADLINE_SECONDS
        ),
        monitoring=_monitoring(fields.section("monitoring")) if fields.has("monitoring") else None,
        rollout=_rollout(fields.section("rollout")),
        retraining=_retraining(fields.section("retraining")),
        promotion=_promotion(fields.section("promotion")),
    )
    _require_training_job(fields, parsed)
    return parsed


def _require_training_job(fields: Fields, spec: ModelDeploymentSpec) -> None:
    """Retraining and the promotion gate act on the TrainingJob's models: a fixed URI has none."""
    if spec.model.training_job is not None:
        return
    if spec.monitoring is not None and spec.monitoring.on_drift == "Retrain":
        where = fields.section("monitoring").where("onDrift")
        raise InvalidSpec(where, "Retrain needs spec.model.trainingJob (a fixed model.uri has no Dataset)")
    if spec.retraining.every_seconds is not None:
        where = fields.section("retraining").where("everySeconds")
        raise InvalidSpec(where, "a schedule needs spec.model.trainingJob (a fixed model.uri has no Dataset)")
    if spec.promotion.policy == "IfBetter":
        where = fields.section("promotion").where("policy")
        raise InvalidSpec(
            where,
            "IfBetter needs spec.model.trainingJob (a fixed model.uri is chosen by hand)",
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
        autoscaling.integer("scaleDownStabilizationSeconds", 300, contract.SCALE_DOWN_STABILIZATION_SECONDS),
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


def _rollout(rollout: Fields) -> Rollout:
    strategy = rollout.string("strategy", Rollout.strategy, choices=contract.ROLLOUT_STRATEGIES)
    assert strategy is not None
    steps = _canary_steps(rollout) if rollout.has("steps") else DEFAULT_CANARY_STEPS
    return Rollout(strategy, steps, _analysis(rollout.section("analysis")))


def _canary_steps(rollout: Fields) -> tuple[CanaryStep, ...]:
    where, items = rollout.where("steps"), rollout.data["steps"]
    if not isinstance(items, list):
        raise InvalidSpec(where, f"must be a list of steps, got {type(items).__name__}")
    size = contract.CANARY_STEPS.problem(len(items))
    if size:
        raise InvalidSpec(where, f"number of steps {size}")
    steps = []
    for index, item in enumerate(items):
        step = Fields(item, f"{where}[{index}]")
        if not step.has("weight"):
            raise InvalidSpec(step.where("weight"), "is required")
        steps.append(
            CanaryStep(
                step.integer("weight", 0, contract.CANARY_WEIGHT),
                step.integer("pauseSeconds", 60, contract.CANARY_PAUSE_SECONDS),
            )
        )
    return tuple(steps)


def _analysis(analysis: Fields) -> Analysis:
    defaults = Analysis()
    return Analysis(
        max_error_rate=analysis.number("maxErrorRate", defaults.max_error_rate, contract.MAX_ERROR_RATE),
        max_p99_latency_seconds=analysis.number(
            "maxP99LatencySeconds", defaults.max_p99_latency_seconds, contract.MAX_P99_LATENCY_SECONDS
        ),
        max_prediction_shift=analysis.number(
            "maxPredictionShift", defaults.max_prediction_shift, contract.MAX_PREDICTION_SHIFT
        ),
        min_requests=analysis.integer("minRequests", defaults.min_requests, contract.MIN_CANARY_REQUESTS),
    )


def _retraining(retraining: Fields) -> Retraining:
    defaults = Retraining()
    cooldown = retraining.integer(
        "cooldownSeconds", defaults.cooldown_seconds, contract.RETRAIN_COOLDOWN_SECONDS
    )
    every = retraining.optional_integer("everySeconds", contract.RETRAIN_EVERY_SECONDS)
    if every is not None and every < cooldown:
        raise InvalidSpec(
            retraining.where("everySeconds"),
            f"{every} is shorter than cooldownSeconds {cooldown}, which would hold every scheduled refresh",
        )
    return Retraining(
        cooldown_seconds=cooldown,
        max_per_day=retraining.integer("maxPerDay", defaults.max_per_day, contract.RETRAINS_PER_DAY),
        every_seconds=every,
    )


def _promotion(promotion: Fields) -> Promotion:
    defaults = Promotion()
    policy = promotion.string("policy", defaults.policy, choices=contract.PROMOTION_POLICIES)
    metric = promotion.string("metric", defaults.metric, choices=contract.PROMOTION_METRICS)
    assert policy is not None and metric is not None
    tolerance = promotion.number("tolerance", defaults.tolerance, contract.PROMOTION_TOLERANCE)
    return Promotion(policy, metric, tolerance)
