"""One tick of the background loop for a ModelDeployment it monitors: the drift check when one is due,
then the retrain trigger (drift, or the schedule); one read of the object, at most one status write.

The whole tick holds the object's lock, so the status it read is the one it writes over: the drift
condition goes into the conditions list the reconciler also rewrites under that lock. A retrain record
is written only if the object is still as read (`unchanged_since_read`; another replica, or kopf's own
annotations, may have written since): a 409 means another writer, so nothing of this tick is written
and the next tick decides again (its drift check too). The Dataset is refreshed only once the record
is written, so a crash in between never exceeds the limits.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from marina.contract import API_VERSION
from marina.controller.kube import metrics
from marina.controller.kube.client import CONFLICT, KubeApi, KubeError
from marina.controller.modeldeployments import collector, degraded, drift, performance, retrain
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.spec import ModelDeploymentSpec
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.reconciler import lock_for

KIND = "ModelDeployment"


def tick(
    kube: KubeApi,
    namespace: str,
    name: str,
    memory: MutableMapping[str, Any],
    fetch: collector.Fetch = collector.fetch_json,
    clock: Callable[[], float] = time.time,
    measure: degraded.Measure | None = None,
) -> None:
    """`measure`: the live-accuracy check (`degraded.measurer`; None: none), run before the lock."""
    measured = degraded.measure(memory, measure, clock)
    with lock_for(KIND, namespace, name):
        body = kube.get(API_VERSION, KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        try:
            spec = modeldeployment_spec.parse(body.get("spec"))
        except InvalidSpec:
            return  # the reconciler reports it
        checked = drift.check(kube, body, spec.monitoring, memory, fetch, clock)
        checked, verdict = with_performance(body, spec, checked, measured, memory)
        now = datetime.datetime.fromtimestamp(clock(), datetime.UTC)
        conclude(kube, body, spec, checked, memory, now, verdict)


def with_performance(
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    checked: drift.Check | None,
    measured: degraded.Measured | None,
    memory: MutableMapping[str, Any],
) -> tuple[drift.Check | None, performance.Assessment | None]:
    """The drift check's writes with the live-accuracy verdict's added (one status write for both, the
    Degraded condition set in the conditions list as the drift check leaves it), and the verdict."""
    fields = dict(checked.fields) if checked else {}
    conditions = fields.get("conditions", (body.get("status") or {}).get("conditions"))
    assessed = degraded.check(body, list(conditions or []), spec.monitoring, measured, memory)
    if assessed is None:
        return checked, None
    for key, value in assessed.fields.items():
        if key == "monitoring" and "monitoring" in fields:
            # merged into the drift check's (None there: monitoring is off, all of it goes)
            value = None if fields["monitoring"] is None else {**fields["monitoring"], **value}
        fields[key] = value
    events = (*(checked.events if checked else ()), *assessed.events)
    return drift.Check(fields, events, checked.judged if checked else None), assessed.assessment


def conclude(
    kube: KubeApi,
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    checked: drift.Check | None,
    memory: MutableMapping[str, Any],
    now: datetime.datetime,
    verdict: performance.Assessment | None = None,
) -> None:
    """After the drift check (`checked`, None when none was due) and the live-accuracy check (`verdict`,
    likewise): the retrain trigger, then the writes."""
    judged = checked.judged if checked else None
    fired = retrain.trigger(kube, body, spec, judged, now, verdict) if spec.retrains else None
    act(kube, body, checked, fired, memory)


def act(
    kube: KubeApi,
    body: Mapping[str, Any],
    checked: drift.Check | None,
    fired: retrain.Trigger | None,
    memory: MutableMapping[str, Any],
) -> None:
    """The one status write, then the drift event, the Dataset's refresh and the retrain event."""
    status = {**(checked.fields if checked else {}), **({"retraining": fired.fields} if fired else {})}
    refreshes = fired is not None and fired.refresh is not None
    if status:
        try:
            kube.patch_status(body, status, unchanged_since_read=refreshes)
        except KubeError as error:
            if refreshes and error.code == CONFLICT:
                memory.pop(drift.LAST_CHECK, None)  # written since the read: decide again next tick
                memory.pop(degraded.LAST_CHECK, None)
                return
            raise
    for event in checked.events if checked else ():
        kube.event(body, event.type, event.reason, event.message)
    if fired is not None:
        if fired.refresh is not None:
            kube.apply(fired.refresh)
            metrics.retrain_triggered(fired.reason)
        kube.event(body, fired.event.type, fired.event.reason, fired.event.message)
