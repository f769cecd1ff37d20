"""Drift checks (spec.monitoring): read the ready serving pods' counts (`collector`), judge them
(`monitoring`, pure), and say what status.monitoring and the Drifted condition become and which event
that earns; `monitor.tick` writes it. Switched off, the drift status goes (it would only go stale)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from marina.controller.kube.client import KubeApi
from marina.controller.modeldeployments import collector, monitoring
from marina.controller.modeldeployments.performance import DEGRADED
from marina.controller.modeldeployments.spec import Monitoring
from marina.controller.shared import builders
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.conditions import find_condition, with_condition
from marina.controller.shared.plan import Post
from marina.system.clock import utc_now
from marina.system.text import one_line

HISTORIES = "drift-histories"  # key in the loop's memory of the object: each pod's `monitoring.History`
LAST_CHECK = "drift-last-check"  # key in the memory: time.monotonic() of the last check


@dataclass(frozen=True)
class Check:
    """What a drift check changes: status fields, the event a change of the Drifted condition earns, and
    its assessment (None when monitoring is off)."""

    fields: Mapping[str, Any]
    events: tuple[Post, ...] = ()
    judged: monitoring.Assessment | None = None


def check(
    kube: KubeApi,
    body: Mapping[str, Any],
    spec: Monitoring | None,
    memory: MutableMapping[str, Any],
    fetch: collector.Fetch,
    clock: Callable[[], float],
) -> Check | None:
    """The drift check when one is due (None when none is, or monitoring is off with nothing to remove).
    `memory` outlives the check (the loop's memory of the object): the pods' histories cut their windows."""
    status = body.get("status") or {}
    if spec is None:
        gone = forgotten(status)
        return None if gone is None else Check(gone)
    if not monitoring.due(memory.get(LAST_CHECK), spec.interval_seconds, time.monotonic()):
        return None
    memory[LAST_CHECK] = time.monotonic()
    owner = builders.Owner.of(body)
    pods = collector.ready_pods(kube, owner.namespace, builders.selector_string(owner))
    collected = collector.collect(pods, owner.name, clock(), fetch)
    previous: Mapping[str, monitoring.History] = memory.get(HISTORIES) or {}
    histories = {r.pod: monitoring.history(r, previous.get(r.pod)) for r in collected.readings}
    serving = ModelReference.of(status.get("model"))
    judged = monitoring.judge(list(histories.values()), serving.version if serving else None, spec)
    live = {pod.uid for pod in pods}  # a pod that did not answer this time keeps its history
    memory[HISTORIES] = {**{uid: h for uid, h in previous.items() if uid in live}, **histories}
    return drift_status(body, judged or not_judged(collected, len(pods)))


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


def drift_status(
    body: Mapping[str, Any], assessment: monitoring.Assessment, clock: Callable[[], str] = utc_now
) -> Check:
    """status.monitoring and the Drifted condition; an event when the condition's status changes."""
    status = body.get("status") or {}
    state = monitoring.condition(assessment)
    generation = int(body["metadata"].get("generation") or 0)
    conditions = with_condition(status.get("conditions") or [], monitoring.DRIFTED, state, generation, clock)
    fields = {"monitoring": monitoring.to_status(assessment, clock()), "conditions": conditions}
    before = find_condition(status, monitoring.DRIFTED).get("status", "Unknown")
    if before == state[0]:
        return Check(fields, judged=assessment)
    warning = state[0] == "True" or assessment.level is monitoring.Level.UNAVAILABLE
    event = Post("Warning" if warning else "Normal", state[1], f"Drifted {state[0]}: {state[2]}")
    return Check(fields, (event,), assessment)


def forgotten(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The status without status.monitoring and the conditions monitoring sets (Drifted, and Degraded
    for spec.monitoring.performance); None when it has none of them."""
    owned = (monitoring.DRIFTED, DEGRADED)
    if not (status.get("monitoring") or any(find_condition(status, kind) for kind in owned)):
        return None
    return {
        "monitoring": None,
        "conditions": [c for c in status.get("conditions") or [] if c.get("type") not in owned],
    }


def forget(kube: KubeApi, body: Mapping[str, Any]) -> None:
    """Monitoring switched off: remove the drift status now (the caller holds the object's lock)."""
    gone = forgotten(body.get("status") or {})
    if gone is not None:
        kube.patch_status(body, gone)
