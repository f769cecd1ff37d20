"""The geometry of a training design: a triangular factor R with RᵀR = the scaled Gram, for leverages.

With an intercept the design is A = [1 | X] and the leverage of a row x (its diagonal entry of the hat
matrix A(AᵀA)⁺Aᵀ, or what it would be) is 1/n + zᵀS⁺z, z = (x - x̄)/c, S the Gram of the centred columns
scaled by c (their norms); without an intercept it is zᵀS⁺z with z = x/c and S = XᵀX/(ccᵀ). Prediction
variances of least squares (s²·(1 + h)) and the extrapolation guard both read it.

R comes from the sufficient statistics (an eigen-decomposition of S, then a QR of the root) when S is
well conditioned, and otherwise, when the rows can be read again, from a tall-skinny QR of the
centred, scaled rows themselves (`_solvers`' QR path, without the ridge rows): the Gram route's error
grows like κ(S) = κ²(design), the QR route's like κ. The threshold is the solver's own
(`MAX_NORMAL_CONDITION`), so the factor is as accurate as the coefficients it goes with.

Directions the data does not determine (an exact collinearity: one-hot columns with an intercept, a
constant column) have singular values below a cutoff τ (max(n, d)·eps·σ₁ after QR, √(max(n, d)·eps)·σ₁
from the Gram, as the solver drops them) and are weighed by 1/max(τ, √eps·σ₁)² rather than dropped: a
row that leaves the span of the training rows has an enormous leverage (≳ 1/eps) instead of an undefined
one, while the rounding-level components of rows inside the span (about eps relative) add about eps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from marina.solver._solvers import (
    EPS,
    MAX_NORMAL_CONDITION,
    Chunks,
    Penalty,
    Problem,
    Rows,
    _Basis,
    _scaled_triangle,
)
from marina.solver._validation import Array
from marina.solver.errors import StatisticsFormatError
from marina.solver.statistics import SufficientStatistics

METHODS = ("gram", "qr")


@dataclass(frozen=True)
class DesignFactor:
    """R (upper triangular, d x d) of the scaled design: RᵀR = S, and how rows map onto it."""

    n_samples: int
    intercept: bool
    offset: Array  # x̄ with an intercept, zeros without
    scale: Array  # c: the columns' (centred) norms, 1 where zero
    triangle: Array
    method: str  # "gram" or "qr": where R came from, which sets the cutoff

    @property
    def n_features(self) -> int:
        return len(self.scale)

    @cached_property
    def _decomposition(self) -> tuple[Array, Array]:
        """(singular values of R, right singular vectors as rows)."""
        _, singular, right = np.linalg.svd(self.triangle)
        return singular, right

    @property
    def cutoff(self) -> float:
        """τ: singular values of R below it are rounding, not data."""
        singular, _ = self._decomposition
        size = max(self.n_samples, self.n_features)
        factor = size * EPS if self.method == "qr" else math.sqrt(size * EPS)
        return float(singular[0]) * factor if singular.size else 0.0

    @property
    def rank(self) -> int:
        """The numerical rank of the design A (the intercept's column included)."""
        singular, _ = self._decomposition
        return int(np.count_nonzero(singular > self.cutoff)) + int(self.intercept)

    @cached_property
    def root(self) -> Array:
        """M with hᵢ = ‖(xᵢ - offset) @ M‖² (+ 1/n with an intercept): V·diag(1/s)/c, d x d, with s the
        singular values of R (dropped directions weighed by the floor above)."""
        singular, right = self._decomposition
        cutoff = self.cutoff
        floor = max(cutoff, math.sqrt(EPS) * float(singular[0]), np.finfo(np.float64).tiny)
        weights = 1.0 / np.where(singular > cutoff, singular, floor)
        root: Array = (right.T * weights) / self.scale[:, None]
        return root

    def leverages(self, rows: Array) -> Array:
        """The leverage of each row (n_rows x d, the model's feature order)."""
        projected = (np.asarray(rows, dtype=np.float64) - self.offset) @ self.root
        leverage: Array = np.einsum("ij,ij->i", projected, projected)
        if self.intercept:
            leverage += 1.0 / self.n_samples
        return leverage

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "rows": self.n_samples,
            "intercept": self.intercept,
            "offset": self.offset.tolist(),
            "scale": self.scale.tolist(),
            # the upper triangle, row by row: row i holds R[i, i:]
            "triangle": [self.triangle[i, i:].tolist() for i in range(self.n_features)],
        }

    @classmethod
    def from_dict(cls, document: Any, n_features: int) -> DesignFactor:
        if not isinstance(document, dict):
            raise StatisticsFormatError("design: expected an object")
        method, rows, intercept = document.get("method"), document.get("rows"), document.get("intercept")
        if method not in METHODS:
            raise StatisticsFormatError(f"design.method: expected one of {', '.join(METHODS)}: {method!r}")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise StatisticsFormatError(f"design.rows: expected a positive integer, got {rows!r}")
        if not isinstance(intercept, bool):
            raise StatisticsFormatError("design.intercept: expected true or false")
        offset = _numbers(document.get("offset"), (n_features,), "design.offset")
        scale = _numbers(document.get("scale"), (n_features,), "design.scale")
        if not (scale > 0).all():
            raise StatisticsFormatError("design.scale: every scale must be positive")
        packed = document.get("triangle")
        if not isinstance(packed, list) or len(packed) != n_features:
            raise StatisticsFormatError(f"design.triangle: expected {n_features} rows")
        triangle = np.zeros((n_features, n_features))
        for i, row in enumerate(packed):
            triangle[i, i:] = _numbers(row, (n_features - i,), f"design.triangle[{i}]")
        return cls(rows, intercept, offset, scale, triangle, str(method))


def _numbers(value: Any, shape: tuple[int, ...], where: str) -> Array:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StatisticsFormatError(f"{where}: expected numbers: {exc}") from exc
    if array.shape != shape or not np.isfinite(array).all():
        raise StatisticsFormatError(f"{where}: expected {shape} finite numbers, got shape {array.shape}")
    return array


def design_factor(
    statistics: SufficientStatistics, intercept: bool, rows: Chunks | None = None
) -> DesignFactor:
    """The factor of the design the statistics summarise; from `rows` (re-read once) when ill-conditioned."""
    n, d = statistics.n_samples, statistics.n_features
    gram = statistics.xx if intercept else statistics.gram
    offset = statistics.x_mean if intercept else np.zeros(d)
    norms = np.sqrt(np.maximum(gram.diagonal(), 0.0))
    scale = np.where(norms > 0, norms, 1.0)
    scaled = gram / np.outer(scale, scale)
    eigenvalues, vectors = np.linalg.eigh(scaled)
    well_conditioned = eigenvalues[0] > eigenvalues[-1] / MAX_NORMAL_CONDITION
    if rows is not None and not well_conditioned:
        triangle, scale = _triangle_of_rows(statistics, intercept, rows)
        return DesignFactor(n, intercept, offset, scale, triangle, "qr")
    root = np.sqrt(np.maximum(eigenvalues, 0.0))[:, None] * vectors.T  # rootᵀroot = scaled
    triangle = np.asarray(np.linalg.qr(root, mode="r"), dtype=np.float64)
    return DesignFactor(n, intercept, offset, scale, triangle, "gram")


def _triangle_of_rows(statistics: SufficientStatistics, intercept: bool, rows: Chunks) -> tuple[Array, Array]:
    """R of the centred rows scaled by their norms (one pass, one block in memory), and that scale."""
    d = statistics.n_features
    problem = Problem(
        gram=statistics.xx if intercept else statistics.gram,
        xty=np.zeros(d),
        yty=0.0,
        n_samples=statistics.n_samples,
        rows=None,
    )
    offset = statistics.x_mean if intercept else np.zeros(d)
    y_offset = statistics.y_mean if intercept else 0.0
    readable = Rows(rows, d, offset, y_offset, np.ones(d), intercept)
    basis = _Basis.of(problem, readable)
    full = _scaled_triangle(readable, basis, Penalty(0.0, 0.0))
    first = int(intercept)
    return full[first : first + d, first : first + d], basis.column_scale
