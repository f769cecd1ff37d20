"""Canary rollouts (spec.rollout.strategy Canary): the canary Deployment beside the stable one and
`status.rollout`, decided from what was observed. `rollout` holds the state machine and the analysis.

A step's pause counts from the moment its pods were all ready; when it is over, the serving pods'
traffic counters (`Traffic`, read at most once per reconcile) are compared with the step's baseline.

With spec.rollout.shadow the steps are preceded by a shadow phase: the challenger runs as <name>-shadow
(pods without the ModelDeployment's label, behind a Service of their own, so the Service clients use
never sends them a request), the stable Deployment's pods get the `--shadow-*` flags (they roll once
for it, and once more after), and once both are ready and durationSeconds have passed, the stable pods'
comparisons (`Comparisons`) decide (`shadowing`): on to the first step, or aborted (ShadowDisagreed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import collector, manifests, rollout, shadowing
from marina.controller.modeldeployments.children import (
    Children,
    ensure,
    needs_write,
    rolled_back,
    rollout_complete,
    rollout_failure_reason,
    rollout_stuck,
)
from marina.controller.modeldeployments.spec import ModelDeploymentSpec
from marina.controller.shared import builders
from marina.controller.shared.builders import ModelReference, Owner
from marina.controller.shared.conditions import Outcome, State
from marina.controller.shared.observation import Observation
from marina.controller.shared.plan import Action, Delete, Plan, Post


@dataclass(frozen=True)
class Traffic:
    """Every ready serving pod's traffic counters (stable and canary: the Service's pods); a pod that does
    not answer is left out of this reading."""

    owner: Owner

    def perform(self, kube: KubeApi, settings: Settings) -> tuple[rollout.PodTraffic, ...]:
        return tuple(read_traffic(kube, self.owner))


def read_traffic(kube: KubeApi, owner: Owner) -> list[rollout.PodTraffic]:
    pods = collector.ready_pods(kube, owner.namespace, builders.selector_string(owner))
    path = f"/v2/models/{owner.name}/traffic"
    readings = []
    for pod, answer in zip(pods, collector.ask(pods, path), strict=True):
        try:
            readings.append(rollout.PodTraffic.parse(answer, pod.uid))
        except (KeyError, TypeError, ValueError):
            continue  # an error from the pod, or not a traffic document
    return readings


@dataclass(frozen=True)
class Comparisons:
    """Every ready stable pod's shadow comparison (`GET /v2/models/<m>/shadow`); a pod that does not
    answer with one (not mirroring yet, or unreachable) is left out of this reading."""

    owner: Owner

    def perform(self, kube: KubeApi, settings: Settings) -> tuple[shadowing.PodComparison, ...]:
        return tuple(read_comparisons(kube, self.owner))


def read_comparisons(kube: KubeApi, owner: Owner) -> list[shadowing.PodComparison]:
    pods = collector.ready_pods(kube, owner.namespace, builders.selector_string(owner))
    readings = []
    for answer in collector.ask(pods, f"/v2/models/{owner.name}/shadow"):
        try:
            readings.append(shadowing.PodComparison.parse(answer))
        except (KeyError, TypeError, ValueError):
            continue  # an error from the pod (404: not mirroring), or not a shadow document
    return readings


@dataclass(frozen=True)
class Step:
    """What the canary decided: the outcome to report while it runs (or once it was rolled back), or the
    state of a canary that passed every step (the stable Deployment takes its model next); its writes."""

    outcome: Outcome | None = None
    promoting: rollout.State | None = None
    actions: tuple[Action, ...] = ()


def canary(
    seen: Observation,
    settings: Settings,
    spec: ModelDeploymentSpec,
    target: ModelReference,
    existing: Children,
) -> Step | None:
    """Run `target` as a canary beside the serving model when the spec asks for one; None when no canary
    is involved."""
    status = seen.body.get("status") or {}
    state = rollout.State.of(status.get("rollout"))
    serving = ModelReference.of(status.get("model"))
    if rollout.is_current(state, target) and state is not None and state.phase == rollout.PROMOTING:
        return Step(promoting=state)
    if not (
        spec.rollout.canary
        and serving is not None
        and target != serving
        and manifests.deployed_model(existing.deployment) == serving
    ):
        return None
    return Trial(seen, settings, spec, serving, target, existing).step(state)


@dataclass(frozen=True)
class Trial:
    """This reconcile's view of the canary of `target` beside `serving` (the stable Deployment's model)."""

    seen: Observation
    settings: Settings
    spec: ModelDeploymentSpec
    serving: ModelReference
    target: ModelReference
    existing: Children

    @property
    def owner(self) -> Owner:
        return Owner.of(self.seen.body)

    @property
    def replicas(self) -> int:
        """The stable Deployment's replicas: the steps' weights are shares of them."""
        spec = (self.existing.deployment or {}).get("spec") or {}
        return int(spec.get("replicas") or self.spec.replicas or 1)

    def step(self, state: rollout.State | None) -> Step:
        steps = self.spec.rollout.steps
        if state is None or not rollout.is_current(state, self.target):
            shadow = self.spec.rollout.shadow is not None
            state = rollout.start(self.target, steps, self.replicas, self.seen.stamp, shadow)
        elif state.step >= len(steps):  # the spec lost steps meanwhile
            state = rollout.at_step(state, len(steps) - 1, steps, self.replicas)
        if state.phase == rollout.SHADOWING:
            if self.spec.rollout.shadow is not None:
                return self.shadow(state)
            state = rollout.after_shadow(state, steps, self.replicas)  # the spec dropped its shadow
        judged = self.judge(state)
        return judged if isinstance(judged, Step) else self.run(judged)

    def judge(self, state: rollout.State) -> Step | rollout.State:
        """Once a step's pause is over, its analysis: rolled back, promoted, or the state to go on with
        (the same step while traffic is short, or the next one)."""
        steps = self.spec.rollout.steps
        paused = state.paused_for(self.seen.now)
        if paused is None or paused < steps[state.step].pause_seconds:
            return state
        readings = traffic(self.seen, self.owner)
        verdict = rollout.analyse(state, readings, self.serving, self.spec.rollout.analysis)
        judged = rollout.after(state, verdict, steps, self.replicas)
        if judged.phase == rollout.ROLLED_BACK:
            return abort(self.owner, self.serving, judged, rollout.rollback_reason(state, verdict))
        if judged.phase == rollout.PROMOTING:
            passed = Post("Normal", "CanaryPassed", f"model {self.target.version}: {verdict.message}")
            return Step(promoting=judged, actions=(passed,))
        return judged

    def shadow(self, state: rollout.State) -> Step:
        """The shadow phase: the challenger's Deployment and Service, then the stable pods mirroring to it;
        once both are ready and the duration is over, the verdict."""
        seen, owner, shadow = self.seen, self.owner, self.spec.rollout.shadow
        assert shadow is not None
        pods = rollout.canary_replicas(shadow.percent, self.replicas)  # its share of the stable's load
        challenger = manifests.shadow_deployment(self.settings, owner, self.spec, self.target, pods)
        service = manifests.shadow_service(owner, self.target)
        actions = ensure(owner, service, self.existing.shadow_service)[1]
        written = self.settled(state, challenger, self.existing.shadow, self.target, "the challenger's pods")
        if isinstance(written, Step):
            return replace(written, actions=actions + written.actions)
        actions += written
        url = manifests.shadow_url(self.existing.shadow_service)
        if url is None:  # created by this pass: its address is read on the next
            return Step(shadow_outcome(state, "waiting for the challenger's Service"), None, actions)
        # The stable mirrors once the challenger can answer.
        mirror = manifests.Mirror(url, shadow.percent, self.target.version, shadow.max_concurrency)
        stable = manifests.deployment(self.settings, owner, self.spec, self.serving, mirror)
        written = self.settled(
            state, stable, self.existing.deployment, self.serving, "the stable pods to mirror"
        )
        if isinstance(written, Step):
            return replace(written, actions=actions + written.actions)
        actions += written
        if state.step_started is None:
            state = rollout.began(state, seen.stamp, ())
        elapsed = state.paused_for(seen.now) or 0.0
        if elapsed < shadow.duration_seconds:
            said = f"judged in {shadow.duration_seconds - elapsed:.0f} s"
            return Step(shadow_outcome(state, said), None, actions)
        readings = seen.get(Comparisons(owner))
        verdict = shadowing.judge(
            shadowing.merge(readings, self.target.version),
            shadow,
            self.spec.rollout.analysis.max_error_rate,
            elapsed,
        )
        judged = replace(state, shadow=verdict.to_status(state.step_started))
        if verdict.verdict == shadowing.WAITING:
            return Step(shadow_outcome(judged, verdict.message), None, actions)
        if verdict.verdict == shadowing.DISAGREED:
            aborted = abort(owner, self.serving, judged, f"shadow: {verdict.message}", SHADOW_DISAGREED)
            return replace(aborted, actions=actions + aborted.actions)
        agreed = Post("Normal", "ShadowAgreed", f"model {self.target.version}: {verdict.message}")
        stepped = self.run(rollout.after_shadow(judged, self.spec.rollout.steps, self.replicas))
        return replace(stepped, actions=(agreed, *stepped.actions))

    def settled(
        self,
        state: rollout.State,
        desired: dict[str, Any],
        existing: dict[str, Any] | None,
        model: ModelReference,
        what: str,
    ) -> Step | tuple[Action, ...]:
        """A shadow phase's Deployment written; the Step to report while its pods are not all ready (or
        the abort once they never will be), else the writes."""
        seen, owner = self.seen, self.owner
        if needs_write(desired, existing) and (blocked := seen.blocked()) is not None:
            return Step(outcome=blocked)
        deployment, actions = ensure(owner, desired, existing)
        if rollout_stuck(deployment):
            said = rollout_failure_reason(seen, owner, model, deployment)
            aborted = abort(
                owner, self.serving, state, f"shadow: {what}: the pods never became ready: {said}"
            )
            return replace(aborted, actions=actions + aborted.actions)
        if rollout_complete(deployment):
            return actions
        status = deployment.get("status") or {}
        counts = f"{status.get('updatedReplicas', 0)} of {deployment['spec'].get('replicas', 1)} updated"
        return Step(shadow_outcome(state, f"waiting for {what} ({counts})"), None, actions)

    def run(self, state: rollout.State) -> Step:
        """The step's canary Deployment at its weight; its pause starts once its pods are all ready (and
        the stable's, which stop mirroring once a shadow phase is over)."""
        seen, owner, step = self.seen, self.owner, self.spec.rollout.steps[state.step]
        actions: tuple[Action, ...] = ()
        if self.existing.shadow is not None or self.existing.shadow_service is not None:
            actions += remove_shadow(owner)  # the shadow phase is over (passed, or dropped from the spec)
        stable = self.existing.deployment
        if manifests.mirrors(stable):
            plain = manifests.deployment(self.settings, owner, self.spec, self.serving)
            if (blocked := seen.blocked()) is not None:
                return Step(outcome=blocked)
            stable, written = ensure(owner, plain, stable)
            actions += written
        # A step's baseline is taken once the stable's pods stand still too (after a shadow they roll).
        stable_ready = state.step_started is not None or stable is None or rollout_complete(stable)
        pods = rollout.canary_replicas(step.weight, self.replicas)
        desired = manifests.canary_deployment(self.settings, owner, self.spec, self.target, pods)
        if needs_write(desired, self.existing.canary) and (blocked := seen.blocked()) is not None:
            return Step(outcome=blocked)
        deployment, written = ensure(owner, desired, self.existing.canary)
        actions += written
        if rollout_stuck(deployment):
            said = rollout_failure_reason(seen, owner, self.target, deployment)
            reason = f"canary step {state.step + 1}/{state.steps}: its pods never became ready: {said}"
            aborted = abort(owner, self.serving, state, reason)
            return replace(aborted, actions=actions + aborted.actions)
        if not rollout_complete(deployment) or not stable_ready:
            ready = (deployment.get("status") or {}).get("availableReplicas", 0)
            said = f"waiting for the canary's pods ({ready} of {pods} ready)"
            if not stable_ready:
                said += " and for the stable's pods to be updated"
            return Step(canary_outcome(state, said), None, actions)
        if state.step_started is None:
            state = rollout.began(state, seen.stamp, traffic(seen, owner))
        left = step.pause_seconds - (state.paused_for(seen.now) or 0.0)
        said = str((state.analysis or {}).get("message", "")) if left <= 0 else f"analysis in {left:.0f} s"
        return Step(canary_outcome(state, said), None, actions)


def traffic(seen: Observation, owner: Owner) -> tuple[rollout.PodTraffic, ...]:
    found: tuple[rollout.PodTraffic, ...] = seen.get(Traffic(owner))
    return found


def canary_outcome(state: rollout.State, said: str) -> Outcome:
    message = (
        f"canary of model {state.canary.version} at step {state.step + 1}/{state.steps} "
        f"(stable/canary {state.weights}): {said}"
    )
    return Outcome(State.PROGRESSING, "Canary", message, {"rollout": state.to_status()})


def shadow_outcome(state: rollout.State, said: str) -> Outcome:
    message = f"shadow of model {state.canary.version} (no user traffic): {said}"
    return Outcome(State.PROGRESSING, "Shadowing", message, {"rollout": state.to_status()})


SHADOW_DISAGREED = "ShadowDisagreed"


def abort(
    owner: Owner, serving: ModelReference, state: rollout.State, reason: str, why: str = "RolledBack"
) -> Step:
    """A failed step (or shadow): the challenger's pods go (they drain as any pod does: preStop, then
    SIGTERM), the stable keeps serving (and stops mirroring on the next reconcile), and the model is not
    tried again (status.failedModel) until a new one comes."""
    aborted = replace(state, phase=rollout.ROLLED_BACK, baseline=(), weights=rollout.weights(1, 0))
    fields = {"failedModel": {**state.canary.as_status(), "reason": reason}, "rollout": aborted.to_status()}
    outcome = Outcome(State.DEGRADED, why, rolled_back(serving, state.canary, reason), fields)
    removed = remove_shadow(owner) if state.phase == rollout.SHADOWING else (remove(owner),)
    return Step(outcome, actions=removed)


def remove(owner: Owner) -> Delete:
    return Delete("apps/v1", "Deployment", manifests.canary_name(owner))


def remove_shadow(owner: Owner) -> tuple[Delete, ...]:
    name = manifests.shadow_name(owner)
    return Delete("apps/v1", "Deployment", name), Delete("v1", "Service", name)


def after_canary(owner: Owner, outcome: Outcome, state: rollout.State | None, existing: Children) -> Plan:
    """Once the stable Deployment has settled no canary is left, and a canary's record ends: promoted
    when the stable serves its model, rolled back when the stable's own update of it failed, gone when
    the spec moved on (another model, or RollingUpdate) before it ended."""
    if outcome.state is State.PROGRESSING:
        return Plan(outcome if state is None else with_rollout(outcome, state.to_status()))
    gone: tuple[Delete, ...] = (remove(owner),) if existing.canary is not None else ()
    if existing.shadow is not None or existing.shadow_service is not None:
        gone += remove_shadow(owner)
    if state is None or state.phase not in rollout.UNDER_WAY:
        return Plan(outcome, gone)
    served = outcome.fields.get("model", {}).get("sha256")
    if outcome.state is State.READY and state.phase == rollout.PROMOTING and served == state.canary.sha256:
        return Plan(with_rollout(outcome, rollout.promoted(state).to_status()), gone)
    if outcome.state is State.DEGRADED:
        rolled = replace(state, phase=rollout.ROLLED_BACK, baseline=()).to_status()
        return Plan(with_rollout(outcome, rolled), gone)
    return Plan(with_rollout(outcome, None), gone)


def with_rollout(outcome: Outcome, fields: dict[str, Any] | None) -> Outcome:
    return replace(outcome, fields={**outcome.fields, "rollout": fields})
