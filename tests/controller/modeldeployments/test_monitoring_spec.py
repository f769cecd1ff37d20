"""spec.monitoring of a ModelDeployment: defaults, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.spec import Monitoring
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
