"""A model's raw inputs and their one-hot encoding: the same code for training and serving.

An artifact's `inputs` lists the columns a caller sends: a number input is one feature, a category
input is one 0/1 feature per category seen in the train split (sorted). Keeping the expansion in
one pure module (numpy only) is what guarantees serving encodes exactly as training did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NUMBER = "number"
CATEGORY = "category"
_KEYS = {NUMBER: {"name", "type"}, CATEGORY: {"name", "type", "categories"}}


class InputsError(ValueError):
    """An `inputs` list is malformed: the message names the entry and the problem."""


@dataclass(frozen=True)
class Input:
    name: str
    type: str
    categories: tuple[str, ...] = ()

    @property
    def is_category(self) -> bool:
        return self.type == CATEGORY

    def feature_names(self) -> list[str]:
        """The coefficient names this input contributes, in coefficient order."""
        if self.is_category:
            return [f"{self.name}={category}" for category in self.categories]
        return [self.name]

    def to_dict(self) -> dict[str, Any]:
        if self.is_category:
            return {"name": self.name, "type": CATEGORY, "categories": list(self.categories)}
        return {"name": self.name, "type": NUMBER}


def parse(inputs: Sequence[Mapping[str, Any]]) -> list[Input]:
    """Validated inputs; refuses anything training would not have written (InputsError)."""
    if not isinstance(inputs, list | tuple):
        raise InputsError("inputs: must be a list")
    parsed = [_parse_one(i, entry) for i, entry in enumerate(inputs)]
    names = [item.name for item in parsed]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputsError(f"inputs: names must be unique, repeated: {', '.join(duplicates)}")
    return parsed


def _parse_one(index: int, entry: Mapping[str, Any]) -> Input:
    where = f"inputs[{index}]"
    if not isinstance(entry, Mapping):
        raise InputsError(f"{where}: must be an object with name and type")
    name, kind = entry.get("name"), entry.get("type")
    if not isinstance(name, str) or not name:
        raise InputsError(f"{where}: name must be a non-empty string")
    where = f"{where} ({name})"
    if kind not in _KEYS:
        raise InputsError(f"{where}: type must be {NUMBER!r} or {CATEGORY!r}, got {kind!r}")
    unknown = sorted(set(entry) - _KEYS[kind])
    if unknown:
        raise InputsError(f"{where}: unknown keys for a {kind} input: {', '.join(unknown)}")
    if kind == NUMBER:
        return Input(name, NUMBER)
    return Input(name, CATEGORY, _categories(where, entry.get("categories")))


def _categories(where: str, categories: object) -> tuple[str, ...]:
    """Sorted and unique, because encoding binary-searches them."""
    if not isinstance(categories, list) or not categories:
        raise InputsError(f"{where}: categories must be a non-empty list of strings")
    if not all(isinstance(c, str) for c in categories):
        raise InputsError(f"{where}: categories must all be strings")
    if categories != sorted(set(categories)):
        raise InputsError(f"{where}: categories must be sorted and unique")
    return tuple(categories)


def expand(inputs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The feature names (coefficient order) that `inputs` expand to; training calls this."""
    return [name for item in parse(inputs) for name in item.feature_names()]
