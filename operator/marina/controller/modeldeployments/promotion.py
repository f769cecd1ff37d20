"""The promotion gate (`spec.promotion`): whether a new model (the challenger) may replace the serving one
(the champion), decided before any rollout.

**Where the two are compared.** A small evaluation Job (`marina evaluate`, built by
`manifests.evaluation_job`) scores both artifacts on the test split of the dataset version the challenger
was trained on, and answers with typed metrics through the termination message, as every Marina Job
does. The ModelDeployment runs it, not the TrainingJob: the TrainingJob does not know which model a
ModelDeployment serves (several may follow it, each with its own champion and policy), and a training
run that also had to read the champion would couple every TrainingJob to every deployment. The Job
needs only the two artifacts and the split, so it is cheap (one streamed pass over the test rows).

**The rule** (`judge`): the challenger is admitted when its `metric` is no worse than the champion's,
within `tolerance`: for rmse and mae (lower is better) `challenger <= champion * (1 + tolerance)`, a
relative tolerance, since their scale is the target's; for r2 (higher is better, unit-free)
`challenger >= champion - tolerance`. Equal scores pass: a retrain on the same data is never held back.

**Once per pair.** Every decision is kept in `status.promotion.decisions`, keyed by both sha256s (the
last DECISIONS_KEPT), so no pair is evaluated twice, across reconciles and operator restarts. A rejected
challenger is also `status.rejectedModel` (its address, both models' metrics, the dataset version and
why) with a Warning event; the champion keeps serving. An evaluation that fails for good (the models
cannot be compared on that data) is a rejection with that reason; one that fails for a passing reason
(storage down) is retried by `jobs.run_job` like any Job.

`admitted` is the interface to the rollout (`modeldeployments.reconcile.decide`), a pure function of what
was observed: it returns the model to roll out, the gate's status fields and its writes (the evaluation
Job, forgetting earlier ones, the verdict's event); whatever rollout strategy the spec names then rolls
that model out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from marina.contract import PROMOTION_VERDICTS
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import manifests
from marina.controller.modeldeployments.spec import ModelDeploymentSpec, Promotion
from marina.controller.shared import builders
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.conditions import Outcome, State
from marina.controller.shared.jobs import forget_old_jobs, run_job
from marina.controller.shared.observation import Observation
from marina.controller.shared.plan import Action, Post
from marina.controller.shared.termination import JobPhase, JobResult

PROMOTED, REJECTED = PROMOTION_VERDICTS  # status.promotion.decisions[].verdict
HIGHER_IS_BETTER = frozenset({"r2"})
DECISIONS_KEPT = 10
COMPONENT = "evaluate"


@dataclass(frozen=True)
class Decision:
    """One verdict on a (champion, challenger) pair, as `status.promotion.decisions` keeps it."""

    champion: str  # sha256
    challenger: str  # sha256
    verdict: str  # PROMOTED or REJECTED
    reason: str
    metric: str
    champion_metrics: Mapping[str, float] = field(default_factory=dict)
    challenger_metrics: Mapping[str, float] = field(default_factory=dict)
    dataset_version: str = ""
    decided_at: str = ""

    def to_status(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "verdict": self.verdict,
            "reason": self.reason,
            "metric": self.metric,
            "championMetrics": dict(self.champion_metrics),
            "challengerMetrics": dict(self.challenger_metrics),
            "datasetVersion": self.dataset_version,
            "decidedAt": self.decided_at,
        }

    @classmethod
    def from_status(cls, value: Mapping[str, Any]) -> Decision:
        return cls(
            champion=str(value.get("champion", "")),
            challenger=str(value.get("challenger", "")),
            verdict=str(value.get("verdict", "")),
            reason=str(value.get("reason", "")),
            metric=str(value.get("metric", "")),
            champion_metrics=dict(value.get("championMetrics") or {}),
            challenger_metrics=dict(value.get("challengerMetrics") or {}),
            dataset_version=str(value.get("datasetVersion", "")),
            decided_at=str(value.get("decidedAt", "")),
        )


def no_worse(metric: str, champion: float, challenger: float, tolerance: float) -> bool:
    """The gate's rule (module docstring)."""
    if metric in HIGHER_IS_BETTER:
        return challenger >= champion - tolerance
    return challenger <= champion * (1.0 + tolerance)


def judge(summary: Mapping[str, Any], promotion: Promotion, clock: str) -> Decision:
    """The verdict on an evaluation Job's result (`marina evaluate`'s summary)."""
    champion, challenger = summary["champion"], summary["challenger"]
    ours, theirs = (
        float(champion["metrics"][promotion.metric]),
        float(challenger["metrics"][promotion.metric]),
    )
    better = no_worse(promotion.metric, ours, theirs, promotion.tolerance)
    relation = ">=" if promotion.metric in HIGHER_IS_BETTER else "<="
    allowed = f"{relation} the serving model's {ours:.6g} within tolerance {promotion.tolerance:g}"
    said = f"{promotion.metric} {theirs:.6g} {'is' if better else 'is not'} {allowed}"
    return Decision(
        champion=str(champion["sha256"]),
        challenger=str(challenger["sha256"]),
        verdict=PROMOTED if better else REJECTED,
        reason=f"{said} on the test split of dataset version {summary.get('datasetVersion')}",
        metric=promotion.metric,
        champion_metrics=dict(champion["metrics"]),
        challenger_metrics=dict(challenger["metrics"]),
        dataset_version=str(summary.get("datasetVersion", "")),
        decided_at=clock,
    )


def failed(
    champion: ModelReference, challenger: ModelReference, why: str, metric: str, clock: str
) -> Decision:
    """A comparison that can never succeed (the models do not fit the data): a rejection, once."""
    return Decision(
        champion.sha256, challenger.sha256, REJECTED, f"EvaluationFailed: {why}", metric, decided_at=clock
    )


def decisions(status: Mapping[str, Any]) -> list[Decision]:
    return [Decision.from_status(d) for d in ((status.get("promotion") or {}).get("decisions") or [])]


def recorded(
    status: Mapping[str, Any], champion: ModelReference, challenger: ModelReference
) -> Decision | None:
    """The decision already taken on this pair, if any."""
    for decision in decisions(status):
        if (decision.champion, decision.challenger) == (champion.sha256, challenger.sha256):
            return decision
    return None


def with_decision(earlier: Sequence[Decision], decision: Decision) -> list[dict[str, Any]]:
    """The kept decisions with `decision` last, the oldest dropped beyond DECISIONS_KEPT."""
    others = [d for d in earlier if (d.champion, d.challenger) != (decision.champion, decision.challenger)]
    return [d.to_status() for d in [*others, decision][-DECISIONS_KEPT:]]


def rejected_model(challenger: ModelReference, decision: Decision) -> dict[str, Any]:
    """`status.rejectedModel`: the challenger kept on record beside the champion that stays."""
    return {
        **challenger.as_status(),
        "metric": decision.metric,
        "championMetrics": dict(decision.champion_metrics),
        "challengerMetrics": dict(decision.challenger_metrics),
        "datasetVersion": decision.dataset_version,
        "reason": decision.reason,
        "rejectedAt": decision.decided_at,
    }


@dataclass(frozen=True)
class Admission:
    """What the gate lets through: the model to roll out, the gate's status fields, an outcome to report
    while it holds a challenger back (evaluating it, or waiting to), and the gate's writes."""

    model: ModelReference
    fields: Mapping[str, Any] = field(default_factory=dict)
    hold: Outcome | None = None
    note: str = ""  # a rejection, for the Ready message
    actions: tuple[Action, ...] = ()

    def report(self, outcome: Outcome) -> Outcome:
        """The rollout's outcome with the gate's fields; the gate's own outcome while the champion is
        settled and a challenger is held back."""
        fields = {**self.fields, **outcome.fields}
        if self.hold is not None and outcome.state is State.READY:
            return Outcome(
                self.hold.state, self.hold.reason, self.hold.message, {**fields, **self.hold.fields}
            )
        message = (
            f"{outcome.message}; {self.note}"
            if self.note and outcome.state is State.READY
            else outcome.message
        )
        return Outcome(outcome.state, outcome.reason, message, fields)


def gated(spec: ModelDeploymentSpec, champion: ModelReference | None, challenger: ModelReference) -> bool:
    """Whether this challenger must pass the gate: IfBetter, a TrainingJob's new model, and a champion."""
    return (
        spec.promotion.policy == "IfBetter"
        and spec.model.training_job is not None
        and champion is not None
        and champion != challenger
    )


def admitted(
    seen: Observation,
    settings: Settings,
    spec: ModelDeploymentSpec,
    challenger: ModelReference,
    champion: ModelReference | None,
) -> Admission:
    """The model to roll out: the challenger when it needs no gate or has passed it, else the champion."""
    if not gated(spec, champion, challenger):
        return Admission(challenger)
    assert champion is not None
    status = seen.body.get("status") or {}
    known = recorded(status, champion, challenger)
    if known is not None:
        return settled(champion, challenger, known, {})
    owner = builders.Owner.of(seen.body)
    digest = builders.short_hash(champion.sha256, challenger.sha256)
    job = manifests.evaluation_job(settings, owner, champion, challenger, digest)
    job_name = job["metadata"]["name"]
    step = run_job(seen, settings, owner, job)
    result = step.result
    if isinstance(result, Outcome):  # cannot start yet, or a retry after a passing failure
        return Admission(champion, hold=result, actions=step.actions)
    if result.phase is JobPhase.RUNNING:
        return replace(evaluating(champion, challenger, job_name, result), actions=step.actions)
    decision = decided(result, champion, challenger, spec.promotion, seen.stamp)
    fields = {"promotion": {"decisions": with_decision(decisions(status), decision), "evaluating": None}}
    kind, reason = (
        ("Normal", "ChallengerPromoted")
        if decision.verdict == PROMOTED
        else ("Warning", "ChallengerRejected")
    )
    said = f"model {challenger.version} against serving {champion.version}: {decision.reason}"
    actions = (*forget_old_jobs(seen, owner, COMPONENT, keep=job_name), Post(kind, reason, said))
    return replace(settled(champion, challenger, decision, fields), actions=actions)


def decided(
    result: JobResult,
    champion: ModelReference,
    challenger: ModelReference,
    promotion: Promotion,
    clock: str,
) -> Decision:
    if result.phase is JobPhase.SUCCEEDED:
        return judge(result.summary, promotion, clock)
    why = result.failure.message if result.failure else "the evaluation Job failed"
    return failed(champion, challenger, why, promotion.metric, clock)


def settled(
    champion: ModelReference, challenger: ModelReference, decision: Decision, fields: Mapping[str, Any]
) -> Admission:
    if decision.verdict == PROMOTED:
        return Admission(challenger, fields)
    note = f"challenger {challenger.version} rejected: {decision.reason}"
    return Admission(champion, {**fields, "rejectedModel": rejected_model(challenger, decision)}, note=note)


def evaluating(
    champion: ModelReference, challenger: ModelReference, job_name: str, result: JobResult
) -> Admission:
    """The champion serves on while Job `job_name` scores the challenger against it."""
    fields = {"promotion": {"evaluating": {**challenger.as_status(), "jobName": job_name}}}
    message = (
        f"serving model {champion.version}; Job {job_name} is scoring challenger {challenger.version} "
        "against it on the challenger's test split"
    )
    if result.problem:
        message = f"{message} ({result.problem})"
    return Admission(champion, fields, hold=Outcome(State.PROGRESSING, "Evaluating", message))
