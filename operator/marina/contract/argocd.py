"""Argo CD health checks, generated from the contract: `make crds` writes, for every kind,
<folder>/resource_customizations/marina.dev/<Kind>/health.lua (Argo CD's own layout, beside the kind's
health_test.yaml and testdata/) and <folder>/argocd-cm.yaml, the argocd-cm keys that install them.

    python -m marina.contract.argocd manifests/argocd           # write
    python -m marina.contract.argocd --check manifests/argocd   # exit 1, naming the files, when any differs

Every kind gets the same script, <folder>/health.lua (the one to edit): it reads only the kstatus conventions
every kind follows, so a new kind in KINDS gets its check here without more work. Its health_test.yaml and
testdata come from the cluster (tests/e2e/test_e2e_gitops_status.py) and are not generated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from marina.contract.crds import sync
from marina.contract.kinds import GROUP, KINDS
from marina.contract.schema import Kind

SOURCE = "health.lua"
SNIPPET = "argocd-cm.yaml"
CUSTOMIZATIONS = "resource_customizations"


def folder_of(root: Path, kind: Kind) -> Path:
    """Where Argo CD's layout keeps a kind's health check: resource_customizations/<group>/<Kind>."""
    return root / CUSTOMIZATIONS / GROUP / kind.kind


def config_key(kind: Kind) -> str:
    """The argocd-cm key of a kind's health check (resource.customizations.health.<group>_<kind>)."""
    return f"resource.customizations.health.{GROUP}_{kind.kind}"


def script(source: str, kind: Kind) -> str:
    header = (
        f"-- Health of {GROUP}/{kind.kind} for Argo CD. Generated from manifests/argocd/{SOURCE} by "
        "`make crds`; edit that file.\n"
    )
    return header + source


def snippet(source: str) -> str:
    """argocd-cm.yaml: a ConfigMap to merge into Argo CD's argocd-cm (its keys, one per kind)."""
    lines = [
        "# Generated from operator/marina/contract/kinds.py and manifests/argocd/health.lua by `make crds`.",
        "# Argo CD health checks for Marina's kinds. Merge into Argo CD's argocd-cm, for example",
        "#   kubectl -n argocd patch configmap argocd-cm --patch-file manifests/argocd/argocd-cm.yaml",
        "# or add these keys to the argocd-cm your Argo CD installation keeps in Git. The scripts need no",
        "# resource.customizations.useOpenLibs key (they use Lua's base library only).",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  labels:",
        "    app.kubernetes.io/name: argocd-cm",
        "    app.kubernetes.io/part-of: argocd",
        "data:",
    ]
    for kind in KINDS:
        lines.append(f"  {config_key(kind)}: |")
        lines.extend(f"    {line}" if line else "" for line in script(source, kind).splitlines())
    return "\n".join(lines) + "\n"


def generate(root: Path) -> dict[Path, str]:
    source = (root / SOURCE).read_text()
    files = {folder_of(root, kind) / SOURCE: script(source, kind) for kind in KINDS}
    files[root / SNIPPET] = snippet(source)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marina.contract.argocd", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folder", type=Path, help="manifests/argocd (holding health.lua)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    written = sync(generate(args.folder), args.check)
    known = {kind.kind for kind in KINDS}
    extra = [str(p) for p in sorted((args.folder / CUSTOMIZATIONS / GROUP).glob("*")) if p.name not in known]
    if extra:
        print(f"folders for kinds the contract does not have: {', '.join(extra)}", file=sys.stderr)
        return 1
    return written
    return 0


if __name__ == "__main__":
    sys.exit(main())
