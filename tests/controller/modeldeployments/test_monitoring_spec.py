"""spec.monitoring of a ModelDeployment: defaults, and errors that name the field."""

from __future__ import annotations

import re
from typing import Any

import pytest

from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.spec import Monitoring, Performance
from marina.controller.shared.fields import InvalidSpec

MODEL = {"trainingJob": "t"}


def test_monitoring_is_off_unless_asked_for() -> None:
    assert modeldeployment_spec.parse({"model": MODEL}).monitoring is None


def test_monitoring_defaults() -> None:
    spec = modeldeployment_spec.parse({"model": MODEL, "monitoring": {}})
    assert spec.monitoring == Monitoring(
        interval_seconds=60, min_rows=1000, psi_threshold=0.2, on_drift="Alert"
    )


def test_monitoring_values_are_read() -> None:
    monitoring = {"intervalSeconds": 10, "minRows": 500, "psiThreshold": 0.1, "onDrift": "Retrain"}
    spec = modeldeployment_spec.parse({"model": MODEL, "monitoring": monitoring})
    assert spec.monitoring == Monitoring(10, 500, 0.1, "Retrain")


@pytest.mark.parametrize(
    ("monitoring", "field", "words"),
    [
        ({"intervalSeconds": 9}, "spec.monitoring.intervalSeconds", "[10, 86400]"),
        ({"intervalSeconds": "60"}, "spec.monitoring.intervalSeconds", "integer"),
        ({"minRows": 99}, "spec.monitoring.minRows", "[100, 100000000]"),
        ({"psiThreshold": 0}, "spec.monitoring.psiThreshold", "(0, inf)"),
        ({"psiThreshold": True}, "spec.monitoring.psiThreshold", "number"),
        ({"onDrift": "Page"}, "spec.monitoring.onDrift", "Alert, Retrain"),
        ("yes", "spec.monitoring", "object"),
    ],
)
def test_monitoring_errors_name_the_field(monitoring: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        modeldeployment_spec.parse({"model": MODEL, "monitoring": monitoring})
    assert caught.value.field == field and words in caught.value.problem


def test_performance_defaults_come_from_the_contract_and_values_are_read() -> None:
    logged = {"model": MODEL, "logging": {"sampleRate": 0.5}}
    spec = modeldeployment_spec.parse({**logged, "monitoring": {"performance": {}}})
    assert spec.monitoring is not None and spec.monitoring.performance == Performance(
        interval_seconds=300,
        window_hours=24,
        label_delay_hours=24,
        min_rows=200,
        margin=0.1,
        false_alarm_rate=0.01,
        max_rows=2_000_000,
    )
    given = {"windowHours": 6, "margin": 0.25, "falseAlarmRate": 0.001, "minRows": 1000, "maxRows": 5000}
    read = modeldeployment_spec.parse({**logged, "monitoring": {"performance": given}}).monitoring
    assert read is not None and read.performance is not None
    assert (read.performance.window_hours, read.performance.margin, read.performance.false_alarm_rate) == (
        6,
        0.25,
        0.001,
    )
    assert (read.performance.min_rows, read.performance.max_rows) == (1000, 5000)


@pytest.mark.parametrize(
    ("performance", "field", "words"),
    [
        ({"margin": -0.1}, "spec.monitoring.performance.margin", "[0, 10]"),
        ({"falseAlarmRate": 0.6}, "spec.monitoring.performance.falseAlarmRate", "0.5]"),
        ({"minRows": 99}, "spec.monitoring.performance.minRows", "[100, 100000000]"),
        ({"windowHours": 0}, "spec.monitoring.performance.windowHours", "[1, 2160]"),
    ],
)
def test_performance_values_outside_their_bounds_name_the_field(
    performance: dict[str, Any], field: str, words: str
) -> None:
    spec = {"model": MODEL, "logging": {"sampleRate": 1}, "monitoring": {"performance": performance}}
    with pytest.raises(InvalidSpec, match=re.escape(field)) as raised:
        modeldeployment_spec.parse(spec)
    assert words in str(raised.value)


def test_performance_needs_the_payload_logs() -> None:
    with pytest.raises(InvalidSpec, match=r"spec.monitoring.performance: needs the payload logs"):
        modeldeployment_spec.parse({"model": MODEL, "monitoring": {"performance": {}}})
