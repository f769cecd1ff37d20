"""The files Marina's Helm chart carries as copies, since a chart reads nothing outside its folder: the CRDs
(crds/*.yaml into manifests/helm/marina/crds/) and manifests/monitoring's PodMonitors, PrometheusRule and
Grafana dashboard (into manifests/helm/marina/files/monitoring/). `make crds` copies them, `make check` fails
on any difference:

    python3 hack/chart_files.py           # copy
    python3 hack/chart_files.py --check   # exit 1, naming the files, when a copy differs or is extra
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "manifests" / "helm" / "marina"
MONITORING = ("podmonitors.yaml", "prometheusrule.yaml", "grafana-dashboard.json")


def copies() -> dict[Path, Path]:
    """Copy -> original."""
    found = {
        CHART / "crds" / crd.name: crd
        for crd in sorted((REPO / "crds").glob("*.yaml"))
        if crd.name != "kustomization.yaml"
    }
    found.update(
        {
            CHART / "files" / "monitoring" / name: REPO / "manifests" / "monitoring" / name
            for name in MONITORING
        }
    )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of copying")
    args = parser.parse_args(argv)
    wanted = copies()
    stale = [
        copy
        for copy, original in wanted.items()
        if not copy.exists() or copy.read_bytes() != original.read_bytes()
    ]
    extra = [
        path
        for folder in (CHART / "crds", CHART / "files" / "monitoring")
        for path in sorted(folder.glob("*"))
        if path not in wanted
    ]
    if args.check:
        problems = [f"{p.relative_to(REPO)} differs from its original" for p in stale]
        problems += [f"{p.relative_to(REPO)} is no copy of anything" for p in extra]
        for problem in problems:
            print(f"{problem} (run `make crds`)", file=sys.stderr)
        return 1 if problems else 0
    for copy in stale:
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(wanted[copy].read_bytes())
    for path in extra:
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
