"""Seeded hashes of row numbers: the train/test split, k-fold assignment and fixed-size samples of
tables too large to permute, each the same whatever the chunks the rows arrive in.

A row's hash is SplitMix64 of its number mixed with the seed (Steele, Lea & Flood 2014; the
finaliser passes BigCrush), mapped to a uniform number in [0, 1). Every decision about a row
depends only on (seed, row number), so two pods reading different row groups, or one pod reading
in chunks of any size, make the same decision for the same row.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
#: Salts keep the split, the folds and the samples independent for one seed.
SPLIT_SALT = 0x5350_4C49_54
FOLD_SALT = 0x464F_4C44
SAMPLE_SALT = 0x5341_4D50
#: Rows kept by `BottomSample`: the quantile edges drawn from it are within
#: sqrt(ln(2/δ)/(2k)) ≈ 0.0152 of the true CDF with probability 1 - 1e-3 (Dvoretzky-Kiefer-Wolfowitz).
SAMPLE_ROWS = 1 << 14


def _splitmix(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = values + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def hashes(rows: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """64-bit hashes of the given row numbers (from 0)."""
    key = _splitmix(np.array([seed ^ salt], dtype=np.uint64))[0]
    return _splitmix(np.asarray(rows, dtype=np.uint64) ^ key)


def row_hashes(first_row: int, count: int, seed: int, salt: int) -> np.ndarray:
    """64-bit hashes of rows first_row .. first_row + count - 1."""
    return hashes(np.arange(first_row, first_row + count, dtype=np.uint64), seed, salt)


def uniform(first_row: int, count: int, seed: int, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) per row (the top 53 bits of its hash)."""
    return (row_hashes(first_row, count, seed, salt) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def in_test_split(first_row: int, count: int, seed: int, fraction: float) -> np.ndarray:
    """True for the rows the seeded hash split puts in test: each with probability `fraction`."""
    return uniform(first_row, count, seed, SPLIT_SALT) < fraction


def folds(first_row: int, count: int, seed: int, k: int) -> np.ndarray:
    """The fold (0..k-1) of each row, each fold equally likely."""
    return np.minimum((uniform(first_row, count, seed, FOLD_SALT) * k).astype(np.intp), k - 1)


class BottomSample:
    """The `size` rows with the smallest seeded hashes seen so far: a uniform sample without replacement,
    mergeable and independent of how the rows were chunked or sharded. Memory: about twice size rows
    (candidates are kept until they are as many as the sample, then the sample is cut again)."""

    def __init__(self, width: int, seed: int, size: int = SAMPLE_ROWS) -> None:
        self.size, self.seed, self.width = size, seed, width
        self._keys = np.empty(0, dtype=np.uint64)
        self._numbers = np.empty(0, dtype=np.int64)
        self._rows = np.empty((0, width))
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._bar: np.uint64 | None = None  # the largest kept key once full: only smaller ones enter

    def add(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Offer `values`, whose row numbers are `rows`."""
        numbers = np.asarray(rows, dtype=np.int64)
        offered = hashes(numbers, self.seed, SAMPLE_SALT)
        if self._bar is not None:
            better = offered < self._bar
            if not better.any():
                return
            offered, numbers, values = offered[better], numbers[better], values[better]
        self._pending.append((offered, numbers, np.array(values, dtype=np.float64)))
        self._pending_rows += offered.size
        if self._pending_rows >= self.size:
            self._compact()

    def add_columns(self, rows: np.ndarray, columns: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Offer the rows of a table given column by column (columns x rows) where `mask` is true: the
        hashes are computed first, and only the rows that enter are copied."""
        numbers = np.asarray(rows, dtype=np.int64)
        positions = np.flatnonzero(mask) if mask is not None else np.arange(numbers.size)
        numbers = numbers[positions]
        offered = hashes(numbers, self.seed, SAMPLE_SALT)
        if self._bar is not None:
            better = offered < self._bar
            if not better.any():
                return
            offered, numbers, positions = offered[better], numbers[better], positions[better]
        self._pending.append((offered, numbers, columns[:, positions].T.copy()))
        self._pending_rows += offered.size
        if self._pending_rows >= self.size:
            self._compact()

    def _compact(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys, *(p[0] for p in self._pending)])
        numbers = np.concatenate([self._numbers, *(p[1] for p in self._pending)])
        rows = np.vstack([self._rows, *(p[2] for p in self._pending)])
        self._pending, self._pending_rows = [], 0
        if keys.size > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keys, numbers, rows = keys[keep], numbers[keep], rows[keep]
        if keys.size >= self.size:
            self._bar = keys.max()
        self._keys, self._numbers, self._rows = keys, numbers, rows

    @property
    def keys(self) -> np.ndarray:
        self._compact()
        return self._keys

    @property
    def numbers(self) -> np.ndarray:
        self._compact()
        return self._numbers

    @property
    def rows(self) -> np.ndarray:
        self._compact()
        return self._rows

    def order(self) -> np.ndarray:
        return np.asarray(np.argsort(self.keys, kind="stable"))

    def values(self) -> np.ndarray:
        """The sampled rows in hash order (a fixed order whatever the chunking)."""
        ordered: np.ndarray = self.rows[self.order()]
        return ordered


def uniform_of(rows: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) per given row number."""
    return (hashes(rows, seed, salt) >> np.uint64(11)).astype(np.float64) * 2.0**-53
