"""Flux reads a resource's status through kstatus (sigs.k8s.io/cli-utils' status.Compute, built from Go
modules into hack/tools/kstatus): every phase of every kind in manifests/argocd's testdata reads as it must,
InProgress while the operator works or waits, Current once Ready, Failed when Stalled (a rollback too)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from tests.manifests import status_cases


def kstatus_of(tool: Path, *files: Path, stdin: str | None = None) -> list[dict[str, str]]:
    result = subprocess.run(
        [str(tool), *map(str, files)], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_every_phase_of_every_kind(kstatus: Path) -> None:
    cases = status_cases.cases()
    results = kstatus_of(kstatus, *(case.path for case in cases))
    got = {(case.kind, case.name): result["status"] for case, result in zip(cases, results, strict=True)}
    assert got == {(case.kind, case.name): case.kstatus for case in cases}


def test_what_each_status_says(kstatus: Path) -> None:
    by_name = {case.name: case for case in status_cases.cases() if case.kind == "ModelDeployment"}
    rolled_back, renewed = (by_name[name].path for name in ("rolled-back", "available-new-generation"))
    failed, stale = kstatus_of(kstatus, rolled_back, renewed)
    stalled = next(
        c for c in yaml.safe_load(rolled_back.read_text())["status"]["conditions"] if c["type"] == "Stalled"
    )
    assert failed["message"] == stalled["message"]
    assert stale["message"] == "ModelDeployment generation is 2, but latest observed generation is 1"


def test_a_list_from_kubectl_reads_item_by_item(kstatus: Path) -> None:
    items = [yaml.safe_load(case.path.read_text()) for case in status_cases.cases()[:3]]
    listed = kstatus_of(kstatus, stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert [r["status"] for r in listed] == [c.kstatus for c in status_cases.cases()[:3]]
