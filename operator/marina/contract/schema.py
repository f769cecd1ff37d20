"""The types a custom resource is described in, once: each field's type, default, range, enum, pattern
and description, and each kind's names, printer columns and validation rules.

`marina.contract.kinds` describes Dataset, TrainingJob and ModelDeployment with them; from that one
description the CRDs' `openAPIV3Schema` is generated (`marina.contract.crds`, as kubebuilder generates
CRDs from Go types), the field reference is written (`marina.contract.reference`), the controller's spec
parsers take their defaults and ranges, and so do the commands' flags.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from marina.contract.bounds import Bound
from marina.contract.failures import SpecError


class _Absent:
    """No default: the API server leaves the field out when the user does."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Rule:
    """A CEL validation the API server evaluates (`x-kubernetes-validations`), with the message it shows."""

    rule: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Field:
    """What every field has: words for people, a default the API server fills in, CEL rules."""

    description: str = ""
    default: Any = ABSENT
    rules: tuple[Rule, ...] = ()

    TYPE = ""

    @property
    def has_default(self) -> bool:
        return self.default is not ABSENT

    def problem(self, value: Any) -> str | None:
        """Why `value` is not allowed here, in words a status or an error message can carry; None if it is."""
        return None

    def check(self, where: str, value: Any) -> None:
        """Raise SpecError naming `where` (a field path or a flag) when `value` is not allowed."""
        problem = self.problem(value)
        if problem:
            raise SpecError(f"{where}: {problem}")

    def schema(self) -> dict[str, Any]:
        """This field's openAPIV3Schema, keys in the order people read them."""
        out: dict[str, Any] = {"type": self.TYPE} if self.TYPE else {}
        out.update(self._format())
        if self.description:
            out["description"] = self.description
        out.update(self._constraints())
        if self.has_default:
            out["default"] = self.default
        out.update(self._children())
        if self.rules:
            out["x-kubernetes-validations"] = [{"rule": r.rule, "message": r.message} for r in self.rules]
        return out

    def _format(self) -> dict[str, Any]:
        return {}

    def _constraints(self) -> dict[str, Any]:
        return {}

    def _children(self) -> dict[str, Any]:
        return {}

    def children(self) -> Iterator[tuple[str, Field]]:
        """(path step, field) of the fields inside this one: `name` for properties, `[]` for items."""
        return iter(())


def _range(bound: Bound | None) -> dict[str, Any]:
    if bound is None:
        return {}
    out: dict[str, Any] = {}
    if bound.minimum is not None:
        out["minimum"] = bound.minimum
        if bound.exclusive_minimum:
            out["exclusiveMinimum"] = True
    if bound.maximum is not None:
        out["maximum"] = bound.maximum
        if bound.exclusive_maximum:
            out["exclusiveMaximum"] = True
    return out


def _size(bound: Bound | None, low: str, high: str) -> dict[str, Any]:
    if bound is None:
        return {}
    out: dict[str, Any] = {}
    if bound.minimum is not None:
        out[low] = int(bound.minimum)
    if bound.maximum is not None:
        out[high] = int(bound.maximum)
    return out


@dataclass(frozen=True, kw_only=True)
class String(Field):
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    length: Bound | None = None
    format: str | None = None

    TYPE = "string"

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return f"must be a non-empty string, got {value!r}"
        if self.enum is not None and value not in self.enum:
            return f"must be one of {', '.join(self.enum)}, got {value!r}"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"{value!r} does not match {self.pattern}"
        return None

    def _format(self) -> dict[str, Any]:
        return {"format": self.format} if self.format else {}

    def _constraints(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enum": list(self.enum)} if self.enum is not None else {}
        if self.pattern is not None:
            out["pattern"] = self.pattern
        out.update(_size(self.length, "minLength", "maxLength"))
        return out


@dataclass(frozen=True, kw_only=True)
class Integer(Field):
    bound: Bound | None = None
    format: str | None = None

    TYPE = "integer"

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        return self.bound.problem(value) if self.bound is not None else None

    def _format(self) -> dict[str, Any]:
        return {"format": self.format} if self.format else {}

    def _constraints(self) -> dict[str, Any]:
        return {
            key: value if isinstance(value, bool) else int(value) for key, value in _range(self.bound).items()
        }


@dataclass(frozen=True, kw_only=True)
class Number(Field):
    bound: Bound | None = None

    TYPE = "number"

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            return f"must be a number, got {value!r}"
        return self.bound.problem(value) if self.bound is not None else None

    def _constraints(self) -> dict[str, Any]:
        return _range(self.bound)


@dataclass(frozen=True, kw_only=True)
class Boolean(Field):
    TYPE = "boolean"

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


@dataclass(frozen=True, kw_only=True)
class IntOrString(Field):
    """A Kubernetes quantity (`100m`, `512Mi`, 2)."""

    def schema(self) -> dict[str, Any]:
        return {"x-kubernetes-int-or-string": True, **super().schema()}


@dataclass(frozen=True, kw_only=True)
class Array(Field):
    items: Field
    size: Bound | None = None
    list_type: str | None = None  # `set`, or `map` with `map_keys`
    map_keys: tuple[str, ...] = ()

    TYPE = "array"

    def _constraints(self) -> dict[str, Any]:
        return _size(self.size, "minItems", "maxItems")

    def _children(self) -> dict[str, Any]:
        out: dict[str, Any] = {"items": self.items.schema()}
        if self.list_type:
            out["x-kubernetes-list-type"] = self.list_type
        if self.map_keys:
            out["x-kubernetes-list-map-keys"] = list(self.map_keys)
        return out

    def children(self) -> Iterator[tuple[str, Field]]:
        yield "[]", self.items


@dataclass(frozen=True, kw_only=True)
class Object(Field):
    """An object with named properties; `values` instead describes a map's values, and `open` keeps
    fields the schema does not name (`x-kubernetes-preserve-unknown-fields`)."""

    properties: Mapping[str, Field] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    values: Field | None = None
    open: bool = False

    TYPE = "object"

    def __post_init__(self) -> None:
        missing = [name for name in self.required if name not in self.properties]
        if missing:
            raise ValueError(f"required fields {missing} are not properties")

    def _constraints(self) -> dict[str, Any]:
        return {"required": list(self.required)} if self.required else {}

    def _children(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.properties:
            out["properties"] = {name: child.schema() for name, child in self.properties.items()}
        if self.values is not None:
            out["additionalProperties"] = self.values.schema()
        if self.open:
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out

    def children(self) -> Iterator[tuple[str, Field]]:
        yield from self.properties.items()
        if self.values is not None:
            yield "*", self.values


@dataclass(frozen=True)
class Column:
    """A printer column of `kubectl get` (priority 1 shows only with `-o wide`)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.description:
            out["description"] = self.description
        out["jsonPath"] = self.json_path
        if self.priority:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class Scale:
    """The scale subresource, so `kubectl scale` and HPAs can size the kind."""

    spec_replicas: str
    status_replicas: str
    label_selector: str


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One custom resource: its names, what `kubectl get` prints, and its spec and status."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: Object
    status: Object
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...] = ()
    scale: Scale | None = None

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def at(self, path: str) -> Field:
        """The field at a dotted path: `spec.model.tol`, `spec.rollout.steps[].weight`."""
        steps = path.replace("[]", ".[]").split(".")
        node: Field = Object(properties={"spec": self.spec, "status": self.status})
        for step in steps:
            node = _step(node, step, path)
        return node

    def integer(self, path: str) -> Integer:
        return _typed(self.at(path), Integer, path)

    def number(self, path: str) -> Number:
        return _typed(self.at(path), Number, path)

    def string(self, path: str) -> String:
        return _typed(self.at(path), String, path)

    def default(self, path: str) -> Any:
        """The default the API server writes at `path` (a programming error if it has none)."""
        node = self.at(path)
        if not node.has_default:
            raise KeyError(f"{self.kind} {path} has no default")
        return node.default

    def fields(self) -> Iterator[tuple[str, Field]]:
        """Every field of spec and status with its dotted path, parents before their children."""
        for root, node in (("spec", self.spec), ("status", self.status)):
            yield root, node
            yield from _walk(root, node)


F = TypeVar("F", bound=Field)


def _typed(node: Field, kind: type[F], path: str) -> F:
    if not isinstance(node, kind):
        raise TypeError(f"{path} is a {type(node).__name__}, not a {kind.__name__}")
    return node


def _step(node: Field, step: str, path: str) -> Field:
    if step == "[]" and isinstance(node, Array):
        return node.items
    if isinstance(node, Object) and step in node.properties:
        return node.properties[step]
    raise KeyError(f"the contract has no field {path!r} (no {step!r} there)")


def _walk(prefix: str, node: Field) -> Iterator[tuple[str, Field]]:
    for step, child in node.children():
        path = f"{prefix}{step}" if step == "[]" else f"{prefix}.{step}"
        yield path, child
        yield from _walk(path, child)


def violations(kind: Kind, body: Mapping[str, Any]) -> list[str]:
    """What the API server's schema validation would refuse in `body`'s spec, one `path: problem` each:
    a missing required field, a value of the wrong type or outside its range, enum or pattern, a list of
    the wrong size. (CEL rules are the spec parsers' to repeat; unknown fields the server prunes.)"""
    spec = body.get("spec")
    if spec is None:
        return ["spec: Required value"]
    return list(_violations(kind.spec, spec, "spec"))


def _violations(field: Field, value: Any, path: str) -> Iterator[str]:
    if isinstance(field, Object):
        if not isinstance(value, Mapping):
            yield f"{path}: must be an object, got {value!r}"
            return
        for name in field.required:
            if value.get(name) is None:
                yield f"{path}.{name}: Required value"
        for name, child in value.items():
            inner = field.properties.get(name, field.values)
            if inner is not None and child is not None:
                yield from _violations(inner, child, f"{path}.{name}")
        return
    if isinstance(field, Array):
        if not isinstance(value, list):
            yield f"{path}: must be a list, got {value!r}"
            return
        if field.size is not None and (problem := field.size.problem(len(value))):
            yield f"{path}: number of items {problem}"
        for index, item in enumerate(value):
            yield from _violations(field.items, item, f"{path}[{index}]")
        return
    problem = field.problem(value)
    if problem:
        yield f"{path}: {problem}"
