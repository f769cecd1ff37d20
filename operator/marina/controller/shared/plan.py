"""What a reconcile decided: the outcome to report and the writes that lead to it, in order (`Plan`),
carried out by `act` once every read is done (`observation`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina.controller.kube.client import KubeApi
from marina.controller.shared import ownership
from marina.controller.shared.builders import Owner
from marina.controller.shared.conditions import Outcome


@dataclass(frozen=True)
class Create:
    """A child, created (never applied): an object found under its name must be ours (`ownership`)."""

    body: Mapping[str, Any]


@dataclass(frozen=True)
class Apply:
    """A server-side apply: of our own existing child, or of the refresh annotation on a Dataset."""

    body: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    """A child of the reconciled object's namespace."""

    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class Post:
    """An event on the reconciled object."""

    type: str
    reason: str
    message: str


Action = Create | Apply | Delete | Post


@dataclass(frozen=True)
class Plan:
    outcome: Outcome
    actions: tuple[Action, ...] = ()

    def after(self, actions: tuple[Action, ...]) -> Plan:
        """This plan with `actions` done first."""
        return Plan(self.outcome, actions + self.actions)


def act(kube: KubeApi, body: Mapping[str, Any], plan: Plan) -> Outcome:
    """Carry the plan out in order. A refused write raises KubeError, a name taken by someone else's object
    NameConflict; the writes before it stay done (`reconciler.settle` reports either)."""
    owner = Owner.of(body)
    for action in plan.actions:
        if isinstance(action, Create):
            ownership.create(kube, owner, action.body)
        elif isinstance(action, Apply):
            kube.apply(action.body)
        elif isinstance(action, Delete):
            kube.delete(action.api_version, action.kind, owner.namespace, action.name)
        else:
            kube.event(body, action.type, action.reason, action.message)
    return plan.outcome
