"""manifests/argocd: Marina's Argo CD health checks run by the Lua Argo CD uses (gopher-lua, in Argo CD's
environment: hack/tools/argocd-health, built from Go modules) on every case of every kind's health_test.yaml,
in both of Argo CD's library modes; the layout, the argocd-cm keys and the testdata checked against the
contract; and the runner itself checked to behave as Argo CD's VM does where a script could tell."""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.manifests import status_cases
from tests.manifests.status_cases import ARGOCD, CUSTOMIZATIONS

from marina.contract import argocd
from marina.contract.kinds import KINDS

SCRIPT = ARGOCD / "health.lua"


def run(tool: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool), *args], input=stdin, capture_output=True, text=True, timeout=120)


def evaluate(tool: Path, script: Path, body: Any, libs: str = "argocd-cm") -> dict[str, str]:
    result = run(tool, "eval", f"-libs={libs}", str(script), stdin=json.dumps(body))
    assert result.returncode in (0, 1), result.stderr
    (line,) = result.stdout.splitlines()
    return dict(json.loads(line))


def test_every_case_of_every_kind_is_as_expected(argocd_health: Path) -> None:
    result = run(argocd_health, "test", str(ARGOCD / "resource_customizations"))
    assert result.returncode == 0, result.stdout + result.stderr
    cases = len(status_cases.cases())
    # each case in both library modes: argocd-cm's (standard libraries closed) and the built-in scripts'
    assert f"{2 * cases} of {2 * cases} health checks as expected ({len(KINDS)} folders)" in result.stdout


def test_the_layout_follows_the_contract_and_argo_cds_convention() -> None:
    assert argocd.main(["--check", str(ARGOCD)]) == 0, "run `make crds`"
    folders = {p.name for p in CUSTOMIZATIONS.iterdir()}
    assert folders == {kind.kind for kind in KINDS} == set(status_cases.KINDS)
    for kind in KINDS:
        folder = CUSTOMIZATIONS / kind.kind
        assert (folder / "health.lua").read_text() == argocd.script(SCRIPT.read_text(), kind)
        assert (folder / "health_test.yaml").read_text() == status_cases.tests_text(kind.kind), (
            f"{folder}/health_test.yaml differs from its testdata: rewrite it with status_cases.write_tests"
        )
        listed = {t["inputPath"] for t in yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]}
        assert listed == {f"testdata/{p.name}" for p in (folder / "testdata").iterdir()}


def test_every_testdata_file_says_where_it_comes_from() -> None:
    for case in status_cases.cases():
        head = case.path.read_text().split("apiVersion:", 1)[0]
        assert "Captured from a live cluster" in head or "SEEDED, NOT CAPTURED" in head, case.path
        body = yaml.safe_load(case.path.read_text())
        assert (body["apiVersion"], body["kind"]) == ("marina.dev/v1alpha1", case.kind)


def test_argocd_cm_installs_exactly_the_tested_scripts() -> None:
    config = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert (config["kind"], config["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert set(config["data"]) == {f"resource.customizations.health.marina.dev_{k.kind}" for k in KINDS}
    for kind in KINDS:
        assert (
            config["data"][argocd.config_key(kind)] == (CUSTOMIZATIONS / kind.kind / "health.lua").read_text()
        )


def test_no_condition_reason_is_interpreted(argocd_health: Path) -> None:
    """kserve#3973 and #4791: checks that match reasons break when a controller adds one. Any reason, in any
    object, gives the same health (only the message, which shows it, changes)."""
    words = random.Random(7)
    for case in status_cases.cases():
        body = yaml.safe_load(case.path.read_text())
        renamed = json.loads(json.dumps(body))
        for condition in (renamed.get("status") or {}).get("conditions") or []:
            condition["reason"] = "".join(words.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(12))
        before, after = evaluate(argocd_health, SCRIPT, body), evaluate(argocd_health, SCRIPT, renamed)
        assert before["status"] == after["status"] == case.health, case.path


@pytest.mark.parametrize(
    ("conditions", "health"),
    [
        ({"Ready": "True", "Reconciling": "False", "Stalled": "False"}, "Healthy"),
        ({"Ready": "False", "Reconciling": "True", "Stalled": "False"}, "Progressing"),
        ({"Ready": "False", "Reconciling": "False", "Stalled": "True"}, "Degraded"),
        ({"Ready": "True", "Reconciling": "False", "Stalled": "True"}, "Degraded"),  # RolledBack
        ({"Ready": "False", "Reconciling": "False", "Stalled": "False"}, "Progressing"),
        ({"Ready": "Unknown"}, "Progressing"),
        ({"Reconciling": "True"}, "Progressing"),
        ({"Ready": "True"}, "Healthy"),
        ({}, "Progressing"),
    ],
)
def test_each_combination_of_conditions(argocd_health: Path, conditions: dict[str, str], health: str) -> None:
    body = {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "d", "namespace": "default", "generation": 3},
        "status": {
            "observedGeneration": 3,
            "conditions": [
                {"type": t, "status": s, "reason": "Why", "message": f"{t} says so", "observedGeneration": 3}
                for t, s in conditions.items()
            ],
        },
    }
    got = evaluate(argocd_health, SCRIPT, body)
    assert (got["status"], got["message"]) == (health, status_cases.expected_health(body)[1])


def test_a_status_of_an_older_generation_is_progressing_whatever_it_says(argocd_health: Path) -> None:
    ready = yaml.safe_load((CUSTOMIZATIONS / "Dataset" / "testdata" / "ready.yaml").read_text())
    stale = json.loads(json.dumps(ready))
    for condition in stale["status"]["conditions"]:
        condition["observedGeneration"] = 0  # a condition written for an older generation
    got = evaluate(argocd_health, SCRIPT, stale)
    assert got["status"] == "Progressing" and "(the Ready condition is of generation 0)" in got["message"]
    del stale["status"]["observedGeneration"]
    assert (
        evaluate(argocd_health, SCRIPT, stale)["message"]
        == "Waiting for the operator to observe generation 1"
    )


# The runner is Argo CD's VM where a script can tell the difference (util/lua/lua.go).
def script_result(tool: Path, tmp_path: Path, lua: str, libs: str = "argocd-cm") -> dict[str, str]:
    script = tmp_path / "health.lua"
    script.write_text(lua)
    return evaluate(tool, script, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, libs)


def test_argocd_cm_scripts_get_no_string_library_built_in_ones_do(
    argocd_health: Path, tmp_path: Path
) -> None:
    lua = 'return {status = "Healthy", message = string.format("%d", 3)}'
    assert "attempt to index a non-table object(nil)" in script_result(argocd_health, tmp_path, lua)["error"]
    assert script_result(argocd_health, tmp_path, lua, "builtin") == {
        "kind": "ConfigMap",
        "name": "x",
        "status": "Healthy",
        "message": "3",
    }


@pytest.mark.parametrize(
    ("lua", "status", "message"),
    [
        ('return {status = "Fine"}', "Unknown", "Lua returned an invalid health status"),
        ("return {}", "", ""),
        ("return nil", "", ""),
        ('return {status = "Suspended", message = obj.metadata.name}', "Suspended", "x"),
        # Argo CD's restricted os: not a global (its OpenSafeOs registers into the table module, which
        # gopher-lua leaves as it is once loaded), `require("os")` gives time and date only; no io
        (
            'local os = require("os"); return {status = "Healthy", message = type(os.time()) .. " "'
            ' .. type(os.date) .. " " .. type(os.execute) .. " " .. type(table.date) .. " " .. type(io)}',
            "Healthy",
            "number function nil nil nil",
        ),
    ],
)
def test_results_are_read_as_argo_cd_reads_them(
    argocd_health: Path, tmp_path: Path, lua: str, status: str, message: str
) -> None:
    got = script_result(argocd_health, tmp_path, lua)
    assert (got.get("status"), got.get("message")) == (status, message), got


def test_a_script_that_never_ends_is_stopped_after_a_second(argocd_health: Path, tmp_path: Path) -> None:
    got = script_result(argocd_health, tmp_path, "while true do end")
    assert re.search(r"context deadline exceeded", got["error"]), got
