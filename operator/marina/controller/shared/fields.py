"""Typed reading of a resource's spec against the contract, with one error type that names the field.

The API server already enforces the CRD schema, which is generated from the same contract
(`marina.contract.kinds`); these checks repeat it (so a spec written before a schema change, or on a server
without CEL, still gets a clear answer) and take every default, range, enum and pattern from it, so the
parser and the CRD cannot disagree. The rules a schema cannot express stay in each kind's spec module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from marina.contract.schema import Array, Boolean, Field, Integer, Number, Object, String

Resources = dict[str, dict[str, str]]
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[numkMGTPE])?$")
F = TypeVar("F", bound=Field)


class InvalidSpec(Exception):
    """A spec value is wrong; `field` is its dotted path (e.g. `spec.split.testFraction`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Fields:
    """A view of one object in the spec that knows its path and its part of the contract."""

    def __init__(self, data: Any, schema: Object, path: str = "spec") -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidSpec(path, f"must be an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.schema = schema
        self.path = path

    def where(self, key: str) -> str:
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def section(self, key: str) -> Fields:
        return Fields(self.data.get(key), self._field(key, Object), self.where(key))

    def _field(self, key: str, kind: type[F]) -> F:
        field = self.schema.properties.get(key)
        if not isinstance(field, kind):
            raise TypeError(f"the contract has no {kind.__name__} {self.where(key)}")
        return field

    def _read(self, key: str, field: Field) -> Any:
        """The value (or the contract's default), checked against the contract; None when absent."""
        value = self.data.get(key)
        if value is None:
            if key in self.schema.required:
                raise InvalidSpec(self.where(key), "is required")
            value = field.default if field.has_default else None
        if value is not None:
            problem = field.problem(value)
            if problem:
                raise InvalidSpec(self.where(key), problem)
        return value

    def string(self, key: str) -> str | None:
        value = self._read(key, self._field(key, String))
        return None if value is None else str(value)

    def required_string(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise InvalidSpec(self.where(key), "is required")
        return value

    def optional_number(self, key: str) -> float | None:
        value = self._read(key, self._field(key, Number))
        return None if value is None else float(value)

    def number(self, key: str) -> float:
        value = self.optional_number(key)
        if value is None:
            raise InvalidSpec(self.where(key), "is required")
        return value

    def optional_integer(self, key: str) -> int | None:
        value = self._read(key, self._field(key, Integer))
        return None if value is None else int(value)

    def integer(self, key: str) -> int:
        value = self.optional_integer(key)
        if value is None:
            raise InvalidSpec(self.where(key), "is required")
        return value

    def boolean(self, key: str) -> bool:
        return bool(self._read(key, self._field(key, Boolean)))

    def strings(self, key: str) -> tuple[str, ...] | None:
        """A list of distinct non-empty strings."""
        self._field(key, Array)
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidSpec(self.where(key), "must be a list of non-empty strings")
        if len(set(value)) != len(value):
            raise InvalidSpec(self.where(key), "must not repeat a name")
        return tuple(value)

    def numbers(self, key: str) -> tuple[float, ...] | None:
        """A non-empty list of numbers, each checked as the contract's items."""
        items = self._field(key, Array).items
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise InvalidSpec(self.where(key), "must be a non-empty list of numbers")
        for index, item in enumerate(value):
            problem = items.problem(item)
            if problem:
                raise InvalidSpec(f"{self.where(key)}[{index}]", problem)
        return tuple(float(item) for item in value)

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


def keep_last(spec: Fields) -> int | None:
    """`spec.retention.keepLast`: how many newest versions to keep; None (no retention) keeps them all."""
    if not spec.has("retention"):
        return None
    return spec.section("retention").integer("keepLast")
