"""The operator's own Prometheus metrics, served on `/metrics` (`marina operator --metrics`).

Named functions, so any module can count what it does without knowing prometheus_client: reconciles
and their outcomes, Jobs created, drift checks and levels, retrains, rollouts, and whether this replica
leads. Most are fed at the API boundary (`kube.KubeApi` reports each Job it creates, each event it
posts and each status it writes), the way kube-state-metrics reads objects: what the metrics say is
what the resources' status and events say. A resource's own series (its conditions, a ModelDeployment's
drift and retraining record) carry its `namespace` and name, so alerts and dashboards select one
ModelDeployment as the serving pods' metrics do, and they go when the resource goes (`forget`): the
operator exports series for the objects that exist, not for every object it ever saw. Counters, which
only grow, count by kind, component, reason or outcome, never by object (the events themselves are in
the API).

Only the leading replica reconciles and checks drift, so only its counters grow; `marina_operator_leader`
says which replica that is (sum it over pods: 1 when exactly one leads).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, start_http_server

from marina.contract import DRIFT_LEVELS

#: Drift levels (monitoring.Level's values); the level gauge has one series per level, 1 for the current.
MODEL_DEPLOYMENT = "ModelDeployment"
COMPONENT_LABEL = "app.kubernetes.io/component"

# No `_created` series beside each counter: rules use increase() and the conditions, not creation times.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)


def _counter(name: str, documentation: str, labels: str) -> Counter:
    return Counter(name, documentation, labels.split(), registry=REGISTRY)


def _gauge(name: str, documentation: str, labels: str = "") -> Gauge:
    return Gauge(name, documentation, labels.split(), registry=REGISTRY)


RECONCILES = _counter("marina_operator_reconciles", "Reconciles by kind and resulting state.", "kind state")
ERRORS = _counter(
    "marina_operator_reconcile_errors",
    "Reconciles that ended in a warning (a failure, a refused write, a retry), by kind and reason.",
    "kind reason",
)
JOBS = _counter(
    "marina_operator_jobs_created",
    "Jobs the operator created, by component (prepare, train, shard, ...).",
    "component",
)
EVENTS = _counter(
    "marina_operator_events",
    "Events posted on Marina's resources, by kind, type (Normal or Warning) and reason.",
    "kind type reason",
)
DRIFT_CHECKS = _counter(
    "marina_operator_drift_checks",
    "Drift checks of ModelDeployments, by the level they found.",
    "level",
)
DRIFT_LEVEL = _gauge(
    "marina_operator_drift_level",
    "1 for the level the last drift check found, 0 for the others.",
    "namespace modeldeployment level",
)
DRIFT_SCORE = _gauge(
    "marina_operator_drift_score",
    "The largest per-feature PSI of the last drift check.",
    "namespace modeldeployment",
)
DRIFT_ROWS = _gauge(
    "marina_operator_drift_window_rows",
    "Serving rows in the window the last drift check judged.",
    "namespace modeldeployment",
)
FEATURE_PSI = _gauge(
    "marina_operator_drift_feature_psi",
    "PSI of each of the top features of the last drift check (status.monitoring.topFeatures).",
    "namespace modeldeployment feature",
)
LIVE_RMSE = _gauge(
    "marina_operator_live_rmse",
    "Live rmse of the serving model's labelled rows in the last live-accuracy check "
    "(status.monitoring.performance.rmse).",
    "namespace modeldeployment",
)
LIVE_MAE = _gauge(
    "marina_operator_live_mae",
    "Live mean absolute error of the serving model's labelled rows in the last live-accuracy check.",
    "namespace modeldeployment",
)
LIVE_ROWS = _gauge(
    "marina_operator_live_rows",
    "Labelled rows of the serving model the last live-accuracy check judged.",
    "namespace modeldeployment",
)
LIVE_REFERENCE_RMSE = _gauge(
    "marina_operator_live_reference_rmse",
    "The serving model's rmse on its test split, which the live rmse is compared with.",
    "namespace modeldeployment",
)
DEGRADED = _gauge(
    "marina_operator_degraded",
    "1 while the Degraded condition is True (the live error significantly beyond the margin), else 0.",
    "namespace modeldeployment",
)
_LIVE = (LIVE_RMSE, LIVE_MAE, LIVE_ROWS, LIVE_REFERENCE_RMSE, DEGRADED)
RETRAINS = _counter(
    "marina_operator_retrains",
    "Retrains ModelDeployments triggered, by trigger (Drift, Schedule).",
    "trigger",
)
RETRAINING_TOTAL = _gauge(
    "marina_operator_retraining_total",
    "A ModelDeployment's refreshes of its Dataset so far (status.retraining.total).",
    "namespace modeldeployment",
)
ROLLOUTS = _counter(
    "marina_operator_rollouts",
    "Rollouts of a new model that ended, by outcome (Promoted, RolledBack, Failed, Rejected).",
    "outcome",
)
CONDITIONS = _gauge(
    "marina_operator_condition",
    "1 for each condition a resource's status holds now (type, status and reason), as kube-state-metrics.",
    "namespace kind name type status reason",
)
LEADER = _gauge(
    "marina_operator_leader", "1 while this replica leads (runs the reconciles and checks), else 0."
)

_features_lock = threading.Lock()
_serving = False
_features: dict[tuple[str, str], set[str]] = {}  # the feature series each ModelDeployment has now
_conditions: dict[
    tuple[str, str, str], set[tuple[str, str, str, str, str, str]]
] = {}  # each resource's condition series


def serve(address: str) -> None:
    """Serve /metrics from a daemon thread at `host:port`, once per process (the registry is too)."""
    global _serving
    with _features_lock:
        if _serving:
            return
        host, _, port = address.rpartition(":")
        start_http_server(int(port), addr=host or "0.0.0.0", registry=REGISTRY)
        _serving = True


def reconciled(kind: str, state: str, warning_reason: str | None = None) -> None:
    """One reconcile ended in `state`; `warning_reason` when its outcome was a warning."""
    RECONCILES.labels(kind, state).inc()
    if warning_reason is not None:
        ERRORS.labels(kind, warning_reason).inc()


def job_created(component: str) -> None:
    JOBS.labels(component).inc()


def created(body: Mapping[str, Any]) -> None:
    """An object the operator created: a Job counts, by its component label."""
    if body.get("kind") == "Job":
        labels = body["metadata"].get("labels") or {}
        job_created(str(labels.get(COMPONENT_LABEL, "unknown")))


def event_posted(kind: str, event_type: str, reason: str) -> None:
    EVENTS.labels(kind, event_type, reason).inc()


def retrain_triggered(trigger: str) -> None:
    RETRAINS.labels(trigger).inc()


def rollout_finished(outcome: str) -> None:
    ROLLOUTS.labels(outcome).inc()


def leading(leads: bool) -> None:
    LEADER.set(1 if leads else 0)


def drift_checked(
    namespace: str,
    name: str,
    level: str,
    score: float | None,
    rows: int | None,
    features: Mapping[str, float],
) -> None:
    """A drift check's result: counted, and the gauges set to it (features not in the top any more go)."""
    DRIFT_CHECKS.labels(level).inc()
    for each in (*DRIFT_LEVELS, *([level] if level not in DRIFT_LEVELS else [])):
        DRIFT_LEVEL.labels(namespace, name, each).set(1 if each == level else 0)
    if score is not None:
        DRIFT_SCORE.labels(namespace, name).set(score)
    if rows is not None:
        DRIFT_ROWS.labels(namespace, name).set(rows)
    with _features_lock:
        for gone in _features.get((namespace, name), set()) - set(features):
            FEATURE_PSI.remove(namespace, name, gone)
        _features[(namespace, name)] = set(features)
        for feature, psi in features.items():
            FEATURE_PSI.labels(namespace, name, feature).set(psi)


def drift_forgotten(namespace: str, name: str) -> None:
    """Monitoring was switched off (or the ModelDeployment went): its drift series go."""
    _remove_series((DRIFT_LEVEL, DRIFT_SCORE, DRIFT_ROWS, FEATURE_PSI), namespace, name)
    with _features_lock:
        _features.pop((namespace, name), None)


def _remove_series(gauges: tuple[Gauge, ...], namespace: str, name: str) -> None:
    for gauge in gauges:
        for labels in [s.labels for f in gauge.collect() for s in f.samples]:
            if labels.get("namespace") == namespace and labels.get("modeldeployment") == name:
                gauge.remove(*labels.values())


def forget(kind: str, namespace: str, name: str) -> None:
    """A resource is gone: every series naming it goes, as kube-state-metrics drops a deleted object's."""
    with _features_lock:
        for labels in _conditions.pop((namespace, kind, name), set()):
            CONDITIONS.remove(*labels)
    if kind == MODEL_DEPLOYMENT:
        drift_forgotten(namespace, name)
        _remove_series((RETRAINING_TOTAL, *_LIVE), namespace, name)


def remembered() -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every resource that has series now."""
    with _features_lock:
        return {(kind, namespace, name) for namespace, kind, name in _conditions} | {
            (MODEL_DEPLOYMENT, namespace, name) for namespace, name in _features
        }


def status_written(body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    """Read what a status write says: its conditions, and a ModelDeployment's `monitoring` (its last
    drift check)."""
    meta = body["metadata"]
    namespace, name = str(meta.get("namespace") or ""), str(meta["name"])
    if isinstance(status.get("conditions"), list):
        conditions_written(namespace, str(body.get("kind")), name, status["conditions"])
    if body.get("kind") != MODEL_DEPLOYMENT:
        return
    outcome = rollout_outcome(body.get("status") or {}, status)
    if outcome is not None:
        rollout_finished(outcome)
    total = (
        (status.get("retraining") or {}).get("total")
        if isinstance(status.get("retraining"), Mapping)
        else None
    )
    if isinstance(total, int):
        RETRAINING_TOTAL.labels(namespace, name).set(total)
    if "monitoring" not in status:
        return
    monitoring = status["monitoring"]
    if not isinstance(monitoring, Mapping):
        drift_forgotten(namespace, name)
        _remove_series(_LIVE, namespace, name)
        return
    if "performance" in monitoring:
        performance_checked(namespace, name, monitoring["performance"], status.get("conditions"))
    if "level" not in monitoring:
        return  # a write of the live-accuracy check alone
    if not monitoring.get("level"):
        drift_forgotten(namespace, name)
        return
    features = {
        str(f["name"]): float(f["psi"])
        for f in monitoring.get("topFeatures") or []
        if isinstance(f, Mapping) and "name" in f and isinstance(f.get("psi"), int | float)
    }
    score, rows = monitoring.get("score"), monitoring.get("rows")
    drift_checked(
        namespace,
        name,
        str(monitoring["level"]),
        float(score) if isinstance(score, int | float) else None,
        int(rows) if isinstance(rows, int) else None,
        features,
    )


def performance_checked(namespace: str, name: str, performance: Any, conditions: Any) -> None:
    """A live-accuracy check's result (status.monitoring.performance and the Degraded condition written
    with it): the gauges set to it; switched off (None), they go. A number the check could not measure
    (too few rows) removes its series rather than keep a stale one."""
    if not isinstance(performance, Mapping):
        _remove_series(_LIVE, namespace, name)
        return
    for gauge, key in (
        (LIVE_RMSE, "rmse"),
        (LIVE_MAE, "mae"),
        (LIVE_ROWS, "rows"),
        (LIVE_REFERENCE_RMSE, "referenceRmse"),
    ):
        value = performance.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            gauge.labels(namespace, name).set(value)
        else:
            _remove_series((gauge,), namespace, name)
    degraded = [c for c in conditions or [] if isinstance(c, Mapping) and c.get("type") == "Degraded"]
    DEGRADED.labels(namespace, name).set(1 if degraded and degraded[0].get("status") == "True" else 0)


def rollout_outcome(before: Mapping[str, Any], written: Mapping[str, Any]) -> str | None:
    """The rollout a ModelDeployment status write ends, read from the models it records, not from words:
    a new `model` replacing one is Promoted; a new `failedModel` is RolledBack when the Ready condition
    says so (the previous model serves on), else Failed; a new `rejectedModel` (the promotion gate kept
    the champion) is Rejected."""

    def changed(key: str) -> bool:
        new, old = written.get(key), before.get(key)
        return isinstance(new, Mapping) and (
            not isinstance(old, Mapping) or new.get("sha256") != old.get("sha256")
        )

    if changed("failedModel"):
        reasons = {c.get("reason") for c in written.get("conditions") or [] if c.get("type") == "Ready"}
        return "RolledBack" if "RolledBack" in reasons else "Failed"
    if changed("rejectedModel"):
        return "Rejected"
    if changed("model") and isinstance(before.get("model"), Mapping):
        return "Promoted"
    return None


def conditions_written(namespace: str, kind: str, name: str, conditions: list[Any]) -> None:
    """The conditions a status write set: the resource's condition series become exactly these."""
    now = {
        (namespace, kind, name, str(c.get("type")), str(c.get("status")), str(c.get("reason") or ""))
        for c in conditions
        if isinstance(c, Mapping) and c.get("type")
    }
    with _features_lock:
        for gone in _conditions.get((namespace, kind, name), set()) - now:
            CONDITIONS.remove(*gone)
        _conditions[(namespace, kind, name)] = now
        for labels in now:
            CONDITIONS.labels(*labels).set(1)
