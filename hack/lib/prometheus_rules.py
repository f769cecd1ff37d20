"""Write a PrometheusRule manifest's spec (its `groups`) as a plain Prometheus rule file.

Prometheus Operator users apply manifests/monitoring/prometheusrule.yaml; a Prometheus without the
operator (hack/monitoring-up.sh) and promtool (tests/manifests/test_monitoring_rules.py) read the same
rules from the file this writes, so the rules live in one place.

    python3 hack/lib/prometheus_rules.py manifests/monitoring/prometheusrule.yaml OUTPUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def rule_file(manifest: Path) -> str:
    document = yaml.safe_load(manifest.read_text())
    if document.get("kind") != "PrometheusRule" or "groups" not in (document.get("spec") or {}):
        raise SystemExit(f"{manifest}: expected a PrometheusRule with spec.groups")
    return yaml.safe_dump({"groups": document["spec"]["groups"]}, sort_keys=False)


if __name__ == "__main__":
    source, target = map(Path, sys.argv[1:3])
    target.write_text(rule_file(source))
