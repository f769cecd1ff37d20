"""Canary rollouts without a service mesh: the state machine and the step analysis, as pure functions.

As Argo Rollouts does when it has no traffic router, the weights are replica ratios: a canary
Deployment runs the new model beside the stable one, and the one Service selects the pods of both.
Each step scales the canary to its weight (a share of the replicas, at least one pod), waits until
those pods are ready, reads every serving pod's cumulative traffic counters (the step's baseline),
pauses, reads them again and compares the canary's increase with the stable's: error rate, p99
latency and the shift of the mean prediction in the stable's standard deviations. A failing step
aborts; passing every step promotes (the stable Deployment is updated to the new model, then the
canary goes). The whole state lives in `status.rollout`, so a restarted operator carries on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from marina.contract import ROLLOUT_PHASES
from marina.controller.modeldeployments.spec import Analysis, CanaryStep
from marina.controller.shared.builders import ModelReference
from marina.system.clock import parse_timestamp

SHADOWING, PROGRESSING, PROMOTING, PROMOTED, ROLLED_BACK = (
    ROLLOUT_PHASES  # status.rollout.phase, as the contract lists it
)
#: How often the background loop looks at the ModelDeployments in a canary (a pause ends within it).
TICK_SECONDS = 2.0


@dataclass(frozen=True)
class PodTraffic:
    """One pod's inference counters since its start (`/v2/models/<m>/traffic`), or their increase."""

    pod: str  # uid
    version: str
    requests: int
    errors: int
    bounds: tuple[float, ...]  # latency bucket upper bounds; `latency` has one more bucket (beyond)
    latency: tuple[int, ...]
    predictions: int
    origin: float
    total: float  # sum of (prediction - origin)
    squares: float  # sum of (prediction - origin)²

    @classmethod
    def parse(cls, document: Any, pod: str) -> PodTraffic:
        """ValueError (or KeyError, TypeError) when the answer is not a traffic document."""
        if not isinstance(document, Mapping):
            raise ValueError("not a JSON object")
        predictions = document["predictions"]
        bounds = tuple(float(b) for b in document["latencyBounds"])
        latency = tuple(int(c) for c in document["latency"])
        if len(latency) != len(bounds) + 1:
            raise ValueError(f"{len(latency)} latency buckets for {len(bounds)} bounds")
        return cls(
            pod,
            str(document["version"]),
            int(document["requests"]),
            int(document["errors"]),
            bounds,
            latency,
            int(predictions["count"]),
            float(predictions["origin"]),
            float(predictions["sum"]),
            float(predictions["sumSquares"]),
        )

    def since(self, earlier: PodTraffic | None) -> PodTraffic:
        """The increase since `earlier`; everything when the counters restarted (a new container)."""
        if earlier is None or not self._follows(earlier):
            return self
        return replace(
            self,
            requests=self.requests - earlier.requests,
            errors=self.errors - earlier.errors,
            latency=tuple(a - b for a, b in zip(self.latency, earlier.latency, strict=True)),
            predictions=self.predictions - earlier.predictions,
            total=self.total - earlier.total,
            squares=self.squares - earlier.squares,
        )

    def _follows(self, earlier: PodTraffic) -> bool:
        return (
            earlier.version == self.version
            and earlier.bounds == self.bounds
            and earlier.origin == self.origin
            and earlier.requests <= self.requests
            and earlier.predictions <= self.predictions
        )

    def to_status(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "latencyBounds": list(self.bounds),
            "latency": list(self.latency),
            "predictions": {
                "count": self.predictions,
                "origin": self.origin,
                "sum": self.total,
                "sumSquares": self.squares,
            },
        }


@dataclass(frozen=True)
class Summary:
    """A group of pods' traffic over a step: counts, and the predictions' mean and sum of squared
    deviations (pods merged with Chan et al.'s pairwise update)."""

    requests: int = 0
    errors: int = 0
    bounds: tuple[float, ...] = ()
    latency: tuple[int, ...] = ()
    predictions: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(max(self.m2, 0.0) / self.predictions) if self.predictions else 0.0

    @property
    def p99(self) -> float:
        """The upper bound of the bucket holding the 99th percentile (inf beyond the last bound):
        never below the true value, so a p99 under the threshold is one."""
        needed, seen = 0.99 * sum(self.latency), 0
        for bound, count in zip((*self.bounds, math.inf), self.latency, strict=True):
            seen += count
            if seen >= needed and seen > 0:
                return bound
        return 0.0


def summarise(windows: Iterable[PodTraffic]) -> Summary:
    summary = Summary()
    for window in windows:
        summary = _merge(summary, window)
    return summary


def _merge(summary: Summary, window: PodTraffic) -> Summary:
    latency = (
        window.latency
        if not summary.latency
        else tuple(map(sum, zip(summary.latency, window.latency, strict=True)))
    )
    count = summary.predictions + window.predictions
    if window.predictions == 0:
        mean, m2 = summary.mean, summary.m2
    else:
        pod_mean = window.origin + window.total / window.predictions
        pod_m2 = window.squares - window.total**2 / window.predictions
        delta = pod_mean - summary.mean
        mean = summary.mean + delta * window.predictions / count
        m2 = summary.m2 + pod_m2 + delta**2 * summary.predictions * window.predictions / count
    return Summary(
        summary.requests + window.requests,
        summary.errors + window.errors,
        window.bounds,
        latency,
        count,
        mean,
        m2,
    )


@dataclass(frozen=True)
class Measurement:
    """A metric of the canary's step against its threshold; `value` may be inf (beyond the buckets,
    or a shift from a stable whose predictions did not vary)."""

    metric: str
    value: float
    threshold: float

    @property
    def failed(self) -> bool:
        return self.value > self.threshold

    def describe(self) -> str:
        value = f"{self.value:.4g}" if math.isfinite(self.value) else "beyond the largest bucket"
        return (
            f"{self.metric} {value} exceeds max{self.metric[0].upper()}{self.metric[1:]} {self.threshold:g}"
        )

    def to_status(self) -> dict[str, Any]:
        return {"metric": self.metric, "threshold": self.threshold, **_finite("value", self.value)}


@dataclass(frozen=True)
class Verdict:
    """A step's analysis: `passed` None while the canary has answered too few requests to judge."""

    passed: bool | None
    measurements: tuple[Measurement, ...]
    canary: Summary
    stable: Summary
    message: str

    @property
    def failure(self) -> Measurement | None:
        return next((m for m in self.measurements if m.failed), None)

    def to_status(self, step: int) -> dict[str, Any]:
        analysed: dict[str, Any] = {
            "step": step,
            "canaryRequests": self.canary.requests,
            "stableRequests": self.stable.requests,
            "message": self.message,
        }
        for measurement in self.measurements:
            analysed.update(_finite(measurement.metric, measurement.value))
        failure = self.failure
        if failure is not None:
            analysed["failed"] = failure.to_status()
        return analysed


def _finite(key: str, value: float) -> dict[str, float]:
    """Kubernetes' JSON has no infinity: a non-finite value is left out (its message says why)."""
    return {key: round(value, 6)} if math.isfinite(value) else {}


def prediction_shift(canary: Summary, stable: Summary) -> float:
    """|canary mean - stable mean| in stable standard deviations (inf if the stable never varied)."""
    distance = abs(canary.mean - stable.mean)
    if stable.std > 0:
        return distance / stable.std
    return 0.0 if distance == 0 else math.inf


def judge(canary: Summary, stable: Summary, analysis: Analysis) -> Verdict:
    """Error rate and p99 latency of the canary, and its predictions' shift against the stable's."""
    needed = max(analysis.min_requests, 1)
    if canary.requests < needed or (canary.predictions and stable.predictions < 2):
        message = (
            f"waiting for traffic: the canary answered {canary.requests} of the {needed} requests a step "
            f"needs, the stable {stable.requests}"
        )
        return Verdict(None, (), canary, stable, message)
    measurements = [
        Measurement("errorRate", canary.error_rate, analysis.max_error_rate),
        Measurement("p99LatencySeconds", canary.p99, analysis.max_p99_latency_seconds),
    ]
    if canary.predictions:
        shift = prediction_shift(canary, stable)
        measurements.append(Measurement("predictionShift", shift, analysis.max_prediction_shift))
    failure = next((m for m in measurements if m.failed), None)
    described = ", ".join(
        f"{m.metric} {m.value:.4g} (max {m.threshold:g})" for m in measurements if math.isfinite(m.value)
    )
    summary = f"{described}; canary {canary.requests} requests, stable {stable.requests}"
    message = f"{failure.describe()} ({summary})" if failure else summary
    return Verdict(failure is None, tuple(measurements), canary, stable, message)


def canary_replicas(weight: int, replicas: int) -> int:
    """A step's canary pods: `weight` percent of the stable's replicas, rounded, at least one."""
    return max(1, round(weight * replicas / 100))


def weights(stable: int, canary: int) -> str:
    """`stable/canary` shares of the serving pods in percent: each pod takes an equal share of the
    Service's connections, so this is the traffic split."""
    total = stable + canary
    share = round(100 * canary / total) if total else 0
    return f"{100 - share}/{share}"


@dataclass(frozen=True)
class State:
    """`status.rollout`: where the canary of `canary` stands. `step` counts from 0 here (from 1 in the
    status); `step_started` is when the step's canary pods were all ready (its pause counts from then)."""

    phase: str
    canary: ModelReference
    step: int
    steps: int
    weights: str
    started: str
    step_started: str | None = None
    baseline: tuple[PodTraffic, ...] = ()
    analysis: Mapping[str, Any] | None = None
    shadow: Mapping[str, Any] | None = None  # the shadow phase's comparison (`shadowing.Verdict`)

    @classmethod
    def of(cls, status: Any) -> State | None:
        """The state in the status; None when there is none (or it is unreadable: start over)."""
        if not isinstance(status, Mapping):
            return None
        try:
            model = status["canaryModel"]
            return cls(
                str(status["phase"]),
                ModelReference(str(model["uri"]), str(model["sha256"])),
                int(status["step"]) - 1,
                int(status["steps"]),
                str(status.get("weights", "")),
                str(status["startedAt"]),
                status.get("stepStartedAt"),
                tuple(PodTraffic.parse(b, str(b["pod"])) for b in status.get("baseline") or []),
                status.get("analysis"),
                status.get("shadow"),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_status(self) -> dict[str, Any]:
        """Every key always present (None deletes it in a merge patch, so nothing stale stays)."""
        return {
            "phase": self.phase,
            "canaryModel": self.canary.as_status(),
            "step": self.step + 1,
            "steps": self.steps,
            "weights": self.weights,
            "startedAt": self.started,
            "stepStartedAt": self.step_started,
            "baseline": [b.to_status() for b in self.baseline],  # a list: replaced whole by a patch
            "analysis": dict(self.analysis) if self.analysis is not None else None,
            "shadow": dict(self.shadow) if self.shadow is not None else None,
        }

    def paused_for(self, now: datetime) -> float | None:
        """Seconds since the step's pods were ready; None while they are not."""
        if self.step_started is None:
            return None
        return (now - parse_timestamp(self.step_started)).total_seconds()

    def baseline_of(self, pod: str) -> PodTraffic | None:
        return next((b for b in self.baseline if b.pod == pod), None)


def start(
    canary: ModelReference, steps: Sequence[CanaryStep], stable_replicas: int, now: str, shadow: bool = False
) -> State:
    """A new canary of `canary`: in its shadow phase (no user traffic: 100/0), or at its first step."""
    if shadow:
        return State(SHADOWING, canary, 0, len(steps), weights(1, 0), now)
    first = canary_replicas(steps[0].weight, stable_replicas)
    return State(PROGRESSING, canary, 0, len(steps), weights(stable_replicas, first), now)


def is_current(state: State | None, canary: ModelReference) -> bool:
    """Whether `state` is a canary of this model still under way (not one that ended, nor another's)."""
    return state is not None and state.canary == canary and state.phase in UNDER_WAY


#: The phases of a rollout still under way.
UNDER_WAY = (SHADOWING, PROGRESSING, PROMOTING)


def after_shadow(state: State, steps: Sequence[CanaryStep], stable_replicas: int) -> State:
    """The shadow agreed: the canary's first step, its pods not ready yet."""
    return at_step(replace(state, phase=PROGRESSING), 0, steps, stable_replicas)


def at_step(state: State, step: int, steps: Sequence[CanaryStep], stable_replicas: int) -> State:
    """`state` moved to `step` (its pods not ready yet, no baseline)."""
    pods = canary_replicas(steps[step].weight, stable_replicas)
    return replace(
        state,
        step=step,
        steps=len(steps),
        weights=weights(stable_replicas, pods),
        step_started=None,
        baseline=(),
        analysis=None,
    )


def began(state: State, now: str, baseline: Iterable[PodTraffic]) -> State:
    """The step's canary pods are ready: its pause starts now, measured from `baseline`."""
    return replace(state, step_started=now, baseline=tuple(baseline))


def increases(state: State, readings: Iterable[PodTraffic], version: str) -> list[PodTraffic]:
    """The step's traffic of the pods serving `version`: each pod's counters less its baseline."""
    return [r.since(state.baseline_of(r.pod)) for r in readings if r.version == version]


def analyse(
    state: State, readings: Sequence[PodTraffic], stable: ModelReference, analysis: Analysis
) -> Verdict:
    canary = summarise(increases(state, readings, state.canary.version))
    return judge(canary, summarise(increases(state, readings, stable.version)), analysis)


def after(state: State, verdict: Verdict, steps: Sequence[CanaryStep], stable_replicas: int) -> State:
    """The state a judged step leads to: the same step (waiting for traffic), the next one, promotion
    after the last, or rolled back on a failure."""
    analysed = replace(state, analysis=verdict.to_status(state.step + 1))
    if verdict.passed is None:
        return analysed
    if not verdict.passed:
        return replace(analysed, phase=ROLLED_BACK, baseline=(), weights=weights(1, 0))
    if state.step + 1 < len(steps):
        return replace(at_step(state, state.step + 1, steps, stable_replicas), analysis=analysed.analysis)
    return replace(analysed, phase=PROMOTING, baseline=(), step_started=None)


def promoted(state: State) -> State:
    """Done: the stable serves the canary's model and the canary is gone."""
    return replace(state, phase=PROMOTED, weights=weights(1, 0))


def rollback_reason(state: State, verdict: Verdict) -> str:
    failure = verdict.failure
    said = failure.describe() if failure is not None else verdict.message
    return f"canary step {state.step + 1}/{state.steps}: {said}"
