"""Sufficient statistics of least squares, accumulated chunk by chunk and merged exactly.

Every penalty Marina fits (none, l2, l1, elastic net) depends on the data only through the
count, the means and the centred cross-products ``Σ(x-x̄)(x-x̄)ᵀ``, ``Σ(x-x̄)(y-ȳ)`` and
``Σ(y-ȳ)²``. Keeping those lets data larger than memory train in O(d²) memory and lets
sharded workers combine their parts by addition.

Precision: the raw Gram ``XᵀX - n·x̄x̄ᵀ`` cancels catastrophically when features carry large
offsets, so columns whose offset dwarfs their spread are shifted by a rough mean (that of the first
rows) before the one BLAS call that forms each block's cross-products, and blocks are merged
with Chan et al.'s pairwise update. The shift is applied to a small reused buffer, never to a
copy of the whole ``X``: X is read from memory once, a block at a time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from marina.solver import _threads
from marina.solver._validation import (
    Array,
    as_matrix,
    as_vector,
    check_n_features,
    check_rows_match,
    raise_non_finite,
)
from marina.solver.errors import ShapeMismatchError, StatisticsFormatError

FORMAT = "marina.dev/sufficient-statistics/v1"

#: Elements per block of the QR path and refinement (2 MB of float64): large enough for LAPACK and
#: numpy to run at full speed, small enough that a block's second look hits the cache.
BLOCK_ELEMENTS = 1 << 18
#: Elements per block of the Gram (512 kB of float64): the block is copied next to y and a column of ones
#: and read again by the syrk, so it should stay in a core's L2 (1 MB here); measured at 640-1,300 rows
#: x 102 as fast as one syrk of the whole X, 2,600 rows 10 % slower.
GRAM_BLOCK_ELEMENTS = 1 << 16
#: Columns whose mean exceeds this many standard deviations are shifted before multiplying.
OFFSET_RATIO = 4.0
#: Rows used to guess the shift of the first block.
SHIFT_SAMPLE_ROWS = 1024


def block_rows(n_features: int) -> int:
    return max(64, BLOCK_ELEMENTS // max(n_features, 1))


def gram_block_rows(width: int) -> int:
    """Rows per block of the Gram's syrk: a block (and BLAS's packed copy) within a core's L2, yet at least
    256 rows so that each call's update of the width² result is small against its k·width² products."""
    return max(256, GRAM_BLOCK_ELEMENTS // width)


class SufficientStatistics:
    """Count, means and centred cross-products of ``(X, y)``; add two to combine their rows.

    >>> stats = SufficientStatistics(n_features=3)
    >>> for X_chunk, y_chunk in chunks:        # doctest: +SKIP
    ...     stats.update(X_chunk, y_chunk)
    >>> LinearRegressor(penalty="l2").fit_statistics(stats)   # doctest: +SKIP
    """

    __slots__ = ("n_features", "n_samples", "x_delta", "x_shift", "xx", "xy", "y_delta", "y_shift", "yy")

    def __init__(self, n_features: int) -> None:
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ShapeMismatchError(f"n_features must be a positive integer, got {n_features!r}")
        self.n_features = n_features
        self.n_samples = 0
        # The means are kept as shift + delta: a fixed point near the data (the first rows'
        # mean) plus a small, precise offset. Means at 1e9 that differ in the 8th digit would
        # otherwise lose those digits on every merge.
        self.x_shift: Array = np.zeros(n_features)
        self.x_delta: Array = np.zeros(n_features)
        self.y_shift = 0.0
        self.y_delta = 0.0
        self.xx: Array = np.zeros((n_features, n_features))
        self.xy: Array = np.zeros(n_features)
        self.yy = 0.0

    # -- building -------------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, X: ArrayLike, y: ArrayLike) -> SufficientStatistics:
        """Statistics of an in-memory data set (streamed internally in blocks, no copy of X)."""
        matrix = as_matrix(X)
        if matrix.shape[1] == 0:
            raise ShapeMismatchError(f"X must have at least one feature, got shape {matrix.shape}")
        return cls(n_features=matrix.shape[1]).update(matrix, y)

    def update(self, X: ArrayLike, y: ArrayLike) -> SufficientStatistics:
        """Add a chunk of rows; returns ``self`` so calls chain."""
        matrix, target = as_matrix(X), as_vector(y)
        check_rows_match(matrix, target)
        check_n_features(matrix, self.n_features, "these statistics")
        if matrix.shape[0] == 0:
            return self
        if self.n_samples == 0:
            self._choose_shift(matrix, target)

        def products_of(rows: slice) -> _Products:
            products = _Products(self.n_features, self.x_shift, self.y_shift, matrix[rows])
            products.add(matrix[rows], target[rows])
            return products

        shares = _threads.map_shares(products_of, matrix.shape[0], self.n_features + 2)
        products = shares[0].including(shares[1:])
        if not products.finite():
            raise_non_finite(matrix, target, row_offset=self.n_samples)
        self._absorb(products.centred())
        return self

    def _choose_shift(self, X: Array, y: Array) -> None:
        """Shift the columns whose mean dwarfs their spread (in the first rows) by that mean.

        Centring by ``Σxxᵀ - n·x̄x̄ᵀ`` loses about log10(1 + x̄²/σ²) digits; below
        ``OFFSET_RATIO`` that is at most ~1.2 of 16 digits, and skipping the shift saves a
        subtraction per block (about 7 % of the Gram's time on 1M x 100).
        """
        sample, sample_y = X[:SHIFT_SAMPLE_ROWS], y[:SHIFT_SAMPLE_ROWS]
        with np.errstate(over="ignore", invalid="ignore"):
            mean, spread = sample.mean(axis=0), sample.std(axis=0)
            y_shift = float(sample_y.mean())
        if not (np.isfinite(mean).all() and np.isfinite(spread).all() and math.isfinite(y_shift)):
            raise_non_finite(X, y, row_offset=self.n_samples)
        self.x_shift = np.where(np.abs(mean) > OFFSET_RATIO * spread, mean, 0.0)
        self.y_shift = y_shift
        self.x_delta, self.y_delta = np.zeros(self.n_features), 0.0

    def _absorb(self, other: SufficientStatistics) -> None:
        """Chan, Golub & LeVeque's pairwise update: exact in algebra, stable in floating point."""
        if other.n_samples == 0:
            return
        if self.n_samples == 0:
            self.n_samples = other.n_samples
            self.x_shift, self.x_delta = other.x_shift.copy(), other.x_delta.copy()
            self.y_shift, self.y_delta = other.y_shift, other.y_delta
            self.xx, self.xy, self.yy = other.xx.copy(), other.xy.copy(), other.yy
            return
        total = self.n_samples + other.n_samples
        weight = self.n_samples * other.n_samples / total
        # Difference of the means: shifts first (exact when they are close), then the deltas.
        dx = (other.x_shift - self.x_shift) + (other.x_delta - self.x_delta)
        dy = (other.y_shift - self.y_shift) + (other.y_delta - self.y_delta)
        self.xx = self.xx + other.xx + weight * np.outer(dx, dx)
        self.xy = self.xy + other.xy + weight * dx * dy
        self.yy = self.yy + other.yy + weight * dy * dy
        self.x_delta = self.x_delta + dx * (other.n_samples / total)
        self.y_delta = self.y_delta + dy * (other.n_samples / total)
        self.n_samples = total

    # -- combining ------------------------------------------------------------------------

    def copy(self) -> SufficientStatistics:
        clone = SufficientStatistics(self.n_features)
        clone._absorb(self)
        return clone

    def merge(self, other: SufficientStatistics) -> SufficientStatistics:
        """A new object holding the rows of both (e.g. two shards of one data set)."""
        if not isinstance(other, SufficientStatistics):
            raise TypeError(f"can only merge SufficientStatistics, got {type(other).__name__}")
        if other.n_features != self.n_features:
            raise ShapeMismatchError(
                f"cannot merge statistics of {self.n_features} features with {other.n_features} features"
            )
        merged = self.copy()
        merged._absorb(other)
        return merged

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        return self.merge(other)

    # -- derived moments ------------------------------------------------------------------

    @property
    def x_mean(self) -> Array:
        return self.x_shift + self.x_delta

    @property
    def y_mean(self) -> float:
        return self.y_shift + self.y_delta

    @property
    def x_sum(self) -> Array:
        return (self.x_shift + self.x_delta) * self.n_samples

    @property
    def y_sum(self) -> float:
        return (self.y_shift + self.y_delta) * self.n_samples

    @property
    def gram(self) -> Array:
        """Uncentred ``XᵀX`` (for fits without an intercept)."""
        return self.xx + self.n_samples * np.outer(self.x_mean, self.x_mean)

    @property
    def xty(self) -> Array:
        """Uncentred ``Xᵀy``."""
        return self.xy + self.n_samples * self.x_mean * self.y_mean

    @property
    def yty(self) -> float:
        """Uncentred ``yᵀy``."""
        return self.yy + self.n_samples * self.y_mean * self.y_mean

    @property
    def x_std(self) -> Array:
        """Population standard deviation of each feature (what StandardScaler divides by)."""
        if self.n_samples == 0:
            return np.zeros(self.n_features)
        return np.sqrt(np.maximum(self.xx.diagonal(), 0.0) / self.n_samples)

    # -- serialisation (JSON-safe; floats round-trip exactly through json) -----------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "n_samples": self.n_samples,
            "n_features": self.n_features,
            "x_shift": self.x_shift.tolist(),
            "x_delta": self.x_delta.tolist(),
            "y_shift": float(self.y_shift),
            "y_delta": float(self.y_delta),
            "xx": self.xx.tolist(),
            "xy": self.xy.tolist(),
            "yy": float(self.yy),
        }

    @classmethod
    def from_dict(cls, document: Any) -> SufficientStatistics:
        if not isinstance(document, dict):
            raise StatisticsFormatError(f"statistics must be a JSON object, got {type(document).__name__}")
        if document.get("format") != FORMAT:
            raise StatisticsFormatError(f"format: expected {FORMAT!r}, got {document.get('format')!r}")
        n_features = _integer(document, "n_features", minimum=1)
        stats = cls(n_features)
        stats.n_samples = _integer(document, "n_samples", minimum=0)
        stats.x_shift = _floats(document, "x_shift", (n_features,))
        stats.x_delta = _floats(document, "x_delta", (n_features,))
        stats.y_shift = float(_floats(document, "y_shift", ()))
        stats.y_delta = float(_floats(document, "y_delta", ()))
        stats.xx = _floats(document, "xx", (n_features, n_features))
        stats.xy = _floats(document, "xy", (n_features,))
        stats.yy = float(_floats(document, "yy", ()))
        return stats

    def __repr__(self) -> str:
        return f"SufficientStatistics(n_features={self.n_features}, n_samples={self.n_samples})"


def _integer(document: dict[str, Any], key: str, minimum: int) -> int:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StatisticsFormatError(f"{key}: expected an integer ≥ {minimum}, got {value!r}")
    return value


def _floats(document: dict[str, Any], key: str, shape: tuple[int, ...]) -> Array:
    if key not in document:
        raise StatisticsFormatError(f"{key}: missing")
    try:
        array = np.asarray(document[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StatisticsFormatError(f"{key}: expected numbers of shape {shape}: {exc}") from exc
    if array.shape != shape:
        raise StatisticsFormatError(f"{key}: expected shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise StatisticsFormatError(f"{key}: values must be finite")
    return array


class _Products:
    """Raw cross-products of shifted rows, accumulated block by block with one syrk per block.

    Each block is copied into a small reused buffer ``[X - x_shift | y - y_shift | 1]`` whose syrk
    yields everything at once: XᵀX, Xᵀy and yᵀy, and against the column of ones the column sums
    and the count, so X is read from memory once and never looked at a second time. The buffer
    (and BLAS's packed copy of it) stays in the core's cache, where the copy costs less than a
    second read of the block would (a 2-row gemm for Xᵀy and the sums cost a fifth of the syrk on
    row-major X). The buffer takes X's layout, so the copy runs along memory; column-major X
    without shifts is read in place instead (syrk, then the 2-row gemm ``[y | 1]ᵀX``, which runs
    fast on that layout, while the block is still in cache). Centring happens once per chunk, in
    ``centred``: the shift keeps x̄ - shift small, so nothing cancels.
    """

    def __init__(self, n_features: int, x_shift: Array, y_shift: float, X: Array) -> None:
        self.n_features, self.x_shift, self.y_shift = n_features, x_shift, y_shift
        self.count = 0
        self.raw = np.zeros((n_features + 2, n_features + 2))
        self.shifted = bool(x_shift.any())
        self.row_major = X.strides[1] == X.itemsize
        self.in_place = not (self.row_major or self.shifted)
        self.block_rows = (gram_block_rows if self.row_major else block_rows)(n_features + 2)
        width = 2 if self.in_place else n_features + 2
        self.storage = np.empty(min(self.block_rows, X.shape[0]) * width)
        # Row-major shifts laid out as the buffer is, so that one contiguous subtraction applies them all
        # (numpy subtracts a row vector from a strided block row by row, at half the speed).
        pattern = np.append(x_shift, [y_shift, 0.0])
        self.shifts = (
            np.tile(pattern, len(self.storage) // width) if self.row_major and self.shifted else pattern
        )

    def _buffer(self, rows: int) -> Array:
        """The first rows x width of the storage, contiguous in X's layout, its last column ones."""
        width = 2 if self.in_place else self.n_features + 2
        used = self.storage[: rows * width]
        buffer = used.reshape(rows, width) if self.row_major or self.in_place else used.reshape(width, rows).T
        buffer[:, -1] = 1.0
        return buffer

    def add(self, X: Array, y: Array) -> None:
        """Add rows block by block (with the buffer in cache, see the class)."""
        d, step = self.n_features, self.block_rows
        products = np.empty_like(self.raw)
        with np.errstate(over="ignore", invalid="ignore"):  # reported by the caller
            for start in range(0, X.shape[0], step):
                block = X[start : start + step]
                buffer = self._buffer(block.shape[0])
                if self.in_place:
                    np.subtract(y[start : start + step], self.y_shift, out=buffer[:, 0])
                    cross = buffer.T @ block
                    products[:d, :d] = block.T @ block
                    products[d:, :d], products[:d, d:] = cross, cross.T
                    products[d:, d:] = buffer.T @ buffer
                else:
                    self._fill(buffer, block, y[start : start + step])
                    np.matmul(buffer.T, buffer, out=products)
                self.raw += products
        self.count += X.shape[0]

    def including(self, others: list[_Products]) -> _Products:
        """These products with those of other rows added (same shifts: the raw sums simply add)."""
        for other in others:
            self.raw += other.raw
            self.count += other.count
        return self

    def finite(self) -> bool:
        """False when a value or product was not finite (NaN, infinity or overflow).

        A non-finite value or product shows in its column's sum of squares, which can only stay
        non-finite once it is, so one look at the diagonal after the last block suffices.
        """
        return bool(np.isfinite(self.raw.diagonal()).all())

    def _fill(self, buffer: Array, X: Array, y: Array) -> None:
        """``[X - x_shift | y - y_shift]`` into the buffer's first columns."""
        d = self.n_features
        if self.row_major and self.shifted:
            buffer[:, :d], buffer[:, d] = X, y
            flat = buffer.reshape(-1)  # a view: the buffer is contiguous
            flat -= self.shifts[: flat.size]
            return
        if self.shifted:  # column-major: numpy subtracts along each column, at the speed of a copy
            np.subtract(X, self.x_shift, out=buffer[:, :d])
        else:
            buffer[:, :d] = X
        np.subtract(y, self.y_shift, out=buffer[:, d])

    def centred(self) -> SufficientStatistics:
        d = self.n_features
        delta = self.raw[-1, :-1] / self.count
        centred = self.raw[:-1, :-1] - self.count * np.outer(delta, delta)
        stats = SufficientStatistics(d)
        stats.n_samples = self.count
        stats.x_shift, stats.y_shift = self.x_shift, self.y_shift
        stats.x_delta, stats.y_delta = delta[:d], float(delta[d])
        stats.xx, stats.xy, stats.yy = centred[:d, :d], centred[:d, d], float(centred[d, d])
        return stats
