"""Status conventions: `observedGeneration` and Ready/Reconciling/Stalled conditions.

A reconciler reports one `Outcome`; this module turns it into the status patch (keeping each
condition's lastTransitionTime while its status holds) and decides which event a transition earns.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from marina.system.clock import utc_now

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"


class State(enum.Enum):
    READY = "ready"  # desired state reached
    PROGRESSING = "progressing"  # work under way (a Job running, a rollout)
    WAITING = "waiting"  # blocked on something outside (missing Dataset, storage down): retried
    FAILED = "failed"  # cannot succeed until the spec or the data changes: not retried
    BLOCKED = "blocked"  # cannot go on until someone acts outside the spec (an object in the way): retried
    DEGRADED = "degraded"  # serving, but not what the spec asks for (rolled back)


@dataclass(frozen=True)
class Outcome:
    state: State
    reason: str
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)  # status fields to set besides conditions

    @property
    def warning(self) -> bool:
        return self.state in (State.WAITING, State.FAILED, State.BLOCKED, State.DEGRADED)


def _triple(state: State) -> tuple[bool, bool, bool]:
    """(Ready, Reconciling, Stalled) for a state."""
    return {
        State.READY: (True, False, False),
        State.PROGRESSING: (False, True, False),
        State.WAITING: (False, True, False),
        State.FAILED: (False, False, True),
        State.BLOCKED: (False, False, True),
        State.DEGRADED: (True, False, True),
    }[state]


def conditions_for(
    outcome: Outcome,
    existing: Sequence[Mapping[str, Any]],
    generation: int,
    clock: Callable[[], str] = utc_now,
) -> list[dict[str, Any]]:
    by_type = {c.get("type"): c for c in existing}
    result = []
    for kind, value in zip((READY, RECONCILING, STALLED), _triple(outcome.state), strict=True):
        status = "True" if value else "False"
        previous = by_type.pop(kind, None)
        unchanged = previous is not None and previous.get("status") == status
        result.append(
            {
                "type": kind,
                "status": status,
                "reason": outcome.reason,
                "message": outcome.message if value or kind == READY else "",
                "lastTransitionTime": previous.get("lastTransitionTime", clock())
                if unchanged and previous
                else clock(),
                "observedGeneration": generation,
            }
        )
    result.extend(dict(c) for c in by_type.values())  # other writers' conditions stay
    return result


TRANSIENT_FIELDS = ("progress",)


def status_patch(
    outcome: Outcome, current: Mapping[str, Any] | None, generation: int, clock: Callable[[], str] = utc_now
) -> dict[str, Any]:
    current = current or {}
    # Fields that describe a run in progress go when it ends (null deletes them in a merge patch).
    ended = {key: None for key in TRANSIENT_FIELDS if key in current and key not in outcome.fields}
    return {
        **ended,
        **outcome.fields,
        "observedGeneration": generation,
        "conditions": conditions_for(outcome, current.get("conditions") or [], generation, clock),
    }


def ready_condition(status: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return find_condition(status, READY)


def find_condition(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any]:
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def with_condition(
    existing: Sequence[Mapping[str, Any]],
    kind: str,
    state: tuple[str, str, str],
    generation: int,
    clock: Callable[[], str] = utc_now,
) -> list[dict[str, Any]]:
    """`existing` with the condition `kind` set to `state` (status, reason, message), keeping its
    lastTransitionTime while its status holds; for conditions other writers than the reconciler own."""
    status, reason, message = state
    before = next((c for c in existing if c.get("type") == kind), None)
    held = before is not None and before.get("status") == status and before.get("lastTransitionTime")
    condition = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": before["lastTransitionTime"] if held and before else clock(),
        "observedGeneration": generation,
    }
    return [*without_condition(existing, kind), condition]


def without_condition(existing: Sequence[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [dict(c) for c in existing if c.get("type") != kind]


def is_ready(status: Mapping[str, Any] | None) -> bool:
    return ready_condition(status).get("status") == "True"


def needs_event(outcome: Outcome, current: Mapping[str, Any] | None) -> bool:
    """An event marks each change of the Ready condition's status or reason (not every new count)."""
    before = ready_condition(current)
    ready = "True" if _triple(outcome.state)[0] else "False"
    return (before.get("status"), before.get("reason")) != (ready, outcome.reason)


def differs(patch: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether writing `patch` would change the stored status (so no-op writes are skipped)."""
    current = current or {}
    return any(current.get(key) != value for key, value in patch.items())
