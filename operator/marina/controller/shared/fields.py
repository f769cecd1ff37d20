"""Typed reading of a resource's spec, with one error type that names the field and the problem.

The API server already enforces the CRD schema; these checks repeat the essentials (so a spec
written before a schema change, or on a server without CEL, still gets a clear answer) and add
the rules a schema cannot express.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from marina.contract import KEEP_LAST, Bound

Resources = dict[str, dict[str, str]]
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[numkMGTPE])?$")


class InvalidSpec(Exception):
    """A spec value is wrong; `field` is its dotted path (e.g. `spec.split.testFraction`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Fields:
    """A view of one mapping in the spec that knows its own path, for precise error messages."""

    def __init__(self, data: Any, path: str = "spec") -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidSpec(path, f"must be an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.path = path

    def where(self, key: str) -> str:
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def section(self, key: str) -> Fields:
        return Fields(self.data.get(key), self.where(key))

    def _value(self, key: str, default: Any, required: bool) -> Any:
        value = self.data.get(key)
        if value is None:
            if required:
                raise InvalidSpec(self.where(key), "is required")
            return default
        return value

    def string(
        self,
        key: str,
        default: str | None = None,
        *,
        required: bool = False,
        choices: Sequence[str] | None = None,
        pattern: str | None = None,
    ) -> str | None:
        value = self._value(key, default, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise InvalidSpec(self.where(key), f"must be a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise InvalidSpec(self.where(key), f"must be one of {', '.join(choices)}, got {value!r}")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise InvalidSpec(self.where(key), f"{value!r} does not match {pattern}")
        return value

    def required_string(self, key: str, **kwargs: Any) -> str:
        value = self.string(key, required=True, **kwargs)
        assert value is not None
        return value

    def number(self, key: str, default: float, bound: Bound) -> float:
        return check_range(self.where(key), self._value(key, default, False), bound)

    def integer(self, key: str, default: int, bound: Bound) -> int:
        value = self._value(key, default, False)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidSpec(self.where(key), f"must be an integer, got {value!r}")
        return int(check_range(self.where(key), value, bound))

    def optional_integer(self, key: str, bound: Bound) -> int | None:
        return self.integer(key, 0, bound) if self.has(key) else None

    def optional_number(self, key: str, bound: Bound) -> float | None:
        return self.number(key, 0.0, bound) if self.has(key) else None

    def boolean(self, key: str, default: bool) -> bool:
        value = self._value(key, default, False)
        if not isinstance(value, bool):
            raise InvalidSpec(self.where(key), f"must be true or false, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidSpec(self.where(key), "must be a list of non-empty strings")
        if len(set(value)) != len(value):
            raise InvalidSpec(self.where(key), "must not repeat a name")
        return tuple(value)

    def numbers(self, key: str, bound: Bound) -> tuple[float, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise InvalidSpec(self.where(key), "must be a non-empty list of numbers")
        return tuple(check_range(f"{self.where(key)}[{i}]", v, bound) for i, v in enumerate(value))

    def resources(self, key: str = "resources") -> Resources:
        section = self.section(key)
        parsed: Resources = {}
        for kind in ("requests", "limits"):
            quantities = section.section(kind)
            for resource, amount in quantities.data.items():
                text = str(amount)
                if isinstance(amount, bool) or not _QUANTITY.match(text):
                    raise InvalidSpec(quantities.where(resource), f"{amount!r} is not a Kubernetes quantity")
                parsed.setdefault(kind, {})[resource] = text
        return parsed


def check_range(field: str, value: Any, bound: Bound) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidSpec(field, f"must be a number, got {value!r}")
    problem = bound.problem(value)
    if problem:
        raise InvalidSpec(field, problem)
    return float(value)


def keep_last(spec: Fields) -> int | None:
    """`spec.retention.keepLast`: how many newest versions to keep; None (no retention) keeps them all."""
    if not spec.has("retention"):
        return None
    retention = spec.section("retention")
    if not retention.has("keepLast"):
        raise InvalidSpec(retention.where("keepLast"), "is required")
    return retention.integer("keepLast", 1, KEEP_LAST)
