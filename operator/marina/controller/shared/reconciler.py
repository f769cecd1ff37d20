"""What every reconciler shares: observe, decide, act (`settle`); writing the Outcome into status (and an
event on transitions); turning a name taken by someone else's object or a refused child write into the
outcome; and serialising work per object."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from marina.controller.kube import metrics
from marina.controller.kube.client import KubeApi, KubeError
from marina.controller.kube.settings import Settings
from marina.controller.shared import ownership
from marina.controller.shared.conditions import Outcome, State, differs, needs_event, status_patch
from marina.controller.shared.observation import Observation, observe_then_decide
from marina.controller.shared.plan import Plan, act

# A child write the API server refused, by HTTP code: 400 and 422 (`Invalid`, including admission
# policies) refuse the same body again, so the resource is Stalled until something changes; 403
# (`Forbidden`: RBAC, an admission webhook, or a ResourceQuota, which the server reports as plain
# `Forbidden` with no reason of its own), 409 (`Conflict`, `AlreadyExists`), 429 and 5xx may pass
# later, so they are retried.
PERMANENT_REJECTIONS = frozenset({400, 422})
REJECTION_REASONS = {403: "Forbidden", 409: "Conflict"}
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def lock_for(kind: str, namespace: str, name: str) -> threading.Lock:
    """One lock per object: a watch event of a child and a change of the object never interleave."""
    with _locks_guard:
        return _locks.setdefault((kind, namespace, name), threading.Lock())


def forget_lock(kind: str, namespace: str, name: str) -> None:
    """The object is gone: its lock goes too (a holder keeps its own reference until it is done)."""
    with _locks_guard:
        _locks.pop((kind, namespace, name), None)


def locked_objects() -> set[tuple[str, str, str]]:
    with _locks_guard:
        return set(_locks)


def report(kube: KubeApi, body: Mapping[str, Any], outcome: Outcome) -> Outcome:
    """Write the outcome into the status (only if it changes anything) and post an event on transitions."""
    metrics.reconciled(
        str(body.get("kind")), outcome.state.value, outcome.reason if outcome.warning else None
    )
    current = body.get("status") or {}
    patch = status_patch(outcome, current, int(body["metadata"].get("generation") or 0))
    if differs(patch, current):
        kube.patch_status(body, patch)
    if needs_event(outcome, current):
        kube.event(body, "Warning" if outcome.warning else "Normal", outcome.reason, outcome.message)
    return outcome


def invalid(error: Exception) -> Outcome:
    return Outcome(State.FAILED, "InvalidSpec", str(error))


def rejected(error: KubeError, settings: Settings) -> Outcome:
    """The outcome of a child write the API server refused, decided by the code, never by the words."""
    said = f"the API server refused to {error.verb} {error.kind} {error.where}: {error.said}"
    reason = REJECTION_REASONS.get(error.code or 0, "ChildRejected")
    if error.code in PERMANENT_REJECTIONS:
        return Outcome(State.FAILED, reason, f"{said}; not retried until the spec changes")
    return Outcome(State.WAITING, reason, f"{said}; retrying every {settings.recheck_seconds:g}s")


Reconcile = Callable[[KubeApi, Settings, Mapping[str, Any]], Outcome]
Decide = Callable[[Settings, Observation], Plan]  # each kind's: pure (`observation`)


def settle(kube: KubeApi, settings: Settings, body: Mapping[str, Any], decide: Decide) -> Outcome:
    """Observe, decide, act, and report; a name taken by someone else's object or a refused child write is
    reported too (condition and Warning event), instead of only reaching the operator's log."""
    try:
        outcome = act(kube, body, observe_then_decide(kube, settings, body, decide))
    except ownership.NameConflict as conflict:
        outcome = conflict.outcome()
    except KubeError as error:
        if not error.write:
            raise  # reads failing: the API server itself is in trouble, kopf retries
        outcome = rejected(error, settings)
    return report(kube, body, outcome)
