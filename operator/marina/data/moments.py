"""Per-column moments of a table read in chunks: count, mean, M2, min and max of the present values,
merged with Chan, Golub & LeVeque's pairwise update so any chunking (or sharding) gives the same
statistics to rounding; missing cells are counted, not summed.
"""

from __future__ import annotations

from collections.abc import Sequence

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

    def add(self, values: np.ndarray) -> None:
        if values.shape[0] == 0:
            return
        low = values.min(axis=0)  # NaN wherever a column has a missing cell
        if not np.isnan(low).any():
            count = np.full(values.shape[1], values.shape[0], dtype=np.int64)
            mean = values.mean(axis=0)
            centered = values - mean
            np.square(centered, out=centered)
            m2 = centered.sum(axis=0)
            high = values.max(axis=0)
        else:
            present = ~np.isnan(values)
            count = present.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
                m2 = np.nansum(np.where(present, values - mean, 0.0) ** 2, axis=0)
                low = np.where(count > 0, np.nanmin(np.where(present, values, np.inf), axis=0), np.inf)
                high = np.where(count > 0, np.nanmax(np.where(present, values, -np.inf), axis=0), -np.inf)
        self.missing += values.shape[0] - count
        self._merge(count, mean, m2)
        self.minimum = np.minimum(self.minimum, low)
        self.maximum = np.maximum(self.maximum, high)

    def _merge(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.count + count
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, count / np.maximum(total, 1), 0.0)
            delta = mean - self.mean
            self.m2 = self.m2 + m2 + delta**2 * self.count * share
            self.mean = self.mean + delta * share
        self.count = total

    def merge(self, other: ColumnMoments) -> None:
        self._merge(other.count, other.mean, other.m2)
        self.minimum = np.minimum(self.minimum, other.minimum)
        self.maximum = np.maximum(self.maximum, other.maximum)
        self.missing += other.missing

    def filled(self, fills: np.ndarray, cells: np.ndarray) -> ColumnMoments:
        """The moments after `cells[j]` missing values of column j took the value `fills[j]`."""
        result = ColumnMoments(len(self.count))
        result.merge(self)
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


class BlockSums:
    """Sums of each column's present values over fixed blocks of `block` consecutive rows, the blocks added
    in order: the same bits whatever the chunks the rows came in (merged moments differ in the last bits),
    so a mean derived from them can enter a content version."""

    def __init__(self, width: int, block: int = 4096) -> None:
        self.block = block
        self.sums = np.zeros(width)
        self.count = np.zeros(width, dtype=np.int64)
        self.pending = np.empty((block, width))  # the rows of the block being completed
        self.filled = 0

    def add(self, values: np.ndarray) -> None:
        start = 0
        if self.filled:  # complete the pending block first, then whole blocks in place
            start = min(self.block - self.filled, values.shape[0])
            self.pending[self.filled : self.filled + start] = values[:start]
            self.filled += start
            if self.filled < self.block:
                return
            self._absorb(self.pending)
            self.filled = 0
        whole = start + (values.shape[0] - start) // self.block * self.block
        for first in range(start, whole, self.block):
            self._absorb(values[first : first + self.block])
        self.filled = values.shape[0] - whole
        self.pending[: self.filled] = values[whole:]

    def _absorb(self, rows: np.ndarray) -> None:
        sums = rows.sum(axis=0)  # the same bits as summing with missing cells as 0 when there are none
        if np.isnan(sums).any():
            present = ~np.isnan(rows)
            sums = np.where(present, rows, 0.0).sum(axis=0)
            self.count += present.sum(axis=0)
        else:
            self.count += rows.shape[0]
        self.sums += sums

    def means(self) -> np.ndarray:
        if self.filled:
            self._absorb(self.pending[: self.filled])
            self.filled = 0
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.count
