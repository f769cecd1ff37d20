"""A ModelDeployment's kopf registrations: reconciled on its own changes and whenever the TrainingJob it
serves from changes (MODELDEPLOYMENTS_BY_TRAININGJOB); its background work, on the leader only: drift
checks and retrain triggers for those with spec.monitoring or a schedule (MONITORED), and canary steps
(CANARIES), whose pauses end and whose analysis runs within a tick."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf

from marina.contract import GROUP, VERSION
from marina.controller.kube.background import Chore
from marina.controller.modeldeployments import degraded, drift, logs, monitor, monitoring, reconcile, rollout
from marina.controller.shared.registration import (
    Registered,
    entries,
    quietly,
    register_followers,
    register_kind,
)
from marina.controller.shared.runtime import Runtime

PLURAL = "modeldeployments"
# kopf's indices, by handler id (kopf passes each to the handlers as a keyword argument of that name).
MODELDEPLOYMENTS_BY_TRAININGJOB = "modeldeployments_by_trainingjob"
MONITORED = "monitored_modeldeployments"
CANARIES = "canary_modeldeployments"
LOGGED = "logged_modeldeployments"  # those with spec.logging.keepDays: their old logs are deleted
KIND = reconcile.KIND


def by_training_job(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """A ModelDeployment's entry in MODELDEPLOYMENTS_BY_TRAININGJOB: (namespace, TrainingJob) -> its name."""
    training_job = (spec.get("model") or {}).get("trainingJob")
    return {(namespace, str(training_job)): name} if training_job else {}


def monitored(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, str]:
    """A ModelDeployment's entry in MONITORED (namespace -> name) while it has spec.monitoring or a
    retraining schedule (the loop checks drift and the schedule on the same ticks)."""
    scheduled = (spec.get("retraining") or {}).get("everySeconds") is not None
    return {namespace: name} if spec.get("monitoring") is not None or scheduled else {}


def logged(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, str]:
    logging = spec.get("logging") or {}
    return {namespace: name} if isinstance(logging, Mapping) and logging.get("keepDays") else {}


def in_canary(namespace: str, name: str, status: Mapping[str, Any] | None) -> dict[str, str]:
    """A ModelDeployment's entry in CANARIES (namespace -> name) while a canary (or its shadow phase) runs
    or is promoted."""
    phase = ((status or {}).get("rollout") or {}).get("phase")
    return {namespace: name} if phase in rollout.UNDER_WAY else {}


def register(runtime: Runtime) -> Registered:
    registered = register_kind(runtime, KIND, PLURAL, reconcile.reconcile)
    register_followers(runtime, registered, "trainingjobs", MODELDEPLOYMENTS_BY_TRAININGJOB, by_training_job)

    @kopf.index(GROUP, VERSION, PLURAL, id=MONITORED)
    def index_monitored(*, name: str, namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[str, str]:
        return monitored(namespace or "", name, spec)

    @kopf.index(GROUP, VERSION, PLURAL, id=LOGGED)
    def index_logged(*, name: str, namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[str, str]:
        return logged(namespace or "", name, spec)

    @kopf.index(GROUP, VERSION, PLURAL, id=CANARIES)
    def index_canaries(*, name: str, namespace: str | None, status: kopf.Status, **_: Any) -> dict[str, str]:
        return in_canary(namespace or "", name, status)

    @kopf.on.field(GROUP, VERSION, PLURAL, field="spec.monitoring", new=kopf.ABSENT, id="monitoring-off")
    def on_monitoring_off(*, body: kopf.Body, name: str, namespace: str | None, **_: Any) -> None:
        quietly(lambda: forget_drift(runtime, namespace or "", name, body), f"drift status of {KIND} {name}")

    return replace(registered, chores=lambda indices: chores(runtime, indices))


def forget_drift(runtime: Runtime, namespace: str, name: str, body: Mapping[str, Any]) -> None:
    with runtime.current(KIND, namespace, name, body) as found:
        if found is not None:
            drift.forget(runtime.kube(), found)


def chores(runtime: Runtime, indices: Mapping[str, Any]) -> list[Chore]:
    memories: dict[tuple[str, str], dict[str, Any]] = {}  # the monitoring loop's memory of each object

    def monitored_items() -> list[tuple[str, str]]:
        items = entries(indices[MONITORED])
        for gone in set(memories) - set(items):
            del memories[gone]
        return items

    def check(item: tuple[str, str]) -> None:
        namespace, name = item
        memory = memories.setdefault(item, {})
        with runtime.health.working(f"drift check of {KIND} {namespace}/{name}"):
            settings = runtime.settings
            uploads = settings.feedback_uploads_prefix(namespace, name)
            measure = degraded.measurer(settings.logs_prefix(namespace, name), memory, uploads)
            quietly(
                lambda: monitor.tick(runtime.kube(), namespace, name, memory, measure=measure),
                f"drift check of {KIND} {name}",
            )

    def step(item: tuple[str, str]) -> None:
        namespace, name = item
        quietly(lambda: runtime.reconcile(KIND, reconcile.reconcile, namespace, name), f"{KIND} {name}")

    def expire_logs(item: tuple[str, str]) -> None:
        namespace, name = item

        def run() -> None:
            with runtime.current(KIND, namespace, name) as found:
                keep_days = None if found is None else logs.keep_days(found)
            if keep_days is not None:
                logs.expire(runtime.settings, namespace, name, keep_days, datetime.now(UTC).date())

        quietly(run, f"log retention of {KIND} {name}")

    return [
        # Payload-log retention: days older than spec.logging.keepDays go, once an hour.
        Chore("log retention", logs.TICK_SECONDS, lambda: entries(indices[LOGGED]), expire_logs),
        # Drift monitoring and retraining: `monitor.tick` checks when spec's intervalSeconds have passed.
        Chore("drift check", monitoring.TICK_SECONDS, monitored_items, check),
        # Canary rollouts: a step's pause ends, and its analysis runs, within a tick.
        Chore("canary", rollout.TICK_SECONDS, lambda: entries(indices[CANARIES]), step),
    ]
