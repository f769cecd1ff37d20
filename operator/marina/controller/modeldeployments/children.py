"""A ModelDeployment's children as observed (read once, each checked to be ours), how a Deployment's
rollout stands, and the writes that make a child what the spec asks for (`ensure`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina.contract import GROUP
from marina.controller.modeldeployments import manifests, rollout
from marina.controller.modeldeployments.spec import ModelDeploymentSpec
from marina.controller.shared import builders, ownership
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.observation import Observation
from marina.controller.shared.plan import Action, Apply, Create
from marina.controller.shared.termination import pod_problem, terminated_message
from marina.system.text import one_line

SPEC_HASH = f"{GROUP}/spec-hash"


@dataclass(frozen=True)
class Children:
    """A ModelDeployment's existing children, each one ours (None: absent, or not needed and not ours)."""

    deployment: dict[str, Any] | None
    service: dict[str, Any] | None
    hpa: dict[str, Any] | None
    canary: dict[str, Any] | None = None  # the canary Deployment (spec.rollout.strategy Canary)
    budget: dict[str, Any] | None = None  # the PodDisruptionBudget
    shadow: dict[str, Any] | None = None  # the shadow challenger's Deployment (spec.rollout.shadow)
    shadow_service: dict[str, Any] | None = None  # and its Service


def children(seen: Observation, owner: builders.Owner, spec: ModelDeploymentSpec) -> Children:
    """The Deployment, Service, HPA and canary of this name; NameConflict if one it needs is not ours. A
    foreign HPA (or canary) of this name is left alone when not needed (it is not in the way then)."""
    deployment = seen.child("apps/v1", "Deployment", owner.name)
    service = seen.child("v1", "Service", owner.name)
    hpa = seen.child("autoscaling/v2", "HorizontalPodAutoscaler", owner.name)
    canary = seen.child("apps/v1", "Deployment", manifests.canary_name(owner))
    budget = seen.child("policy/v1", "PodDisruptionBudget", owner.name)
    shadowing = spec.rollout.shadow is not None
    shadow = shadow_service = None
    if shadowing or shadow_in_status(seen.body):  # two reads fewer for everyone else
        shadow = seen.child("apps/v1", "Deployment", manifests.shadow_name(owner))
        shadow_service = seen.child("v1", "Service", manifests.shadow_name(owner))
    for needed in (
        deployment,
        service,
        hpa if spec.autoscaling is not None else None,
        canary if spec.rollout.canary else None,
        budget if spec.disruption_budget is not None else None,
        shadow if shadowing else None,
        shadow_service if shadowing else None,
    ):
        ownership.require_owned(owner, needed)
    return Children(
        deployment,
        service,
        _if_ours(owner, hpa),
        _if_ours(owner, canary),
        _if_ours(owner, budget),
        _if_ours(owner, shadow),
        _if_ours(owner, shadow_service),
    )


def shadow_in_status(body: Mapping[str, Any]) -> bool:
    """Whether the last rollout had a shadow phase (its children may still need removing)."""
    last = (body.get("status") or {}).get("rollout") or {}
    return isinstance(last, Mapping) and (last.get("phase") == rollout.SHADOWING or bool(last.get("shadow")))


def _if_ours(owner: builders.Owner, child: dict[str, Any] | None) -> dict[str, Any] | None:
    return child if child is not None and ownership.owns(owner, child) else None


def needs_write(desired: Mapping[str, Any], existing: Mapping[str, Any] | None) -> bool:
    """Whether `ensure` writes: the child is absent or carries another spec hash."""
    digest = builders.short_hash(desired)
    return not existing or (existing["metadata"].get("annotations") or {}).get(SPEC_HASH) != digest


def ensure(
    owner: builders.Owner, desired: Mapping[str, Any], existing: Mapping[str, Any] | None
) -> tuple[dict[str, Any], tuple[Action, ...]]:
    """The child once `desired` is created, or applied to our existing child unless that already carries
    it (no no-op writes, nor their events); and that write. `existing` has been checked to be ours
    (`children`). A field the create set and a later apply leaves out stays (the create's field manager
    still owns it)."""
    if existing is not None and not needs_write(desired, existing):
        return dict(existing), ()
    meta = desired["metadata"]
    annotations = {**(meta.get("annotations") or {}), SPEC_HASH: builders.short_hash(desired)}
    written = {**desired, "metadata": {**meta, "annotations": annotations}}
    return as_written(written, existing), (Apply(written) if existing else Create(written),)


def as_written(written: Mapping[str, Any], existing: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the API server holds once `written` is: its spec, a generation the child's controller has not
    observed yet and the status it last wrote, so a Deployment just written is not rolled out yet (were
    only its metadata new, the write's own watch event brings the next reconcile, which sees it is). The
    replica count an HPA owns stays where `written` leaves it out."""
    if existing is None:
        return {**written, "metadata": {**written["metadata"], "generation": 1}}
    spec = dict(written.get("spec") or {})
    kept = (existing.get("spec") or {}).get("replicas")
    if "replicas" not in spec and kept is not None:
        spec["replicas"] = kept
    generation = int(existing["metadata"].get("generation") or 0) + 1
    meta = {**existing["metadata"], **written["metadata"], "generation": generation}
    return {**existing, "metadata": meta, "spec": spec}


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
    seen: Observation, owner: builders.Owner, model: ModelReference, deployment: Mapping[str, Any]
) -> str:
    """Why the new pods never became ready: their own words when they left any."""
    selector = f"{builders.selector_string(owner)},{GROUP}/model-version={model.version}"
    for pod in seen.children("v1", "Pod", selector):
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
