"""manifests/monitoring checked by promtool (built from the pinned Prometheus module, as the cluster's
components are): the alert and recording rules load, their unit tests in manifests/monitoring/tests
pass, and every query of the Grafana dashboard parses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
sys.path.insert(0, str(REPO / "hack" / "lib"))
from prometheus_rules import rule_file  # noqa: E402

#: Grafana's variables, replaced by values of the same type so a query parses as PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": "ns",
    "$modeldeployment": "md",
}


@pytest.fixture(scope="session")
def promtool() -> Path:
    """hack/build-binaries.sh prometheus: built once into the cache, found there afterwards."""
    built = subprocess.run(
        ["bash", str(REPO / "hack" / "build-binaries.sh"), "prometheus"], capture_output=True, text=True
    )
    if built.returncode != 0:
        pytest.fail(f"building promtool failed:\n{built.stderr[-3000:]}")
    located = subprocess.run(
        ["bash", "-c", 'source hack/lib/common.sh && echo "$MARINA_CACHE/prometheus-$PROMETHEUS_VERSION"'],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(located.stdout.strip()) / "promtool"


def run(promtool: Path, *args: str, cwd: Path) -> str:
    result = subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_rules_load(promtool: Path, tmp_path: Path) -> None:
    rules = tmp_path / "marina.rules.yaml"
    rules.write_text(rule_file(MONITORING / "prometheusrule.yaml"))
    output = run(promtool, "check", "rules", str(rules), cwd=tmp_path)
    count = sum(len(group["rules"]) for group in yaml.safe_load(rules.read_text())["groups"])
    assert f"SUCCESS: {count} rules found" in output


def test_every_alert_has_unit_tests_and_they_pass(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "marina.rules.yaml").write_text(rule_file(MONITORING / "prometheusrule.yaml"))
    tests = sorted((MONITORING / "tests").glob("*.test.yaml"))
    for test in tests:
        shutil.copy(test, tmp_path / test.name)
    run(promtool, "test", "rules", *(t.name for t in tests), cwd=tmp_path)
    groups = yaml.safe_load((tmp_path / "marina.rules.yaml").read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    tested = {
        case["alertname"]
        for test in tests
        for group in yaml.safe_load(test.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts <= tested, f"alerts never shown firing by a test: {sorted(alerts - tested)}"


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), \w+\)", str(variable.get("definition", "")))
        if match:
            queries.append(match[1])  # the selector label_values reads from
    return queries


def test_every_dashboard_query_parses(promtool: Path, tmp_path: Path) -> None:
    queries = dashboard_queries()
    rules = []
    for index, query in enumerate(queries):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"a Grafana variable this test does not know: {query}"
        rules.append({"record": f"dashboard:query_{index}", "expr": query})
    (tmp_path / "dashboard.rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    output = run(promtool, "check", "rules", "dashboard.rules.yaml", cwd=tmp_path)
    assert f"SUCCESS: {len(queries)} rules found" in output
