"""A model's raw inputs and their one-hot encoding: the same code for training and serving.

An artifact's `inputs` lists the columns a caller sends: a number input is one feature, a category
input is one 0/1 feature per category seen in the train split (sorted). Keeping the expansion in
one pure module (numpy only) is what guarantees serving encodes exactly as training did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import numpy as np
from numpy.dtypes import StringDType

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


class EncodingError(ValueError):
    """A column cannot be encoded; names the input and the first offending row (None: the whole column)."""

    def __init__(self, input_name: str, row: int | None, problem: str) -> None:
        where = f"input '{input_name}'" + ("" if row is None else f" row {row}")
        super().__init__(f"{where}: {problem}")
        self.input_name, self.row, self.problem = input_name, row, problem


class HasInputs(Protocol):
    """What `Inputs.of` needs from a model artifact (a Protocol: the artifact module imports this one)."""

    @property
    def inputs(self) -> list[dict[str, Any]]: ...

    @property
    def feature_names(self) -> list[str]: ...


_STRINGS = StringDType(coerce=False)  # refuses anything but str: no silent "1" for a number
_NULL = np.asarray(None, dtype=object)


@dataclass(frozen=True)
class Inputs:
    """A model's raw inputs, ready to encode columns into its (rows, n_features) matrix."""

    items: tuple[Input, ...]
    # Derived once: where each input's features start, and each category input's sorted categories.
    offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)
    sorted_categories: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)
    by_name: dict[str, Input] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offsets = np.cumsum([0, *(len(item.feature_names()) for item in self.items)])
        sorted_categories = {
            item.name: np.asarray(item.categories, dtype=_STRINGS) for item in self.items if item.is_category
        }
        object.__setattr__(self, "offsets", tuple(int(o) for o in offsets))
        object.__setattr__(self, "sorted_categories", sorted_categories)
        object.__setattr__(self, "by_name", {item.name: item for item in self.items})

    @classmethod
    def from_list(cls, inputs: Sequence[Mapping[str, Any]]) -> Inputs:
        return cls(tuple(parse(inputs)))

    @classmethod
    def numbers(cls, names: Sequence[str]) -> Inputs:
        """Every feature a number input: what an artifact without `inputs` means."""
        return cls(tuple(Input(name, NUMBER) for name in names))

    @classmethod
    def of(cls, artifact: HasInputs) -> Inputs:
        return cls.from_list(artifact.inputs) if artifact.inputs else cls.numbers(artifact.feature_names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.items)

    @property
    def has_categories(self) -> bool:
        return any(item.is_category for item in self.items)

    @property
    def n_features(self) -> int:
        return self.offsets[-1]

    def expanded_names(self) -> list[str]:
        return [name for item in self.items for name in item.feature_names()]

    def to_list(self) -> list[dict[str, Any]]:
        return [item.to_dict() for item in self.items]

    def encode(self, columns: Sequence[Any]) -> tuple[np.ndarray, dict[str, int]]:
        """Columns in input order → (float64 matrix in feature order, unseen values per category input).

        Number columns are anything numpy reads as numbers; category columns hold str or None. An
        unseen or missing category value leaves its row's one-hot block all zeros and is counted.
        """
        if len(columns) != len(self.items):
            raise ValueError(
                f"expected {len(self.items)} columns ({', '.join(self.names)}), got {len(columns)}"
            )
        rows = _row_count(self.items, columns)
        matrix = np.zeros((rows, self.n_features))
        unseen: dict[str, int] = {}
        for item, offset, column in zip(self.items, self.offsets, columns, strict=False):
            if item.is_category:
                unseen[item.name] = self._one_hot(matrix, offset, item, column)
            else:
                matrix[:, offset] = number_column(item.name, column)
        return matrix, unseen

    def _one_hot(self, matrix: np.ndarray, offset: int, item: Input, column: Any) -> int:
        """Sets each row's category bit (binary search in the sorted categories); returns the misses."""
        values, missing = category_column(item.name, column)
        categories = self.sorted_categories[item.name]
        found = np.searchsorted(categories, values)
        np.minimum(found, len(categories) - 1, out=found)
        hit = categories[found] == values
        hit &= ~missing
        rows = np.flatnonzero(hit)
        matrix[rows, offset + found[rows]] = 1.0
        return len(values) - len(rows)


def _row_count(items: Sequence[Input], columns: Sequence[Any]) -> int:
    lengths = [len(column) for column in columns]
    if not lengths:
        return 0
    for item, length in zip(items, lengths, strict=False):
        if length != lengths[0]:
            raise EncodingError(
                item.name, None, f"{length} rows, but input '{items[0].name}' has {lengths[0]}"
            )
    return lengths[0]


def number_column(name: str, column: Any) -> np.ndarray:
    """A 1-D float64 column; refuses strings, booleans, nulls and nesting naming the first bad row."""
    try:
        values = np.asarray(column)
    except ValueError:
        values = np.asarray(column, dtype=object)
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        row = next((i for i, v in enumerate(column) if not _is_number(v)), None)
        raise EncodingError(
            name, row, f"must be a number, got {_describe(column[row] if row is not None else column)}"
        )
    return values.astype(np.float64, copy=False)


def category_column(name: str, column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values as a 1-D StringDType array with "" for missing, missing mask); refuses non-strings."""
    values = np.asarray(column, dtype=object)
    if values.ndim != 1:  # only lists nest: some row is not a string
        _refuse_non_string(name, list(column))
    missing = np.equal(values, _NULL)
    if missing.any():
        values = values.copy()
        values[missing] = ""
    try:
        strings = values.astype(_STRINGS)
    except (TypeError, ValueError):
        _refuse_non_string(name, values)
    return strings, missing


def _refuse_non_string(name: str, values: Any) -> NoReturn:
    row = next(i for i, v in enumerate(values) if v is not None and not isinstance(v, str))
    raise EncodingError(name, row, f"must be a string (a category) or null, got {_describe(values[row])}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _describe(value: object) -> str:
    """The JSON name of a value's type, since callers send JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float | np.number):
        return "number"
    if isinstance(value, list | tuple | np.ndarray):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
