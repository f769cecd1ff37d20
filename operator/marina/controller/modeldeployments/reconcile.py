"""ModelDeployment reconciliation: a Deployment, a Service and an optional HPA serving one model.

`decide` is a pure function of what was observed (`shared.observation`): the model the spec asks for
(through its TrainingJob), the promotion gate's verdict (`promotion`), the model the Deployment's pods
run, the model known to serve (status.model) and the model whose rollout already failed
(status.failedModel, never retried until something new arrives); with a canary, its step (`canary`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marina.contract import API_VERSION
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import canary, manifests, promotion, rollout
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.children import (
    Children,
    children,
    ensure,
    needs_write,
    rolled_back,
    rollout_complete,
    rollout_failure_reason,
    rollout_stuck,
)
from marina.controller.modeldeployments.spec import ModelDeploymentSpec
from marina.controller.shared import builders, storage_area
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.conditions import Outcome, State, ready_condition
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.observation import Observation
from marina.controller.shared.plan import Action, Delete, Plan
from marina.controller.shared.reconciler import invalid, settle

KIND = "ModelDeployment"


def reconcile(kube: KubeApi, settings: Settings, body: Mapping[str, Any]) -> Outcome:
    return settle(kube, settings, body, decide)


def parse(settings: Settings, namespace: str, body: Mapping[str, Any]) -> ModelDeploymentSpec:
    """The typed spec; a model given by URI must lie in the namespace's storage area (or a shared one)."""
    spec = modeldeployment_spec.parse(body.get("spec"))
    if spec.model.uri is not None:
        areas = settings.model_areas(namespace)
        storage_area.require_inside("spec.model.uri", spec.model.uri, areas, settings.shared_prefixes)
    return spec


def decide(settings: Settings, seen: Observation) -> Plan:
    owner = builders.Owner.of(seen.body)
    try:
        spec = parse(settings, owner.namespace, seen.body)
    except InvalidSpec as error:
        return Plan(invalid(error))
    challenger = desired_model(seen, spec)
    if isinstance(challenger, Outcome):
        return Plan(challenger)
    # The promotion gate decides first; the admitted model then goes through the spec's rollout.
    champion = ModelReference.of((seen.body.get("status") or {}).get("model"))
    admission = promotion.admitted(seen, settings, spec, challenger, champion)
    rolled = roll_out(seen, settings, owner, spec, admission.model)
    return Plan(admission.report(rolled.outcome), admission.actions + rolled.actions)


def desired_model(seen: Observation, spec: ModelDeploymentSpec) -> ModelReference | Outcome:
    if spec.model.training_job is None:
        assert spec.model.uri is not None and spec.model.sha256 is not None
        return ModelReference(spec.model.uri, spec.model.sha256)
    name, namespace = spec.model.training_job, seen.namespace
    training = seen.child(API_VERSION, "TrainingJob", name)
    if training is None:
        return Outcome(
            State.WAITING,
            "TrainingJobNotFound",
            f"TrainingJob {name} not found in namespace {namespace}; serving starts once it has a model",
        )
    model = ModelReference.of((training.get("status") or {}).get("model"))
    if model is None:
        why = ready_condition(training.get("status")).get("reason") or "not trained yet"
        return Outcome(
            State.PROGRESSING,
            "WaitingForModel",
            f"TrainingJob {name} has no model yet ({why}); serving starts when it has one",
        )
    return model


def roll_out(
    seen: Observation,
    settings: Settings,
    owner: builders.Owner,
    spec: ModelDeploymentSpec,
    wanted: ModelReference,
) -> Plan:
    """Serve `wanted` (the model the gate admitted): roll it out, or hold the last good model."""
    status = seen.body.get("status") or {}
    serving, failed = ModelReference.of(status.get("model")), ModelReference.of(status.get("failedModel"))
    existing = children(seen, owner, spec)  # all read and checked before any write
    companions = ensure_companions(owner, spec, existing)
    current = existing.deployment
    running = manifests.deployed_model(current)
    if current and serving and running and running != serving and rollout_stuck(current):
        return roll_back(seen, settings, owner, spec, existing, serving, running).after(companions)
    # A model whose rollout failed is not tried again; anything new (or no fallback) is.
    target = serving if (failed and serving and wanted == failed) else wanted
    stepped = canary.canary(seen, settings, spec, target, existing)
    if stepped is not None and stepped.outcome is not None:
        return Plan(stepped.outcome, companions + stepped.actions)
    before = companions + (stepped.actions if stepped else ())
    desired = manifests.deployment(settings, owner, spec, target)
    deployment = ensure_deployment(seen, owner, desired, existing)
    if isinstance(deployment, Outcome):
        return Plan(deployment, before)
    written, actions = deployment
    outcome = served(seen, owner, written, target, wanted)
    state = stepped.promoting if stepped else rollout.State.of(status.get("rollout"))
    return canary.after_canary(owner, outcome, state, existing).after(before + actions)


def roll_back(
    seen: Observation,
    settings: Settings,
    owner: builders.Owner,
    spec: ModelDeploymentSpec,
    existing: Children,
    serving: ModelReference,
    running: ModelReference,
) -> Plan:
    """The Deployment's new pods never became ready: back to the model that served (its pods never left)."""
    assert existing.deployment is not None
    reason = rollout_failure_reason(seen, owner, running, existing.deployment)
    desired = manifests.deployment(settings, owner, spec, serving)
    rolled = ensure_deployment(seen, owner, desired, existing)
    if isinstance(rolled, Outcome):
        return Plan(rolled)
    fields = {**base_fields(owner), "failedModel": {**running.as_status(), "reason": reason}}
    outcome = Outcome(State.DEGRADED, "RolledBack", rolled_back(serving, running, reason), fields)
    return Plan(outcome, rolled[1])


def ensure_deployment(
    seen: Observation, owner: builders.Owner, desired: dict[str, Any], existing: Children
) -> tuple[dict[str, Any], tuple[Action, ...]] | Outcome:
    """`ensure` the Deployment; new pods need the namespace's credentials, so before a write they are
    provided (a Deployment left as it is keeps serving even while MinIO's admin API is away)."""
    if needs_write(desired, existing.deployment) and (blocked := seen.blocked()) is not None:
        return blocked
    return ensure(owner, desired, existing.deployment)


def ensure_companions(
    owner: builders.Owner, spec: ModelDeploymentSpec, existing: Children
) -> tuple[Action, ...]:
    """The Service; the HPA while the spec asks for autoscaling and the PodDisruptionBudget while more than
    one replica serves (ours goes when it is no longer needed)."""
    _, actions = ensure(owner, manifests.service(owner), existing.service)
    if spec.autoscaling is not None:
        _, hpa = ensure(owner, manifests.horizontal_pod_autoscaler(owner, spec.autoscaling), existing.hpa)
        actions += hpa
    elif existing.hpa is not None:
        actions += (Delete("autoscaling/v2", "HorizontalPodAutoscaler", owner.name),)
    budget = spec.disruption_budget
    if budget is not None:
        actions += ensure(owner, manifests.pod_disruption_budget(owner, budget), existing.budget)[1]
    elif existing.budget is not None:
        actions += (Delete("policy/v1", "PodDisruptionBudget", owner.name),)
    return actions


def base_fields(owner: builders.Owner) -> dict[str, Any]:
    return {"selector": builders.selector_string(owner), "url": manifests.service_url(owner)}


def served(
    seen: Observation,
    owner: builders.Owner,
    deployment: Mapping[str, Any],
    target: ModelReference,
    wanted: ModelReference,
) -> Outcome:
    """How the rollout of `target` stands, from its Deployment (as written by this reconcile, if it was)."""
    status = seen.body.get("status") or {}
    dep_status = deployment.get("status") or {}
    base = base_fields(owner)
    fields = {
        **base,
        "replicas": dep_status.get("replicas", 0),
        "readyReplicas": dep_status.get("readyReplicas", 0),
    }
    serving = ModelReference.of(status.get("model"))
    running = manifests.deployed_model(deployment)
    if target != wanted:  # holding the last good model after a failed rollout (its pods never left)
        reason = str((status.get("failedModel") or {}).get("reason", "not ready in time"))
        return Outcome(State.DEGRADED, "RolledBack", rolled_back(target, wanted, reason), fields)
    if running != target or not rollout_complete(deployment):
        problem = (
            rollout_failure_reason(seen, owner, target, deployment) if rollout_stuck(deployment) else None
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
