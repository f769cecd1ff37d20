"""Tables as sources deliver them: named numeric columns (NaN marks a missing cell, a text column holds
codes into its dictionary), the checks every source applies, and the data error they raise."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from marina.contract import FailureKind, JobError

# Cell texts that mean "no value" in a CSV or inline row (compared case-insensitively).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})


class DataError(JobError, ValueError):
    """The data is unusable (a bad cell, a missing column, too few rows, corrupted stored content); the
    message names the column, row or object. Bad options are `contract.SpecError`."""

    kind = FailureKind.DATA


@dataclass(frozen=True)
class Table:
    """A numeric table as read from a source: NaN marks a missing value. A text (category) column holds
    codes: indexes into its entry of `dictionaries`, its values in order of first appearance."""

    columns: tuple[str, ...]
    values: np.ndarray
    dictionaries: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])


def check_columns(names: Iterable[object]) -> tuple[str, ...]:
    """Column names must be non-empty and unique (after trimming whitespace)."""
    columns = tuple(str(name).strip() for name in names)
    if not columns:
        raise DataError("the data has no columns")
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, start=1):
        if not name:
            raise DataError(f"column {position} has an empty name")
        if not name.isprintable():
            raise DataError(f"column {position} name {name!r} contains a line break or control character")
        if name in seen:
            raise DataError(f"duplicate column {name!r} (columns {seen[name]} and {position})")
        seen[name] = position
    return columns


def table_from_records(columns: Sequence[object], records: Sequence[Sequence[object]]) -> Table:
    """Convert rows of cells (strings, numbers, None) to a numeric table, naming any bad cell."""
    names = check_columns(columns)
    if not records:
        raise DataError("the data has no rows")
    for row_number, record in enumerate(records, start=1):
        if len(record) != len(names):
            raise DataError(f"row {row_number}: expected {len(names)} values, got {len(record)}")
    try:  # fast path: every cell already numeric or numeric text
        values = np.asarray(records, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array(
            [
                [_number(cell, names[j], i) for j, cell in enumerate(record)]
                for i, record in enumerate(records, start=1)
            ],
            dtype=np.float64,
        )
    reject_infinite(values, names)
    return Table(names, values.reshape(len(records), len(names)))


def numeric_table(columns: Sequence[object], values: np.ndarray) -> Table:
    """A table from an already numeric matrix, with the same column and finiteness checks."""
    names = check_columns(columns)
    reject_infinite(values, names)
    return Table(names, values)


def _number(cell: object, column: str, row: int) -> float:
    if cell is None:
        return math.nan
    if isinstance(cell, bool | int | float):
        return float(cell)
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in MISSING_TOKENS:
            return math.nan
        try:
            return float(text)
        except ValueError:
            pass
    raise DataError(f"column {column!r} row {row}: {cell!r} is not a number")


def all_finite(values: np.ndarray) -> bool:
    """True when no cell is NaN or infinite, from one pass of row sums (a matrix-vector product): a
    non-finite cell makes its row's sum non-finite. False can also mean a row sum overflowed, so False
    only sends the caller to its exact, cell-by-cell path."""
    if values.size == 0:
        return True
    sums = values @ np.ones(values.shape[1]) if values.ndim == 2 else values
    return bool(np.isfinite(sums).all())


def reject_infinite(values: np.ndarray, columns: Sequence[str], row_offset: int = 0) -> None:
    if all_finite(values) or not np.isinf(values).any():
        return
    row, col = (int(i) for i in np.argwhere(np.isinf(values))[0])
    raise DataError(
        f"column {columns[col]!r} row {row_offset + row + 1}: {float(values[row, col])} "
        "is not a finite number"
    )
