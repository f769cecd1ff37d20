"""ModelDeployment reconciliation: a Deployment, a Service and an optional HPA serving one model.

The rollout decision is a pure function of what is observed: the model the spec asks for, the
model the Deployment's pods run, the model known to serve (status.model) and the model whose
rollout already failed (status.failedModel, never retried until something new arrives).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from marina.controller.kube import metrics
from marina.controller.kube.client import CONFLICT, KubeApi, KubeError
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import collector, monitoring, promotion, retraining, rollout
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.spec import ModelDeploymentSpec
from marina.controller.shared import builders, ownership, preflight, storage_area
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.conditions import (
    Outcome,
    State,
    find_condition,
    ready_condition,
    with_condition,
    without_condition,
)
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.reconciler import invalid, lock_for, settle
from marina.controller.shared.termination import pod_problem, terminated_message
from marina.system.clock import parse_timestamp, utc_now
from marina.system.text import one_line

KIND = "ModelDeployment"
SPEC_HASH = "marina.dev/spec-hash"


def reconcile(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    return settle(kube, settings, body, decide)


def model_of(value: Any) -> ModelReference | None:
    if isinstance(value, Mapping) and value.get("uri") and value.get("sha256"):
        return ModelReference(str(value["uri"]), str(value["sha256"]))
    return None


def desired_model(kube: KubeApi, namespace: str, spec: ModelDeploymentSpec) -> ModelReference | Outcome:
    if spec.model.training_job is None:
        assert spec.model.uri is not None and spec.model.sha256 is not None
        return ModelReference(spec.model.uri, spec.model.sha256)
    name = spec.model.training_job
    training = kube.get(builders.API_VERSION, "TrainingJob", namespace, name)
    if training is None:
        return Outcome(
            State.WAITING,
            "TrainingJobNotFound",
            f"TrainingJob {name} not found in namespace {namespace}; serving starts once it has a model",
        )
    model = model_of((training.get("status") or {}).get("model"))
    if model is None:
        why = ready_condition(training.get("status")).get("reason") or "not trained yet"
        return Outcome(
            State.PROGRESSING,
            "WaitingForModel",
            f"TrainingJob {name} has no model yet ({why}); serving starts when it has one",
        )
    return model


def ensure(
    kube: KubeApi, owner: builders.Owner, desired: dict[str, Any], existing: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Create `desired`, or apply it to our existing child unless that already carries it (skipping
    no-op writes and their events). `existing` has been checked to be ours (`children`). A field the
    create set and a later apply leaves out stays (the create's field manager still owns it)."""
    if not needs_write(desired, existing):
        assert existing is not None
        return dict(existing)
    digest = builders.short_hash(desired)
    desired["metadata"].setdefault("annotations", {})[SPEC_HASH] = digest
    return kube.apply(desired) if existing else ownership.create(kube, owner, desired)


def needs_write(desired: Mapping[str, Any], existing: Mapping[str, Any] | None) -> bool:
    """Whether `ensure` would write: the child is absent or carries another spec hash."""
    digest = builders.short_hash(desired)
    return not existing or (existing["metadata"].get("annotations") or {}).get(SPEC_HASH) != digest


def ensure_deployment(
    kube: KubeApi, settings: Settings, owner: builders.Owner, desired: dict[str, Any], existing: Children
) -> dict[str, Any] | Outcome:
    """`ensure` the Deployment; new pods need the namespace's credentials, so before a write they are
    provided (a Deployment left as it is keeps serving even while MinIO's admin API is away)."""
    if needs_write(desired, existing.deployment):
        blocked = preflight.blocking_outcome(kube, settings, owner.namespace)
        if blocked is not None:
            return blocked
    return ensure(kube, owner, desired, existing.deployment)


def rollout_complete(deployment: Mapping[str, Any]) -> bool:
    status = deployment.get("status") or {}
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    observed = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    return observed and all(
        status.get(key, 0) == wanted for key in ("updatedReplicas", "replicas", "availableReplicas")
    )


def rollout_stuck(deployment: Mapping[str, Any]) -> bool:
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return False
    return any(
        c.get("type") == "Progressing"
        and c.get("status") == "False"
        and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )


def rollout_failure_reason(
    kube: KubeApi, owner: builders.Owner, model: ModelReference, deployment: Mapping[str, Any]
) -> str:
    """Why the new pods never became ready: their own words when they left any."""
    selector = f"{builders.selector_string(owner)},{builders.GROUP}/model-version={model.version}"
    for pod in kube.list("v1", "Pod", owner.namespace, selector):
        said = terminated_message(pod) or pod_problem(pod)
        if said:
            return one_line(said, 512, keep_end=True)
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing":
            return one_line(str(condition.get("message", "progress deadline exceeded")), 512, keep_end=True)
    return "the new pods did not become ready in time"


def rolled_back(serving: ModelReference, failed: ModelReference, reason: str) -> str:
    return (
        f"serving model {serving.version}: the rollout of model {failed.version} failed "
        f"and was rolled back ({reason})"
    )


def parse(settings: Settings, namespace: str, body: Mapping[str, Any]) -> ModelDeploymentSpec:
    """The typed spec; a model given by URI must lie in the namespace's storage area (or a shared one)."""
    spec = modeldeployment_spec.parse(body.get("spec"))
    if spec.model.uri is not None:
        areas = settings.model_areas(namespace)
        storage_area.require_inside("spec.model.uri", spec.model.uri, areas, settings.shared_prefixes)
    return spec


def decide(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    owner = builders.Owner.of(body)
    try:
        spec = parse(settings, owner.namespace, body)
    except InvalidSpec as error:
        return invalid(error)
    challenger = desired_model(kube, owner.namespace, spec)
    if isinstance(challenger, Outcome):
        return challenger
    # The promotion gate decides first; the admitted model then goes through the spec's rollout.
    champion = model_of((body.get("status") or {}).get("model"))
    admission = promotion.admitted(kube, settings, body, spec, challenger, champion)
    return admission.report(roll_out(kube, settings, body, owner, spec, admission.model))


def roll_out(
    kube: KubeApi,
    settings: Settings,
    body: Mapping[str, Any],
    owner: builders.Owner,
    spec: ModelDeploymentSpec,
    wanted: ModelReference,
) -> Outcome:
    """Serve `wanted` (the model the gate admitted): roll it out, or hold the last good model."""
    status = body.get("status") or {}
    serving, failed = model_of(status.get("model")), model_of(status.get("failedModel"))
    base = {"selector": builders.selector_string(owner), "url": builders.service_url(owner)}

    existing = children(kube, owner, spec)  # all read and checked before any write
    ensure_companions(kube, owner, spec, existing)
    current = existing.deployment
    running = builders.deployed_model(current)
    if current and serving and running and running != serving and rollout_stuck(current):
        reason = rollout_failure_reason(kube, owner, running, current)
        rolled = ensure_deployment(
            kube, settings, owner, builders.deployment(settings, owner, spec, serving), existing
        )
        if isinstance(rolled, Outcome):
            return rolled
        failed_fields = {**running.as_status(), "reason": reason}
        return Outcome(
            State.DEGRADED,
            "RolledBack",
            rolled_back(serving, running, reason),
            {**base, "failedModel": failed_fields},
        )
    # A model whose rollout failed is not tried again; anything new (or no fallback) is.
    target = serving if (failed and serving and wanted == failed) else wanted
    canaried = canary(kube, settings, body, spec, target, existing)
    if isinstance(canaried, Outcome):
        return canaried
    deployment = ensure_deployment(
        kube, settings, owner, builders.deployment(settings, owner, spec, target), existing
    )
    if isinstance(deployment, Outcome):
        return deployment
    observed = observe(kube, owner, deployment, target, status, base, wanted)
    return after_canary(kube, owner, observed, canaried or rollout.State.of(status.get("rollout")), existing)


@dataclass(frozen=True)
class Children:
    """A ModelDeployment's existing children, each one ours (None: absent, or not needed and not ours)."""

    deployment: dict[str, Any] | None
    service: dict[str, Any] | None
    hpa: dict[str, Any] | None
    canary: dict[str, Any] | None = None  # the canary Deployment (spec.rollout.strategy Canary)


def children(kube: KubeApi, owner: builders.Owner, spec: ModelDeploymentSpec) -> Children:
    """Read the Deployment, Service and HPA of this name; raise NameConflict if one it needs is not ours.
    A foreign HPA of this name is left alone when autoscaling is off (it is not in the way then)."""
    deployment = kube.get("apps/v1", "Deployment", owner.namespace, owner.name)
    service = kube.get("v1", "Service", owner.namespace, owner.name)
    hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", owner.namespace, owner.name)
    canary = kube.get("apps/v1", "Deployment", owner.namespace, builders.canary_name(owner))
    for needed in (
        deployment,
        service,
        hpa if spec.autoscaling is not None else None,
        canary if spec.rollout.canary else None,
    ):
        ownership.require_owned(owner, needed)
    return Children(deployment, service, _if_ours(owner, hpa), _if_ours(owner, canary))


def _if_ours(owner: builders.Owner, child: dict[str, Any] | None) -> dict[str, Any] | None:
    return child if child is not None and ownership.owns(owner, child) else None


def ensure_companions(
    kube: KubeApi, owner: builders.Owner, spec: ModelDeploymentSpec, existing: Children
) -> None:
    ensure(kube, owner, builders.service(owner), existing.service)
    if spec.autoscaling is not None:
        ensure(kube, owner, builders.horizontal_pod_autoscaler(owner, spec.autoscaling), existing.hpa)
    elif existing.hpa is not None:
        kube.delete("autoscaling/v2", "HorizontalPodAutoscaler", owner.namespace, owner.name)


def observe(
    kube: KubeApi,
    owner: builders.Owner,
    deployment: Mapping[str, Any],
    target: ModelReference,
    status: Mapping[str, Any],
    base: dict[str, Any],
    wanted: ModelReference,
) -> Outcome:
    dep_status = deployment.get("status") or {}
    fields = {
        **base,
        "replicas": dep_status.get("replicas", 0),
        "readyReplicas": dep_status.get("readyReplicas", 0),
    }
    serving = model_of(status.get("model"))
    running = builders.deployed_model(deployment)
    if target != wanted:  # holding the last good model after a failed rollout (its pods never left)
        reason = str((status.get("failedModel") or {}).get("reason", "not ready in time"))
        return Outcome(State.DEGRADED, "RolledBack", rolled_back(target, wanted, reason), fields)
    if running != target or not rollout_complete(deployment):
        problem = (
            rollout_failure_reason(kube, owner, target, deployment) if rollout_stuck(deployment) else None
        )
        if problem and serving is None:
            return Outcome(
                State.FAILED, "RolloutFailed", f"model {target.version} never became ready: {problem}", fields
            )
        message = (
            f"rolling out model {target.version}: {dep_status.get('updatedReplicas', 0)} updated, "
            f"{dep_status.get('availableReplicas', 0)} available of {deployment['spec'].get('replicas', 1)}"
        )
        return Outcome(State.PROGRESSING, "RollingOut", message, fields)
    fields["model"] = target.as_status()
    if serving is not None and serving != target:
        fields["previousModel"] = serving.as_status()
    fields["failedModel"] = None
    return Outcome(
        State.READY,
        "Available",
        f"serving model {target.version} on {fields['readyReplicas']} ready replicas at {base['url']}",
        fields,
    )


# -- canary rollouts (spec.rollout.strategy Canary): the canary Deployment and status.rollout ------------


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_traffic(kube: KubeApi, owner: builders.Owner) -> list[rollout.PodTraffic]:
    """Every ready serving pod's traffic counters (stable and canary: the Service's pods); a pod that
    does not answer is left out of this reading."""
    pods = collector.ready_pods(kube, owner.namespace, builders.selector_string(owner))
    path = f"/v2/models/{owner.name}/traffic"
    readings = []
    for pod, answer in zip(pods, collector.ask(pods, path), strict=True):
        try:
            readings.append(rollout.PodTraffic.parse(answer, pod.uid))
        except (KeyError, TypeError, ValueError):
            continue  # an error from the pod, or not a traffic document
    return readings


def canary(
    kube: KubeApi,
    settings: Settings,
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    target: ModelReference,
    existing: Children,
) -> Outcome | rollout.State | None:
    """Run `target` as a canary beside the serving model when the spec asks for one: an Outcome while
    the canary runs or once it is rolled back; the (Promoting) state once every step passed, for the
    stable Deployment to be updated; None when no canary is involved."""
    status = body.get("status") or {}
    state = rollout.State.of(status.get("rollout"))
    serving = model_of(status.get("model"))
    stable = existing.deployment
    if rollout.is_current(state, target) and state is not None and state.phase == rollout.PROMOTING:
        return state
    if not (
        spec.rollout.canary
        and serving is not None
        and target != serving
        and builders.deployed_model(stable) == serving
    ):
        return None
    return canary_step(kube, settings, body, spec, serving, target, existing, state)


def canary_step(
    kube: KubeApi,
    settings: Settings,
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    serving: ModelReference,
    target: ModelReference,
    existing: Children,
    state: rollout.State | None,
) -> Outcome | rollout.State:
    owner, steps, moment = builders.Owner.of(body), spec.rollout.steps, now()
    replicas = int(((existing.deployment or {}).get("spec") or {}).get("replicas") or spec.replicas or 1)
    if state is None or not rollout.is_current(state, target):
        state = rollout.start(target, steps, replicas, timestamp(moment))
    elif state.step >= len(steps):  # the spec lost steps meanwhile
        state = rollout.at_step(state, len(steps) - 1, steps, replicas)
    paused = state.paused_for(moment)
    if paused is not None and paused >= steps[state.step].pause_seconds:
        verdict = rollout.analyse(state, read_traffic(kube, owner), serving, spec.rollout.analysis)
        judged = rollout.after(state, verdict, steps, replicas)
        if judged.phase == rollout.ROLLED_BACK:
            return abort_canary(kube, owner, serving, judged, rollout.rollback_reason(state, verdict))
        if judged.phase == rollout.PROMOTING:
            kube.event(body, "Normal", "CanaryPassed", f"model {target.version}: {verdict.message}")
            return judged
        state = judged
    pods = rollout.canary_replicas(steps[state.step].weight, replicas)
    desired = builders.canary_deployment(settings, owner, spec, target, pods)
    if needs_write(desired, existing.canary):
        blocked = preflight.blocking_outcome(kube, settings, owner.namespace)
        if blocked is not None:
            return blocked
    deployment = ensure(kube, owner, desired, existing.canary)
    if rollout_stuck(deployment):
        said = rollout_failure_reason(kube, owner, target, deployment)
        reason = f"canary step {state.step + 1}/{state.steps}: its pods never became ready: {said}"
        return abort_canary(kube, owner, serving, state, reason)
    if not rollout_complete(deployment):
        ready = (deployment.get("status") or {}).get("availableReplicas", 0)
        return canary_outcome(state, f"waiting for the canary's pods ({ready} of {pods} ready)")
    if state.step_started is None:
        state = rollout.began(state, timestamp(moment), read_traffic(kube, owner))
    paused = state.paused_for(moment) or 0.0
    left = steps[state.step].pause_seconds - paused
    said = str((state.analysis or {}).get("message", "")) if left <= 0 else f"analysis in {left:.0f} s"
    return canary_outcome(state, said)


def canary_outcome(state: rollout.State, said: str) -> Outcome:
    message = (
        f"canary of model {state.canary.version} at step {state.step + 1}/{state.steps} "
        f"(stable/canary {state.weights}): {said}"
    )
    return Outcome(State.PROGRESSING, "Canary", message, {"rollout": state.to_status()})


def abort_canary(
    kube: KubeApi,
    owner: builders.Owner,
    serving: ModelReference,
    state: rollout.State,
    reason: str,
) -> Outcome:
    """A failed step: the canary's pods go (they drain as any pod does: preStop, then SIGTERM), the
    stable keeps serving, and the model is not tried again (status.failedModel) until a new one comes."""
    kube.delete("apps/v1", "Deployment", owner.namespace, builders.canary_name(owner))
    aborted = replace(state, phase=rollout.ROLLED_BACK, baseline=(), weights=rollout.weights(1, 0))
    fields = {"failedModel": {**state.canary.as_status(), "reason": reason}, "rollout": aborted.to_status()}
    return Outcome(State.DEGRADED, "RolledBack", rolled_back(serving, state.canary, reason), fields)


def after_canary(
    kube: KubeApi, owner: builders.Owner, outcome: Outcome, state: rollout.State | None, existing: Children
) -> Outcome:
    """Once the stable Deployment has settled no canary is left, and a canary's record ends: promoted
    when the stable serves its model, rolled back when the stable's own update of it failed, gone when
    the spec moved on (another model, or RollingUpdate) before it ended."""
    if outcome.state is State.PROGRESSING:
        return outcome if state is None else with_rollout(outcome, state.to_status())
    if existing.canary is not None:
        kube.delete("apps/v1", "Deployment", owner.namespace, builders.canary_name(owner))
    if state is None or state.phase not in (rollout.PROGRESSING, rollout.PROMOTING):
        return outcome
    served = outcome.fields.get("model", {}).get("sha256")
    if outcome.state is State.READY and state.phase == rollout.PROMOTING and served == state.canary.sha256:
        return with_rollout(outcome, rollout.promoted(state).to_status())
    if outcome.state is State.DEGRADED:
        return with_rollout(outcome, replace(state, phase=rollout.ROLLED_BACK, baseline=()).to_status())
    return with_rollout(outcome, None)


def with_rollout(outcome: Outcome, fields: dict[str, Any] | None) -> Outcome:
    return replace(outcome, fields={**outcome.fields, "rollout": fields})


# -- drift monitoring (spec.monitoring): status.monitoring and the Drifted condition ------------------

HISTORIES = "drift-histories"  # key in the object's kopf memo: each pod's `monitoring.History`, by uid
LAST_CHECK = "drift-last-check"  # key in the memo: time.monotonic() of the last check


def monitor(
    kube: KubeApi,
    namespace: str,
    name: str,
    memory: MutableMapping[str, Any],
    fetch: collector.Fetch = collector.fetch_json,
    clock: Callable[[], float] = time.time,
) -> None:
    """One tick of the loop for a ModelDeployment it watches: the drift check when one is due, then
    retraining when a trigger fires (drift, or the schedule)."""
    body = kube.get(builders.API_VERSION, KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    try:
        spec = modeldeployment_spec.parse(body.get("spec"))
    except InvalidSpec:
        return  # the reconciler reports it
    judged = check_drift(kube, body, spec.monitoring, memory, fetch, clock)
    if spec.retrains:
        retrain(kube, namespace, name, spec, judged, datetime.datetime.fromtimestamp(clock(), datetime.UTC))


def check_drift(
    kube: KubeApi,
    body: Mapping[str, Any],
    spec: modeldeployment_spec.Monitoring | None,
    memory: MutableMapping[str, Any],
    fetch: collector.Fetch,
    clock: Callable[[], float],
) -> monitoring.Assessment | None:
    """One drift check when it is due: read the ready pods' counts, judge them, write the status.
    `memory` outlives the check (the loop's per-object memo): the pods' histories cut their windows.
    None when no check was due."""
    owner = builders.Owner.of(body)
    namespace, name = owner.namespace, owner.name
    if spec is None:
        forget_drift(kube, namespace, name)
        return None
    if not monitoring.due(memory.get(LAST_CHECK), spec.interval_seconds, time.monotonic()):
        return None
    memory[LAST_CHECK] = time.monotonic()
    pods = collector.ready_pods(kube, namespace, builders.selector_string(owner))
    collected = collector.collect(pods, name, clock(), fetch)
    previous: Mapping[str, monitoring.History] = memory.get(HISTORIES) or {}
    histories = {r.pod: monitoring.history(r, previous.get(r.pod)) for r in collected.readings}
    serving = model_of((body.get("status") or {}).get("model"))
    judged = monitoring.judge(list(histories.values()), serving.version if serving else None, spec)
    live = {pod.uid for pod in pods}  # a pod that did not answer this time keeps its history
    memory[HISTORIES] = {**{uid: h for uid, h in previous.items() if uid in live}, **histories}
    assessment = judged or not_judged(collected, len(pods))
    with lock_for(KIND, namespace, name):  # the reconciler rewrites the conditions list under it too
        current = kube.get(builders.API_VERSION, KIND, namespace, name)
        if current is not None:
            report_drift(kube, current, assessment)
    return assessment


def not_judged(collected: collector.Collected, pods: int) -> monitoring.Assessment:
    """Why no pod's counts could be read."""
    if pods == 0:
        return monitoring.unavailable("no ready serving pod to read counts from")
    if collected.no_reference:
        return monitoring.unavailable(
            "the served model has no reference distribution (trained before Marina recorded one); "
            "retrain it to monitor drift"
        )
    return monitoring.unavailable(one_line("no pod answered: " + "; ".join(collected.problems), 1000))


def report_drift(
    kube: KubeApi,
    body: Mapping[str, Any],
    assessment: monitoring.Assessment,
    clock: Callable[[], str] = utc_now,
) -> None:
    """Write status.monitoring and the Drifted condition; an event when the condition's status changes."""
    status = body.get("status") or {}
    state = monitoring.condition(assessment)
    generation = int(body["metadata"].get("generation") or 0)
    conditions = with_condition(status.get("conditions") or [], monitoring.DRIFTED, state, generation, clock)
    kube.patch_status(
        body, {"monitoring": monitoring.to_status(assessment, clock()), "conditions": conditions}
    )
    before = find_condition(status, monitoring.DRIFTED).get("status", "Unknown")
    if before != state[0]:
        warning = state[0] == "True" or assessment.level is monitoring.Level.UNAVAILABLE
        kube.event(body, "Warning" if warning else "Normal", state[1], f"Drifted {state[0]}: {state[2]}")


def forget_drift(kube: KubeApi, namespace: str, name: str) -> None:
    """Monitoring switched off: status.monitoring and the Drifted condition go (they would only go stale)."""
    with lock_for(KIND, namespace, name):
        body = kube.get(builders.API_VERSION, KIND, namespace, name)
        status = (body or {}).get("status") or {}
        if body is None or not (status.get("monitoring") or find_condition(status, monitoring.DRIFTED)):
            return
        conditions = without_condition(status.get("conditions") or [], monitoring.DRIFTED)
        kube.patch_status(body, {"monitoring": None, "conditions": conditions})


# -- retraining (spec.monitoring.onDrift: Retrain, spec.retraining): status.retraining ----------------


def retrain(
    kube: KubeApi,
    namespace: str,
    name: str,
    spec: ModelDeploymentSpec,
    judged: monitoring.Assessment | None,
    now: datetime.datetime,
) -> None:
    """Refresh the Dataset behind the served TrainingJob when a trigger fires within the limits
    (`retraining`); the record goes into status first, so a crash in between never exceeds them."""
    with lock_for(KIND, namespace, name):
        body = kube.get(builders.API_VERSION, KIND, namespace, name)
        if body is None:
            return
        record = retraining.Record.of(body.get("status"))
        created = parse_timestamp(str(body["metadata"].get("creationTimestamp") or retraining.stamp(now)))
        drifted = judged is not None and judged.level is monitoring.Level.DRIFTED
        reason = retraining.due(spec, record, drifted, now, created)
        if reason is None:
            return
        stopped = retraining.hold(record, spec.retraining, now)
        target = dataset_to_refresh(kube, namespace, spec) if stopped is None else None
        if stopped is not None or isinstance(target, retraining.Hold):
            held = stopped or target
            assert isinstance(held, retraining.Hold)
            hold_retrain(kube, body, record, reason, held, spec, now)
            return
        assert isinstance(target, str)
        why = judged.message if reason == retraining.DRIFT and judged is not None else "the schedule"
        fields = retraining.triggered(
            record, reason, why, target, retraining.token(name, now), now, spec.retraining
        )
        try:
            kube.patch_status(body, {"retraining": fields}, unchanged_since_read=True)
        except KubeError as error:
            if error.code == CONFLICT:
                return  # written since the read (another replica, a reconcile): the next tick decides again
            raise
        kube.apply(retraining.refresh(namespace, target, fields["refresh"]))
        metrics.retrain_triggered(namespace, name, str(reason))
        kube.event(
            body,
            "Normal",
            "RetrainTriggered",
            f"{reason}: refreshed Dataset {target} ({why}); refresh {fields['countToday']} of "
            f"{spec.retraining.max_per_day} today, next allowed at {fields['nextAllowed']}",
        )


def dataset_to_refresh(kube: KubeApi, namespace: str, spec: ModelDeploymentSpec) -> str | retraining.Hold:
    """The Dataset the served TrainingJob trains on, or why there is none to refresh."""
    name = spec.model.training_job
    training = kube.get(builders.API_VERSION, "TrainingJob", namespace, name or "") if name else None
    dataset = ((training or {}).get("spec") or {}).get("dataset") or {}
    if training is None or not dataset.get("name"):
        return retraining.Hold(retraining.NO_DATASET, f"TrainingJob {name} not found or names no Dataset")
    if dataset.get("version"):
        return retraining.Hold(
            retraining.NO_DATASET,
            f"TrainingJob {name} pins dataset version {dataset['version']}: a refresh would not retrain it",
        )
    if kube.get(builders.API_VERSION, "Dataset", namespace, str(dataset["name"])) is None:
        return retraining.Hold(retraining.NO_DATASET, f"Dataset {dataset['name']} not found")
    return str(dataset["name"])


def hold_retrain(
    kube: KubeApi,
    body: Mapping[str, Any],
    record: retraining.Record,
    trigger: str,
    held: retraining.Hold,
    spec: ModelDeploymentSpec,
    now: datetime.datetime,
) -> None:
    """Record a trigger that may not refresh now; an event when the reason for holding changes."""
    if record.held == held.reason:
        return
    fields = retraining.held(trigger, held, now)
    kube.patch_status(body, {"retraining": fields})
    warning = held.reason == retraining.NO_DATASET
    message = f"{trigger} trigger held: {fields['held']['message']}"
    kube.event(body, "Warning" if warning else "Normal", "RetrainHeld", message)
