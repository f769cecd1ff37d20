"""The operator's metrics follow what it writes (drift levels from status.monitoring, conditions, Jobs,
events), and a resource's series go when the resource goes; counters never name an object."""

from __future__ import annotations

from typing import Any

import pytest

from marina.controller.kube import background, metrics
from marina.controller.kube.health import Health
from marina.controller.shared import reconciler
from marina.controller.shared.conditions import Outcome, State


def value(metric: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(metric, labels)


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ns"},
    }


def monitoring(level: str, *features: tuple[str, float]) -> dict[str, Any]:
    top = [{"name": n, "psi": psi, "pValue": 0.0, "drifted": psi > 0.2} for n, psi in features]
    return {
        "monitoring": {
            "level": level,
            "rows": 2000,
            "score": max((p for _, p in features), default=None),
            "topFeatures": top,
        }
    }


def test_a_drift_check_sets_one_level_and_the_top_features() -> None:
    body = deployment("drift-a")
    stable_checks = value("marina_operator_drift_checks_total", level="Stable") or 0
    metrics.status_written(body, monitoring("Stable", ("bmi", 0.01), ("age", 0.02)))
    metrics.status_written(body, monitoring("Drifted", ("bmi", 0.9)))
    where = {"namespace": "ns", "modeldeployment": "drift-a"}
    assert value("marina_operator_drift_level", **where, level="Drifted") == 1
    assert value("marina_operator_drift_level", **where, level="Stable") == 0
    assert value("marina_operator_drift_checks_total", level="Stable") == stable_checks + 1
    assert value("marina_operator_drift_feature_psi", **where, feature="bmi") == 0.9
    assert value("marina_operator_drift_feature_psi", **where, feature="age") is None  # left the top
    assert value("marina_operator_drift_score", **where) == 0.9
    assert value("marina_operator_drift_window_rows", **where) == 2000


def test_monitoring_switched_off_removes_the_series() -> None:
    body = deployment("drift-b")
    moderate_checks = value("marina_operator_drift_checks_total", level="Moderate") or 0
    metrics.status_written(body, monitoring("Moderate", ("bmi", 0.15)))
    metrics.status_written(body, {"monitoring": None, "conditions": []})
    where = {"namespace": "ns", "modeldeployment": "drift-b"}
    assert value("marina_operator_drift_level", **where, level="Moderate") is None
    assert value("marina_operator_drift_feature_psi", **where, feature="bmi") is None
    assert value("marina_operator_drift_checks_total", level="Moderate") == moderate_checks + 1  # stays


def test_other_status_writes_and_kinds_leave_drift_alone() -> None:
    metrics.status_written(deployment("drift-c"), {"conditions": []})
    trainingjob = {**deployment("drift-c"), "kind": "TrainingJob"}
    metrics.status_written(trainingjob, monitoring("Drifted", ("x", 1.0)))
    assert (
        value("marina_operator_drift_level", namespace="ns", modeldeployment="drift-c", level="Drifted")
        is None
    )


def test_created_jobs_count_by_component_and_other_objects_do_not() -> None:
    job = {"kind": "Job", "metadata": {"namespace": "jobs", "labels": {metrics.COMPONENT_LABEL: "train"}}}
    before = value("marina_operator_jobs_created_total", component="train") or 0
    metrics.created(job)
    metrics.created({"kind": "Service", "metadata": {"namespace": "jobs"}})
    assert value("marina_operator_jobs_created_total", component="train") == before + 1


def test_reconcile_outcomes_and_warnings_count_by_reason() -> None:
    def counted() -> tuple[float, float]:
        return (
            value("marina_operator_reconcile_errors_total", kind="Dataset", reason="InvalidSpec") or 0,
            value("marina_operator_reconciles_total", kind="Dataset", state="ready") or 0,
        )

    errors, ready = counted()
    metrics.reconciled("Dataset", "failed", "InvalidSpec")
    metrics.reconciled("Dataset", "ready")
    assert counted() == (errors + 1, ready + 1)


def test_the_background_loop_reports_whether_this_replica_leads() -> None:
    health = Health(stall_seconds=60)
    assert background.pulse_then(health, lambda: True) is True
    assert value("marina_operator_leader") == 1

    def unknown() -> bool:
        raise RuntimeError("peering object unreadable")

    assert background.pulse_then(health, unknown) is False
    assert value("marina_operator_leader") == 0


def test_condition_series_follow_the_last_status_write() -> None:
    body = {**deployment("cond-a"), "kind": "TrainingJob"}
    failed = [
        {"type": "Ready", "status": "False", "reason": "TrainingFailed"},
        {"type": "Stalled", "status": "True", "reason": "TrainingFailed"},
    ]
    metrics.status_written(body, {"conditions": failed})
    where = {"namespace": "ns", "kind": "TrainingJob", "name": "cond-a"}
    assert (
        value("marina_operator_condition", **where, type="Stalled", status="True", reason="TrainingFailed")
        == 1
    )
    metrics.status_written(body, {"conditions": [{"type": "Ready", "status": "True", "reason": "Trained"}]})
    assert (
        value("marina_operator_condition", **where, type="Stalled", status="True", reason="TrainingFailed")
        is None
    )
    assert value("marina_operator_condition", **where, type="Ready", status="True", reason="Trained") == 1


def test_every_reported_outcome_counts_and_warnings_count_by_reason(kube: Any) -> None:
    body = kube.create({**deployment("rep-a"), "kind": "TrainingJob"})
    before = value("marina_operator_reconcile_errors_total", kind="TrainingJob", reason="DatasetMissing") or 0
    reconciler.report(kube, body, Outcome(State.WAITING, "DatasetMissing", "no Dataset d"))
    after = value("marina_operator_reconcile_errors_total", kind="TrainingJob", reason="DatasetMissing")
    assert after == before + 1
    assert (value("marina_operator_reconciles_total", kind="TrainingJob", state="waiting") or 0) >= 1


def model(sha: str, **extra: Any) -> dict[str, Any]:
    return {"uri": f"s3://marina/models/ns/{sha}.json", "sha256": sha * 64, "version": sha, **extra}


def ready(reason: str) -> list[dict[str, Any]]:
    return [{"type": "Ready", "status": "True", "reason": reason}]


@pytest.mark.parametrize(
    ("before", "written", "outcome"),
    [
        ({"model": model("a")}, {"model": model("b"), "conditions": ready("Available")}, "Promoted"),
        ({}, {"model": model("a"), "conditions": ready("Available")}, None),  # the first model: no rollout
        ({"model": model("a")}, {"model": model("a"), "conditions": ready("Available")}, None),
        (
            {"model": model("a")},
            {
                "model": model("a"),
                "failedModel": model("b", reason="shift"),
                "conditions": ready("RolledBack"),
            },
            "RolledBack",
        ),
        (
            {"model": model("a"), "failedModel": model("b")},
            {"model": model("a"), "failedModel": model("b"), "conditions": ready("RolledBack")},
            None,  # the same failure written again
        ),
        ({}, {"failedModel": model("b"), "conditions": ready("RolloutFailed")}, "Failed"),
        (
            {"model": model("a")},
            {"model": model("a"), "rejectedModel": model("c", metric="rmse")},
            "Rejected",
        ),
        ({"model": model("a"), "rejectedModel": model("c")}, {"rejectedModel": model("c")}, None),
    ],
)
def test_a_rollout_counts_once_by_the_models_its_status_write_records(
    before: dict[str, Any], written: dict[str, Any], outcome: str | None
) -> None:
    assert metrics.rollout_outcome(before, written) == outcome


def test_status_writes_count_rollouts_by_outcome() -> None:
    before = {o: value("marina_operator_rollouts_total", outcome=o) or 0 for o in ("Promoted", "RolledBack")}
    failed = value("marina_operator_rollouts_total", outcome="Failed")
    status: dict[str, Any] = {"model": model("a")}
    for written in (
        {"model": model("b"), "conditions": ready("Available")},
        {"model": model("b"), "conditions": ready("Available")},
        {"failedModel": model("c"), "conditions": ready("RolledBack")},
        {"model": model("d"), "failedModel": None, "conditions": ready("Available")},
    ):
        metrics.status_written({**deployment("rolled"), "status": status}, written)
        status = {**status, **written}
    assert value("marina_operator_rollouts_total", outcome="Promoted") == before["Promoted"] + 2
    assert value("marina_operator_rollouts_total", outcome="RolledBack") == before["RolledBack"] + 1
    assert value("marina_operator_rollouts_total", outcome="Failed") == failed


def condition(kind: str, status: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": "Why"}


def test_a_deleted_resource_leaves_no_series_behind() -> None:
    """As kube-state-metrics drops a deleted object's series: its conditions, drift and retraining go."""
    body = deployment("gone")
    written = {
        **monitoring("Drifted", ("bmi", 0.9)),
        "conditions": [condition("Ready", "True"), condition("Stalled", "True")],
        "retraining": {"total": 3},
    }
    metrics.status_written(body, written)
    assert value("marina_operator_retraining_total", namespace="ns", modeldeployment="gone") == 3
    stalled = {"namespace": "ns", "kind": "ModelDeployment", "name": "gone", "type": "Stalled"}
    assert value("marina_operator_condition", **stalled, status="True", reason="Why") == 1
    assert ("ModelDeployment", "ns", "gone") in metrics.remembered()

    metrics.forget("ModelDeployment", "ns", "gone")
    names = [
        sample
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if "gone" in sample.labels.values()
    ]
    assert names == []
    assert ("ModelDeployment", "ns", "gone") not in metrics.remembered()


def test_counters_name_no_object() -> None:
    per_object = {"name", "modeldeployment", "namespace"}
    for family in metrics.REGISTRY.collect():
        if family.type == "counter":
            assert not {label for sample in family.samples for label in sample.labels} & per_object, (
                family.name
            )


def test_a_live_accuracy_check_sets_its_gauges_without_touching_drifts_and_they_go_with_it() -> None:
    body = deployment("live-a")
    where = {"namespace": "ns", "modeldeployment": "live-a"}
    metrics.status_written(body, monitoring("Stable", ("bmi", 0.01)))
    degraded = [{"type": "Degraded", "status": "True", "reason": "ErrorAboveMargin"}]
    written = {"rows": 500, "rmse": 2.5, "mae": 2.0, "referenceRmse": 1.0}
    metrics.status_written(body, {"monitoring": {"performance": written}, "conditions": degraded})
    assert value("marina_operator_live_rmse", **where) == 2.5
    assert value("marina_operator_live_mae", **where) == 2.0
    assert value("marina_operator_live_rows", **where) == 500
    assert value("marina_operator_live_reference_rmse", **where) == 1.0
    assert value("marina_operator_degraded", **where) == 1
    assert value("marina_operator_drift_level", **where, level="Stable") == 1  # a performance-only write
    too_few = {"rows": 10, "rmse": None, "mae": None, "referenceRmse": 1.0}
    unknown = [{"type": "Degraded", "status": "Unknown", "reason": "NotEnoughFeedback"}]
    metrics.status_written(body, {"monitoring": {"performance": too_few}, "conditions": unknown})
    assert (
        value("marina_operator_live_rmse", **where) is None
        and value("marina_operator_degraded", **where) == 0
    )
    metrics.status_written(body, {"monitoring": {"performance": None}, "conditions": []})
    assert (
        value("marina_operator_live_rows", **where) is None
        and value("marina_operator_degraded", **where) is None
    )
    assert value("marina_operator_drift_level", **where, level="Stable") == 1
    metrics.status_written(body, {"monitoring": {"performance": written}, "conditions": degraded})
    metrics.forget("ModelDeployment", "ns", "live-a")
    assert (
        value("marina_operator_live_rmse", **where) is None
        and value("marina_operator_degraded", **where) is None
    )
