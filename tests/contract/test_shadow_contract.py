"""spec.rollout.shadow and status.rollout.shadow as the committed CRD declares them (generated from the
contract): absent means off, every field has its default and its bounds, the phase and the verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from marina.contract import MODEL_DEPLOYMENT, crds

REPO = Path(__file__).resolve().parents[2]


def schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / crds.file_name(MODEL_DEPLOYMENT)).read_text())
    found: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return found


def test_the_shadow_is_off_unless_asked_for_and_each_field_is_bounded() -> None:
    rollout = schema()["properties"]["spec"]["properties"]["rollout"]
    shadow = rollout["properties"]["shadow"]
    assert "default" not in shadow  # absent: no shadow phase
    fields = shadow["properties"]
    assert (fields["percent"]["default"], fields["percent"]["minimum"], fields["percent"]["maximum"]) == (
        100,
        1,
        100,
    )
    assert (fields["minRequests"]["default"], fields["minRequests"]["minimum"]) == (500, 10)
    assert (fields["durationSeconds"]["default"], fields["durationSeconds"]["maximum"]) == (300, 86400)
    assert fields["maxDifference"]["default"] == 0.1 and fields["maxDifference"]["exclusiveMinimum"] is True
    assert (fields["alpha"]["minimum"], fields["alpha"]["maximum"], fields["alpha"]["default"]) == (
        0.0001,
        0.5,
        0.01,
    )
    assert (fields["maxConcurrency"]["default"], fields["maxConcurrency"]["maximum"]) == (4, 64)


def test_the_status_names_the_shadow_phase_and_its_verdicts() -> None:
    rollout = schema()["properties"]["status"]["properties"]["rollout"]["properties"]
    assert rollout["phase"]["enum"][0] == "Shadowing"
    shadow = rollout["shadow"]["properties"]
    assert shadow["verdict"]["enum"] == ["Waiting", "Agreed", "Disagreed"]
    assert {"requests", "rows", "mirrored", "dropped", "failed", "meanDifference", "standardError"} <= set(
        shadow
    )
