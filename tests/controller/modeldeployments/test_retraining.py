"""Retraining: drift or the schedule refreshes the Dataset behind the served TrainingJob, within a
cooldown and a daily maximum, with every trigger in status.retraining (and only there: a fresh call
with nothing in memory decides the same, as an operator after a restart does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from marina.contract import API_VERSION, REFRESH_ANNOTATION
from marina.controller.modeldeployments import drift, monitor, monitoring, performance, retraining
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.handlers import monitored
from marina.controller.shared.fields import InvalidSpec

URI = "s3://bucket/m.json"
START = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
DRIFTED = monitoring.Assessment(monitoring.Level.DRIFTED, "drifted from the training data: bmi (PSI 0.9)")
STABLE = monitoring.Assessment(monitoring.Level.STABLE, "no feature drifted")


def spec_of(retraining_spec: dict[str, Any] | None = None, on_drift: str = "Retrain") -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"trainingJob": "t"}, "monitoring": {"onDrift": on_drift}}
    if retraining_spec is not None:
        spec["retraining"] = retraining_spec
    return spec


def setup(kube: Any, spec: dict[str, Any], dataset: dict[str, Any] | None = None) -> None:
    kube.add_resource("Dataset", "d", {"source": {"builtin": "diabetes"}})
    kube.add_resource("TrainingJob", "t", {"dataset": dataset or {"name": "d"}})
    body = kube.add_resource("ModelDeployment", "m", spec)
    kube.objects[kube.key(body)]["metadata"]["creationTimestamp"] = retraining.stamp(START)


def tick(kube: Any, judged: monitoring.Assessment | None, at: datetime) -> dict[str, Any]:
    """What a monitoring tick does after a drift check that judged `judged` (None: no check was due)."""
    body = kube.get(API_VERSION, "ModelDeployment", "default", "m")
    spec = modeldeployment_spec.parse(body["spec"])
    checked = None if judged is None else drift.Check({}, judged=judged)
    monitor.conclude(kube, body, spec, checked, {}, at)
    return dict(kube.current("ModelDeployment", "m").get("status", {}).get("retraining") or {})


def refresh_value(kube: Any) -> str | None:
    return (kube.current("Dataset", "d")["metadata"].get("annotations") or {}).get(REFRESH_ANNOTATION)


def test_drift_refreshes_the_dataset_and_records_the_trigger(kube: Any) -> None:
    setup(kube, spec_of({"cooldownSeconds": 600, "maxPerDay": 3}))
    record = tick(kube, DRIFTED, START)
    assert refresh_value(kube) == record["refresh"] == "m-20260301T100000Z"
    assert record["reason"] == "Drift" and record["dataset"] == "d" and "bmi" in record["message"]
    assert record["countToday"] == 1 and record["total"] == 1 and record["day"] == "2026-03-01"
    assert record["lastTrigger"] == "2026-03-01T10:00:00Z" and record["nextAllowed"] == "2026-03-01T10:10:00Z"
    assert kube.events[-1][1:3] == ("Normal", "RetrainTriggered") and "Dataset d" in kube.events[-1][3]
    assert kube.current("Dataset", "d")["spec"] == {"source": {"builtin": "diabetes"}}  # only the annotation


def test_a_record_written_since_the_read_wins_and_this_trigger_refreshes_nothing(
    kube: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer (a replica taking over, a reconcile) records a retrain between this tick's read
    and its write: the write is refused (409), so the limits are never exceeded and nothing is refreshed
    twice; the next tick decides on the new record. The tick's drift status went into the same write, so
    it is not written either, and the next tick checks drift again."""
    setup(kube, spec_of({"cooldownSeconds": 600, "maxPerDay": 3}))
    theirs = {"reason": "Drift", "refresh": "m-theirs", "lastTrigger": retraining.stamp(START), "total": 1}
    read = kube.get

    def read_then_another_writer(*key: str) -> dict[str, Any] | None:
        found = read(*key)
        if key[1] == "ModelDeployment":
            kube.patch_status(read(*key), {"retraining": theirs})
        return found

    spec = modeldeployment_spec.parse(kube.current("ModelDeployment", "m")["spec"])
    monkeypatch.setattr(kube, "get", read_then_another_writer)
    body = kube.get(API_VERSION, "ModelDeployment", "default", "m")  # the tick's one read
    memory = {drift.LAST_CHECK: 1.0}
    monitor.conclude(kube, body, spec, drift.drift_status(body, DRIFTED), memory, START)
    monkeypatch.undo()
    status = kube.current("ModelDeployment", "m")["status"]
    assert status["retraining"] == theirs and "monitoring" not in status and drift.LAST_CHECK not in memory
    assert refresh_value(kube) is None and kube.events == []


def test_no_drift_and_alert_only_refresh_nothing(kube: Any) -> None:
    setup(kube, spec_of(on_drift="Alert"))
    assert tick(kube, DRIFTED, START) == {}
    kube.objects.clear()
    setup(kube, spec_of())
    assert tick(kube, STABLE, START) == {} and tick(kube, None, START) == {}
    assert refresh_value(kube) is None and kube.events == []


def test_a_second_drift_inside_the_cooldown_is_held_once_and_refreshes_nothing(kube: Any) -> None:
    setup(kube, spec_of({"cooldownSeconds": 600}))
    first = tick(kube, DRIFTED, START)["refresh"]
    held = tick(kube, DRIFTED, START + timedelta(seconds=30))
    tick(kube, DRIFTED, START + timedelta(seconds=60))
    assert refresh_value(kube) == first and held["countToday"] == 1
    assert held["held"]["reason"] == "Cooldown" and held["held"]["trigger"] == "Drift"
    assert [e[2] for e in kube.events] == ["RetrainTriggered", "RetrainHeld"]  # one event for the hold
    after = tick(kube, DRIFTED, START + timedelta(seconds=600))
    assert after["countToday"] == 2 and "held" not in after and refresh_value(kube) != first


def test_the_daily_maximum_holds_until_midnight_and_the_count_starts_again(kube: Any) -> None:
    setup(kube, spec_of({"cooldownSeconds": 0, "maxPerDay": 2}))
    tick(kube, DRIFTED, START)
    second = tick(kube, DRIFTED, START + timedelta(minutes=1))
    assert second["nextAllowed"] == "2026-03-02T00:00:00Z"
    held = tick(kube, DRIFTED, START + timedelta(minutes=2))
    assert held["countToday"] == 2 and held["held"]["reason"] == "DailyLimit"
    next_day = tick(kube, DRIFTED, datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC))
    assert next_day["countToday"] == 1 and next_day["total"] == 3 and next_day["day"] == "2026-03-02"


def test_the_schedule_refreshes_without_drift_counted_from_the_last_refresh(kube: Any) -> None:
    setup(kube, spec_of({"cooldownSeconds": 60, "everySeconds": 3600}, on_drift="Alert"))
    assert tick(kube, None, START + timedelta(seconds=3599)) == {}
    record = tick(kube, None, START + timedelta(seconds=3600))
    assert record["reason"] == "Schedule" and record["countToday"] == 1
    assert tick(kube, None, START + timedelta(seconds=7199))["countToday"] == 1
    assert tick(kube, None, START + timedelta(seconds=7200))["countToday"] == 2


def test_a_pinned_dataset_version_is_held_with_a_warning(kube: Any) -> None:
    setup(kube, spec_of(), dataset={"name": "d", "version": "0123456789abcdef"})
    record = tick(kube, DRIFTED, START)
    tick(kube, DRIFTED, START + timedelta(seconds=10))
    assert record["held"]["reason"] == "NoDataset" and "pins dataset version" in record["held"]["message"]
    assert [e[1:3] for e in kube.events] == [("Warning", "RetrainHeld")] and refresh_value(kube) is None


def test_hold_and_next_allowed_are_pure_functions_of_the_record() -> None:
    limits = modeldeployment_spec.Retraining(cooldown_seconds=300, max_per_day=2)
    record = retraining.Record(START, "2026-03-01", 1, 1)
    stopped = retraining.hold(record, limits, START + timedelta(seconds=299))
    assert (
        stopped is not None
        and stopped.reason == "Cooldown"
        and stopped.until == START + timedelta(seconds=300)
    )
    assert retraining.hold(record, limits, START + timedelta(seconds=300)) is None
    assert retraining.next_allowed(START, 1, limits) == START + timedelta(seconds=300)
    assert retraining.next_allowed(START, 2, limits) == datetime(2026, 3, 2, tzinfo=UTC)
    assert retraining.Record.of({"retraining": {"day": "2026-02-28", "countToday": 2}}).count_on(START) == 0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"retraining": {"cooldownSeconds": -1}}, "spec.retraining.cooldownSeconds"),
        ({"retraining": {"maxPerDay": 0}}, "spec.retraining.maxPerDay"),
        ({"retraining": {"everySeconds": 30}}, "spec.retraining.everySeconds"),
        ({"retraining": {"cooldownSeconds": 600, "everySeconds": 300}}, "spec.retraining.everySeconds"),
        (
            {"model": {"uri": URI, "sha256": "a" * 64}, "monitoring": {"onDrift": "Retrain"}},
            "spec.monitoring.onDrift",
        ),
        (
            {"model": {"uri": URI, "sha256": "a" * 64}, "retraining": {"everySeconds": 600}},
            "spec.retraining.everySeconds",
        ),
    ],
)
def test_retraining_limits_are_validated_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        modeldeployment_spec.parse({"model": {"trainingJob": "t"}, **spec})
    assert error.value.field == field


def test_defaults_and_the_loop_watches_a_schedule_without_monitoring() -> None:
    parsed = modeldeployment_spec.parse({"model": {"trainingJob": "t"}})
    assert parsed.retraining == modeldeployment_spec.Retraining(3600, 4, None) and not parsed.retrains
    scheduled = {"model": {"trainingJob": "t"}, "retraining": {"everySeconds": 86400}}
    assert modeldeployment_spec.parse(scheduled).retrains
    assert monitored("ns", "m", scheduled) == {"ns": "m"}
    assert monitored("ns", "m", {"model": {"trainingJob": "t"}}) == {}


# -- onDegraded: Retrain ------------------------------------------------------------------------------

WORSE = performance.Assessment("True", performance.ABOVE_MARGIN, "error above the margin: live rmse 2.1")
FINE = performance.Assessment("False", performance.WITHIN_MARGIN, "error within the margin")


def degraded_spec(on_degraded: str = "Retrain", on_drift: str = "Alert") -> dict[str, Any]:
    return {
        "model": {"trainingJob": "t"},
        "logging": {"sampleRate": 1},
        "monitoring": {"onDrift": on_drift, "performance": {"onDegraded": on_degraded}},
        "retraining": {"cooldownSeconds": 600},
    }


def degraded_tick(kube: Any, verdict: performance.Assessment | None, at: datetime) -> dict[str, Any]:
    body = kube.get(API_VERSION, "ModelDeployment", "default", "m")
    monitor.conclude(kube, body, modeldeployment_spec.parse(body["spec"]), None, {}, at, verdict)
    return dict(kube.current("ModelDeployment", "m").get("status", {}).get("retraining") or {})


def test_a_degraded_verdict_refreshes_the_dataset_when_asked_and_says_why(kube: Any) -> None:
    setup(kube, degraded_spec())
    assert degraded_tick(kube, FINE, START) == {} and degraded_tick(kube, None, START) == {}
    record = degraded_tick(kube, WORSE, START)
    assert record["reason"] == "Degraded" and "live rmse 2.1" in record["message"]
    assert refresh_value(kube) == record["refresh"]
    held = degraded_tick(kube, WORSE, START + timedelta(seconds=60))
    assert held["held"]["reason"] == "Cooldown" and held["total"] == 1


def test_degraded_with_alert_only_refreshes_nothing(kube: Any) -> None:
    setup(kube, degraded_spec(on_degraded="Alert"))
    assert degraded_tick(kube, WORSE, START) == {} and refresh_value(kube) is None


def test_on_degraded_retrain_needs_a_training_job() -> None:
    spec = {**degraded_spec(), "model": {"uri": URI, "sha256": "a" * 64}}
    with pytest.raises(InvalidSpec, match=r"spec.monitoring.performance.onDegraded: Retrain needs"):
        modeldeployment_spec.parse(spec)
