"""Resources printed as `kubectl get marina` prints them: a table per kind, its columns the CRD's printer
columns (the contract's), read from each object by their JSONPath."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from marina.contract import GROUP, KINDS
from marina.contract.schema import Column, Kind
from marina.system.clock import parse_timestamp

_FILTER = re.compile(r'^(\w+)\[\?\(@\.(\w+)=="([^"]*)"\)\]$')
_STEP = re.compile(r"\.(\w+(?:\[[^\]]*\])?)")  # `.name` or `.name[?(@.key=="value")]`


def read_path(body: Mapping[str, Any], path: str) -> Any:
    """The value at a printer column's JSONPath (`.status.model.version`, or a list filtered by a key:
    `.status.conditions[?(@.type=="Ready")].status`)."""
    value: Any = body
    for step in _STEP.findall(path):
        matched = _FILTER.match(step)
        if matched:
            name, key, wanted = matched.groups()
            items = value.get(name) if isinstance(value, Mapping) else None
            value = next((i for i in items or [] if isinstance(i, Mapping) and i.get(key) == wanted), None)
        else:
            value = value.get(step) if isinstance(value, Mapping) else None
        if value is None:
            return None
    return value


def age(stamp: str | None, now: datetime | None = None) -> str:
    """kubectl's short age: 45s, 3m, 2h, 4d."""
    if not stamp:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - parse_timestamp(stamp)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def cell(body: Mapping[str, Any], column: Column) -> str:
    value = read_path(body, column.json_path)
    if column.type == "date":
        return age(value)
    if value is None:
        return ""
    return str(value)


def table(kind: Kind, bodies: Sequence[Mapping[str, Any]], wide: bool = False) -> str:
    """One kind's objects as kubectl prints them (NAME as `<plural>.<group>/<name>`)."""
    columns = [c for c in kind.columns if wide or not c.priority]
    rows = [["NAME", *(c.name.upper() for c in columns)]]
    for body in bodies:
        rows.append(
            [f"{kind.singular}.{GROUP}/{body['metadata']['name']}", *(cell(body, c) for c in columns)]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(text.ljust(w) for text, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def tables(bodies: Iterable[Mapping[str, Any]], wide: bool = False) -> str:
    """Every kind that has objects, in the contract's order, a blank line between them."""
    found = list(bodies)
    parts = []
    for kind in KINDS:
        mine = [b for b in found if b.get("kind") == kind.kind]
        if mine:
            parts.append(table(kind, sorted(mine, key=lambda b: b["metadata"]["name"]), wide))
    return "\n\n".join(parts)
