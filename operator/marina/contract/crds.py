"""The CRDs, generated from the contract: `make crds` writes crds/marina.dev_<plural>.yaml.

    python -m marina.contract.crds crds/           # write
    python -m marina.contract.crds --check crds/   # exit 1, naming the files, when any differs

The files are committed, so a diff shows every change to the API; CI regenerates them and fails on any
difference, as kubebuilder projects do with `make manifests`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from marina.contract.kinds import GROUP, KINDS, VERSION
from marina.contract.schema import Kind

HEADER = (
    "# Generated from operator/marina/contract/kinds.py by `make crds`; edit the contract, not this file.\n"
)
WIDTH = 100  # where long descriptions fold


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
    subresources: dict[str, Any] = {"status": {}}
    if kind.scale is not None:
        subresources["scale"] = {
            "specReplicasPath": kind.scale.spec_replicas,
            "statusReplicasPath": kind.scale.status_replicas,
            "labelSelectorPath": kind.scale.label_selector,
        }
    version["subresources"] = subresources
    version["additionalPrinterColumns"] = [column.schema() for column in kind.columns]
    version["schema"] = {"openAPIV3Schema": root_schema(kind)}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "marina", "app.kubernetes.io/part-of": "marina"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["marina"],
            },
            "versions": [version],
        },
    }


def root_schema(kind: Kind) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "description": kind.description}
    if kind.rules:
        schema["x-kubernetes-validations"] = [{"rule": r.rule, "message": r.message} for r in kind.rules]
    schema["required"] = ["spec"]
    schema["properties"] = {
        "apiVersion": {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
        "kind": {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents.",
        },
        "metadata": {"type": "object"},
        "spec": kind.spec.schema(),
        "status": kind.status.schema(),
    }
    return schema


def file_name(kind: Kind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"


class _Dumper(yaml.SafeDumper):
    """Block style with lists indented under their key, short lists of plain values on one line, long
    texts folded."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _list(dumper: yaml.SafeDumper, values: list[Any]) -> yaml.Node:
    flow = bool(values) and all(isinstance(v, str | int | float) and len(str(v)) < 40 for v in values)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", values, flow_style=flow)


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = ">" if len(text) > WIDTH - 20 and "\n" not in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(str, _text)


def render(kind: Kind) -> str:
    body = yaml.dump(crd(kind), Dumper=_Dumper, sort_keys=False, width=WIDTH, allow_unicode=True)
    return HEADER + body


def generate(folder: Path) -> dict[Path, str]:
    return {folder / file_name(kind): render(kind) for kind in KINDS}


def sync(files: Mapping[Path, str], check: bool) -> int:
    """Write each generated file whose text differs (or with `check`, name them and write nothing); the
    exit status: 1 when `check` found one out of date."""
    stale = []
    for path, text in files.items():
        if path.exists() and path.read_text() == text:
            continue
        if check:
            stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date with the contract (run `make crds`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marina.contract.crds", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    return sync(generate(args.folder), args.check)


if __name__ == "__main__":
    sys.exit(main())
