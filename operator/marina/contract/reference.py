"""docs/reference.md, generated from the contract: every field of every kind, with its type, default,
allowed values and description (`make crds` writes it beside the CRDs).

    python -m marina.contract.reference docs/reference.md           # write
    python -m marina.contract.reference --check docs/reference.md   # exit 1 when it differs
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from marina.contract.bounds import Bound, plain
from marina.contract.crds import sync
from marina.contract.kinds import API_VERSION, KINDS
from marina.contract.schema import Array, Field, Integer, IntOrString, Kind, Number, Object, String

HEADER = """# Field reference

<!-- Generated from operator/marina/contract/kinds.py by `make crds`; edit the contract, not this file. -->

Every field of Marina's resources (`apiVersion: {api_version}`), as the CRDs state them: the type, the
default the API server fills in, the values allowed and what the field does. The same contract gives the
operator's checks, so a value the API server accepts is one the operator takes. How the resources behave
is in [resources.md](resources.md).
"""


def type_name(field: Field) -> str:
    if isinstance(field, Array):
        return f"[]{type_name(field.items)}"
    if isinstance(field, Object):
        return "map[string]" + type_name(field.values) if field.values is not None else "object"
    if isinstance(field, IntOrString):
        return "quantity"
    shown = getattr(field, "format", None)
    return field.TYPE + (f" ({shown})" if shown else "")


def _range(bound: Bound | None) -> str:
    return "" if bound is None else f"in {bound}"


def _count(bound: Bound, what: str) -> str:
    if bound.minimum is None:
        return f"at most {plain(bound.maximum or 0)} {what}"
    if bound.maximum is None:
        return f"at least {plain(bound.minimum)} {what}"
    return f"{plain(bound.minimum)} to {plain(bound.maximum)} {what}"


def allowed(field: Field) -> str:
    """What values the field takes, in a few words."""
    if isinstance(field, String):
        parts = [" | ".join(f"`{value}`" for value in field.enum)] if field.enum else []
        if field.pattern:
            parts.append(f"matches `{field.pattern}`")
        if field.length is not None and field.length != Bound(1):
            parts.append(_count(field.length, "characters"))
        return ", ".join(parts)
    if isinstance(field, Integer | Number):
        return _range(field.bound)
    if isinstance(field, Array):
        parts = [_count(field.size, "items")] if field.size is not None else []
        inner = allowed(field.items)
        if inner:
            parts.append(f"each {inner}")
        if field.list_type == "set":
            parts.append("no repeats")
        return ", ".join(parts)
    return "; ".join(rule.message for rule in field.rules)


def default(field: Field) -> str:
    if not field.has_default:
        return ""
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{plain(value)}`"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(kind: Kind, root: str) -> Iterator[str]:
    for path, field in kind.fields():
        if not path.startswith(f"{root}."):
            continue
        if path.endswith(("[]", ".*")):
            continue  # an item or a map's value: its row would repeat the list's or the map's
        required = _required(kind, path)
        name = f"`{path}`" + (" (required)" if required else "")
        yield (
            f"| {name} | {type_name(field)} | {default(field)} | {_cell(allowed(field))} "
            f"| {_cell(field.description)} |"
        )


def _required(kind: Kind, path: str) -> bool:
    parent, _, name = path.rpartition(".")
    if parent.endswith("[]"):
        return False
    holder = kind.at(parent) if parent not in ("spec", "status") else getattr(kind, parent)
    return isinstance(holder, Object) and name in holder.required


def section(kind: Kind) -> str:
    names = ", ".join(f"`{name}`" for name in kind.short_names)
    lines = [
        f"## {kind.kind}",
        "",
        kind.description,
        "",
        f"Plural `{kind.plural}`, short names {names}, category `marina` (`kubectl get marina` lists it).",
        "",
        "`kubectl get` columns: "
        + ", ".join(column.name + (" (wide)" if column.priority else "") for column in kind.columns)
        + ".",
    ]
    for root, title in (("spec", "Spec"), ("status", "Status (written by the operator)")):
        lines += ["", f"### {kind.kind} {title.lower()}", ""]
        node = kind.spec if root == "spec" else kind.status
        if node.rules:
            lines += ["Checked on every write: " + "; ".join(rule.message for rule in node.rules) + ".", ""]
        lines += ["| field | type | default | allowed | description |", "|---|---|---|---|---|"]
        lines += list(rows(kind, root))
    return "\n".join(lines)


def render() -> str:
    body = "\n\n".join(section(kind) for kind in KINDS)
    return HEADER.format(api_version=API_VERSION) + "\n" + body + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marina.contract.reference", description=__doc__.splitlines()[0]
    )
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    return sync({args.path: render()}, args.check)


if __name__ == "__main__":
    sys.exit(main())
