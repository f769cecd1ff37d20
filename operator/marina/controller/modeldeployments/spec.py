"""A ModelDeployment's spec: which model to serve, how many replicas, how to roll out, how to watch drift."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina import contract
from marina.contract import MODEL_DEPLOYMENT
from marina.contract.schema import Array, Object
from marina.controller.shared.fields import Fields, InvalidSpec, Resources


def _default(path: str) -> Any:
    """The contract's default of `spec.<path>` (marina.contract.kinds), the one place it is written."""
    return MODEL_DEPLOYMENT.default(f"spec.{path}")


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
    scale_down_stabilization_seconds: int = _default("autoscaling.scaleDownStabilizationSeconds")


@dataclass(frozen=True)
class Performance:
    """Live accuracy (`spec.monitoring.performance`): the logged answers of the serving model joined with
    the feedback received in the last `window_hours` (predictions up to `label_delay_hours` older), judged
    against the model's test rmse (`performance.decide`)."""

    interval_seconds: int = _default("monitoring.performance.intervalSeconds")
    window_hours: int = _default("monitoring.performance.windowHours")
    label_delay_hours: int = _default("monitoring.performance.labelDelayHours")
    min_rows: int = _default("monitoring.performance.minRows")
    margin: float = float(_default("monitoring.performance.margin"))
    false_alarm_rate: float = float(_default("monitoring.performance.falseAlarmRate"))
    max_rows: int = _default("monitoring.performance.maxRows")
    on_degraded: str = _default("monitoring.performance.onDegraded")


@dataclass(frozen=True)
class Monitoring:
    """Drift monitoring (`spec.monitoring`; absent: off). `on_drift: Retrain` also refreshes the Dataset
    behind the served TrainingJob, within the limits of `Retraining`. `performance` (None: off) judges
    the live error from the payload logs and their feedback."""

    interval_seconds: int = _default("monitoring.intervalSeconds")
    min_rows: int = _default("monitoring.minRows")
    psi_threshold: float = _default("monitoring.psiThreshold")
    on_drift: str = _default("monitoring.onDrift")
    performance: Performance | None = None


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

    max_error_rate: float = _default("rollout.analysis.maxErrorRate")
    max_p99_latency_seconds: float = _default("rollout.analysis.maxP99LatencySeconds")
    max_prediction_shift: float = _default("rollout.analysis.maxPredictionShift")
    min_requests: int = _default("rollout.analysis.minRequests")


@dataclass(frozen=True)
class Shadow:
    """`spec.rollout.shadow`: before the canary's steps the stable pods copy `percent` of their answered
    requests to the new model (no client sees its answers), and the two models' predictions on the same
    rows are compared (`shadowing`)."""

    percent: int = _default("rollout.shadow.percent")
    min_requests: int = _default("rollout.shadow.minRequests")
    duration_seconds: int = _default("rollout.shadow.durationSeconds")
    max_difference: float = _default("rollout.shadow.maxDifference")
    alpha: float = _default("rollout.shadow.alpha")
    max_concurrency: int = _default("rollout.shadow.maxConcurrency")


DEFAULT_CANARY_STEPS = tuple(CanaryStep(weight, pause) for weight, pause in contract.DEFAULT_CANARY_STEPS)


@dataclass(frozen=True)
class Rollout:
    """`spec.rollout`: RollingUpdate replaces the pods in place; Canary runs the new model beside the
    stable one through `steps` (analysed after each pause) before the stable is updated."""

    strategy: str = _default("rollout.strategy")
    steps: tuple[CanaryStep, ...] = DEFAULT_CANARY_STEPS
    analysis: Analysis = Analysis()
    shadow: Shadow | None = None

    @property
    def canary(self) -> bool:
        return self.strategy == "Canary"


@dataclass(frozen=True)
class Retraining:
    """The limits on refreshing the Dataset (`spec.retraining`), whatever triggers it (drift or the
    schedule): at most `max_per_day` refreshes a UTC day, `cooldown_seconds` apart; `every_seconds` (None:
    no schedule) refreshes it that long after the last refresh even without drift."""

    cooldown_seconds: int = _default("retraining.cooldownSeconds")
    max_per_day: int = _default("retraining.maxPerDay")
    every_seconds: int | None = None


@dataclass(frozen=True)
class Promotion:
    """The gate before a new model replaces the serving one (`spec.promotion`). `IfBetter` scores both on
    the new model's test split and admits it only when its `metric` is no worse than the serving model's,
    within `tolerance` (relative for rmse and mae, absolute for r2)."""

    policy: str = _default("promotion.policy")
    metric: str = _default("promotion.metric")
    tolerance: float = float(_default("promotion.tolerance"))


@dataclass(frozen=True)
class Serving:
    """How the serving pods answer (`spec.serving`): `Reject` refuses a row unlike the training data."""

    extrapolation: str = _default("serving.extrapolation")


@dataclass(frozen=True)
class Logging:
    """Payload logs and ground truth (`spec.logging`): the serving pods record a `sample_rate` share of the
    answered requests and write them in parts of `flush_rows` rows, or every `flush_seconds`; the operator
    deletes days older than `keep_days` (None: keeps everything)."""

    sample_rate: float = _default("logging.sampleRate")
    flush_rows: int = _default("logging.flushRows")
    flush_seconds: int = _default("logging.flushSeconds")
    keep_days: int | None = None

    @property
    def enabled(self) -> bool:
        return self.sample_rate > 0


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
    serving: Serving = Serving()
    logging: Logging = Logging()
    # The PodDisruptionBudget's maxUnavailable: a count or a percentage; None leaves the default
    # (`disruption_budget`). Out of the serving pods' template, so out of their Deployment's hash too.
    max_unavailable: int | str | None = None

    @property
    def disruption_budget(self) -> int | str | None:
        """The serving pods' maxUnavailable, or None for no budget (one replica: it would block drains)."""
        if self.max_unavailable is not None:
            return self.max_unavailable
        least = self.autoscaling.min_replicas if self.autoscaling is not None else self.replicas
        return 1 if least > 1 else None

    @property
    def retrains(self) -> bool:
        """Whether the operator ever refreshes the Dataset: on drift, on degradation, or on a schedule."""
        on_drift = self.monitoring is not None and self.monitoring.on_drift == "Retrain"
        return on_drift or self.retrains_on_degraded or self.retraining.every_seconds is not None

    @property
    def retrains_on_degraded(self) -> bool:
        performance = self.monitoring.performance if self.monitoring is not None else None
        return performance is not None and performance.on_degraded == "Retrain"


def parse(spec: Mapping[str, Any] | None) -> ModelDeploymentSpec:
    fields = Fields(spec, MODEL_DEPLOYMENT.spec)
    autoscaling = _autoscaling(fields.section("autoscaling")) if fields.has("autoscaling") else None
    parsed = ModelDeploymentSpec(
        model=_model(fields.section("model")),
        replicas=fields.integer("replicas"),
        resources=fields.resources(),
        autoscaling=autoscaling,
        progress_deadline_seconds=fields.section("rollout").integer("progressDeadlineSeconds"),
        monitoring=_monitoring(fields.section("monitoring")) if fields.has("monitoring") else None,
        rollout=_rollout(fields.section("rollout")),
        retraining=_retraining(fields.section("retraining")),
        promotion=_promotion(fields.section("promotion")),
        serving=Serving(fields.section("serving").required_string("extrapolation")),
        logging=_logging(fields.section("logging")),
        max_unavailable=_max_unavailable(fields.section("disruption")),
    )
    _require_training_job(fields, parsed)
    _require_logs(fields, parsed)
    return parsed


def _require_logs(fields: Fields, spec: ModelDeploymentSpec) -> None:
    """Live accuracy is measured on the payload logs: without them there is nothing to join."""
    if spec.monitoring is not None and spec.monitoring.performance is not None and not spec.logging.enabled:
        where = fields.section("monitoring").where("performance")
        raise InvalidSpec(where, "needs the payload logs: set spec.logging.sampleRate above 0")


def _max_unavailable(disruption: Fields) -> int | str | None:
    value = disruption.data.get("maxUnavailable")
    if value is None:
        return None
    where = disruption.where("maxUnavailable")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidSpec(where, f"must be a number or a percentage, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise InvalidSpec(where, f"must be at least 1 (0 would block every eviction), got {value}")
        return value
    if not re.fullmatch(r"([1-9][0-9]?|100)%", value):
        raise InvalidSpec(where, f"must be a number or a percentage from 1% to 100%, got {value!r}")
    return value


def _require_training_job(fields: Fields, spec: ModelDeploymentSpec) -> None:
    """Retraining and the promotion gate act on the TrainingJob's models: a fixed URI has none."""
    if spec.model.training_job is not None:
        return
    if spec.monitoring is not None and spec.monitoring.on_drift == "Retrain":
        where = fields.section("monitoring").where("onDrift")
        raise InvalidSpec(where, "Retrain needs spec.model.trainingJob (a fixed model.uri has no Dataset)")
    if spec.retrains_on_degraded:
        where = fields.section("monitoring").section("performance").where("onDegraded")
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
        uri=model.required_string("uri"),
        sha256=model.required_string("sha256"),
    )


def _autoscaling(autoscaling: Fields) -> Autoscaling:
    minimum = autoscaling.integer("minReplicas")
    maximum = autoscaling.integer("maxReplicas")
    if minimum > maximum:
        raise InvalidSpec(autoscaling.where("minReplicas"), f"{minimum} exceeds maxReplicas {maximum}")
    return Autoscaling(
        minimum,
        maximum,
        autoscaling.integer("targetCPUUtilizationPercentage"),
        autoscaling.integer("scaleDownStabilizationSeconds"),
    )


def _monitoring(monitoring: Fields) -> Monitoring:
    return Monitoring(
        interval_seconds=monitoring.integer("intervalSeconds"),
        min_rows=monitoring.integer("minRows"),
        psi_threshold=monitoring.number("psiThreshold"),
        on_drift=monitoring.required_string("onDrift"),
        performance=(
            _performance(monitoring.section("performance")) if monitoring.has("performance") else None
        ),
    )


def _performance(performance: Fields) -> Performance:
    return Performance(
        interval_seconds=performance.integer("intervalSeconds"),
        window_hours=performance.integer("windowHours"),
        label_delay_hours=performance.integer("labelDelayHours"),
        min_rows=performance.integer("minRows"),
        margin=performance.number("margin"),
        false_alarm_rate=performance.number("falseAlarmRate"),
        max_rows=performance.integer("maxRows"),
        on_degraded=performance.required_string("onDegraded"),
    )


def _rollout(rollout: Fields) -> Rollout:
    steps = _canary_steps(rollout) if rollout.has("steps") else DEFAULT_CANARY_STEPS
    strategy = rollout.required_string("strategy")
    shadow = _shadow(rollout.section("shadow")) if rollout.has("shadow") else None
    if shadow is not None and strategy != "Canary":
        raise InvalidSpec(
            rollout.where("shadow"), f"goes before a canary's steps: needs strategy Canary, got {strategy}"
        )
    return Rollout(strategy, steps, _analysis(rollout.section("analysis")), shadow)


def _shadow(shadow: Fields) -> Shadow:
    return Shadow(
        percent=shadow.integer("percent"),
        min_requests=shadow.integer("minRequests"),
        duration_seconds=shadow.integer("durationSeconds"),
        max_difference=shadow.number("maxDifference"),
        alpha=shadow.number("alpha"),
        max_concurrency=shadow.integer("maxConcurrency"),
    )


def _canary_steps(rollout: Fields) -> tuple[CanaryStep, ...]:
    where, items = rollout.where("steps"), rollout.data["steps"]
    if not isinstance(items, list):
        raise InvalidSpec(where, f"must be a list of steps, got {type(items).__name__}")
    declared = MODEL_DEPLOYMENT.at("spec.rollout.steps")
    assert isinstance(declared, Array) and isinstance(declared.items, Object) and declared.size is not None
    size = declared.size.problem(len(items))
    if size:
        raise InvalidSpec(where, f"number of steps {size}")
    steps = []
    for index, item in enumerate(items):
        step = Fields(item, declared.items, f"{where}[{index}]")
        steps.append(CanaryStep(step.integer("weight"), step.integer("pauseSeconds")))
    return tuple(steps)


def _analysis(analysis: Fields) -> Analysis:
    return Analysis(
        max_error_rate=analysis.number("maxErrorRate"),
        max_p99_latency_seconds=analysis.number("maxP99LatencySeconds"),
        max_prediction_shift=analysis.number("maxPredictionShift"),
        min_requests=analysis.integer("minRequests"),
    )


def _retraining(retraining: Fields) -> Retraining:
    cooldown = retraining.integer("cooldownSeconds")
    every = retraining.optional_integer("everySeconds")
    if every is not None and every < cooldown:
        raise InvalidSpec(
            retraining.where("everySeconds"),
            f"{every} is shorter than cooldownSeconds {cooldown}, which would hold every scheduled refresh",
        )
    return Retraining(
        cooldown_seconds=cooldown,
        max_per_day=retraining.integer("maxPerDay"),
        every_seconds=every,
    )


def _logging(logging: Fields) -> Logging:
    return Logging(
        sample_rate=logging.number("sampleRate"),
        flush_rows=logging.integer("flushRows"),
        flush_seconds=logging.integer("flushSeconds"),
        keep_days=logging.optional_integer("keepDays"),
    )


def _promotion(promotion: Fields) -> Promotion:
    return Promotion(
        promotion.required_string("policy"),
        promotion.required_string("metric"),
        promotion.number("tolerance"),
    )
