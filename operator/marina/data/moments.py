"""Per-column moments of a table read in chunks: count, mean, M2, min and max of the present values,
merged with Chan, Golub & LeVeque's pairwise update so any chunking (or sharding) gives the same
statistics to rounding; missing cells are counted, not summed.

A prepared dataset's statistics are the same bits whatever the chunks, parts or shards: each leaf (a fixed
block of source rows, `marina.data.parts`) gets its moments from its own rows, and leaves are merged along
one fixed binary tree over the leaf numbers (`marina.data.folds`), whoever computed which subtree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


class ColumnMoments:
    """Moments of each column's present (non-NaN) values."""

    def __init__(self, width: int) -> None:
        self.count = np.zeros(width, dtype=np.int64)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.minimum = np.full(width, np.inf)
        self.maximum = np.full(width, -np.inf)
        self.missing = np.zeros(width, dtype=np.int64)

    @property
    def width(self) -> int:
        return len(self.count)

    def add(self, values: np.ndarray) -> None:
        """Rows of a table (rows x columns)."""
        self.add_columns(values.T)

    def add_columns(self, columns: np.ndarray) -> None:
        """A table given column by column (columns x rows, each column contiguous at best)."""
        self.merge(of_columns(columns))

    def _merge(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.count + count
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, count / np.maximum(total, 1), 0.0)
            delta = mean - self.mean
            self.m2 = self.m2 + m2 + delta**2 * self.count * share
            self.mean = self.mean + delta * share
        self.count = total

    def merge(self, other: ColumnMoments) -> None:
        """Add another table's moments (the rows after this one's: the merge is not symmetric in its
        rounding, so a fixed order gives fixed bits). Merging with no rows on either side changes nothing."""
        self._merge(other.count, other.mean, other.m2)
        self.minimum = np.minimum(self.minimum, other.minimum)
        self.maximum = np.maximum(self.maximum, other.maximum)
        self.missing = self.missing + other.missing

    def copy(self) -> ColumnMoments:
        result = ColumnMoments(self.width)
        result.count, result.mean, result.m2 = self.count.copy(), self.mean.copy(), self.m2.copy()
        result.minimum, result.maximum = self.minimum.copy(), self.maximum.copy()
        result.missing = self.missing.copy()
        return result

    def filled(self, fills: np.ndarray, cells: np.ndarray) -> ColumnMoments:
        """The moments after `cells[j]` missing values of column j took the value `fills[j]`."""
        result = self.copy()
        constant_m2 = np.zeros(len(fills))
        result._merge(cells, np.where(cells > 0, fills, 0.0), constant_m2)
        has = cells > 0
        result.minimum = np.where(has, np.minimum(result.minimum, fills), result.minimum)
        result.maximum = np.where(has, np.maximum(result.maximum, fills), result.maximum)
        result.missing = self.missing - cells
        return result

    def summary(self, columns: Sequence[str], imputed: np.ndarray) -> dict[str, dict[str, float | int]]:
        """count, mean, population std, min, max and imputed values per column (the manifest's form)."""
        std = np.sqrt(np.maximum(self.m2, 0.0) / np.maximum(self.count, 1))
        return {
            name: {
                "count": int(self.count[j]),
                "mean": float(self.mean[j]),
                "std": float(std[j]),
                "min": float(self.minimum[j]),
                "max": float(self.maximum[j]),
                "missing": int(imputed[j]),
            }
            for j, name in enumerate(columns)
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe and exact (floats round-trip through JSON); an empty column's bounds are null."""
        return {
            "count": self.count.tolist(),
            "mean": self.mean.tolist(),
            "m2": self.m2.tolist(),
            "min": [None if math.isinf(v) else v for v in self.minimum.tolist()],
            "max": [None if math.isinf(v) else v for v in self.maximum.tolist()],
            "missing": self.missing.tolist(),
        }

    @classmethod
    def from_dict(cls, document: Any, width: int) -> ColumnMoments:
        """The inverse of `to_dict`; ValueError (or KeyError, TypeError) when it is not one of `width`."""
        result = cls(width)
        result.count = np.array(document["count"], dtype=np.int64)
        result.mean = np.array(document["mean"], dtype=np.float64)
        result.m2 = np.array(document["m2"], dtype=np.float64)
        result.minimum = np.array([np.inf if v is None else v for v in document["min"]], dtype=np.float64)
        result.maximum = np.array([-np.inf if v is None else v for v in document["max"]], dtype=np.float64)
        result.missing = np.array(document["missing"], dtype=np.int64)
        if any(a.shape != (width,) for a in (result.count, result.mean, result.m2, result.missing)):
            raise ValueError(f"moments of {width} columns expected")
        if result.minimum.shape != (width,) or result.maximum.shape != (width,):
            raise ValueError(f"moments of {width} columns expected")
        return result


def of_columns(columns: np.ndarray) -> ColumnMoments:
    """The moments of one block given column by column (columns x rows)."""
    width, rows = columns.shape
    result = ColumnMoments(width)
    if rows == 0:
        return result
    low = columns.min(axis=1)  # NaN wherever a column has a missing cell
    if not np.isnan(low).any():
        result.count = np.full(width, rows, dtype=np.int64)
        result.mean = columns.sum(axis=1) / rows
        centred = columns - result.mean[:, None]
        result.m2 = np.einsum("ij,ij->i", centred, centred)
        result.minimum, result.maximum = low, columns.max(axis=1)
        return result
    present = ~np.isnan(columns)
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        zeroed = np.where(present, columns, 0.0)
        mean = np.where(count > 0, zeroed.sum(axis=1) / np.maximum(count, 1), 0.0)
        centred = np.where(present, columns - mean[:, None], 0.0)
        result.m2 = np.einsum("ij,ij->i", centred, centred)
        result.minimum = np.where(present, columns, np.inf).min(axis=1)
        result.maximum = np.where(present, columns, -np.inf).max(axis=1)
    result.count, result.mean = count.astype(np.int64), mean
    result.missing = (rows - count).astype(np.int64)
    return result


def merged(left: ColumnMoments, right: ColumnMoments) -> ColumnMoments:
    """Left's rows then right's, as a new object (neither changes)."""
    result = left.copy()
    result.merge(right)
    return result
