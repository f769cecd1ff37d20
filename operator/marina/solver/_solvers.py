"""One private function per solver, one signature, one dispatcher (scikit-learn's layout).

Every solver minimises, on data already centred (and scaled) by the caller,

    ½‖y - Xw‖² + l1·‖w‖₁ + ½·l2·‖w‖²

given as a ``Problem`` (Gram matrix ``XᵀX``, ``Xᵀy``, ``yᵀy``, row count and, when the rows
are in memory, access to them) and a ``Penalty``; the estimator maps user-facing ``alpha``
and ``l1_ratio`` onto ``l1``/``l2`` and folds the intercept and scaling back afterwards.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from marina.solver._validation import Array
from marina.solver.errors import ConvergenceWarning, DivergenceError, IncompatibleSolverError
from marina.solver.statistics import block_rows

#: Above this condition number of the Jacobi-scaled Gram matrix the normal equations lose more
#: than about eight digits, so the solve falls back to QR/SVD.
MAX_NORMAL_CONDITION = 1e8
EPS = float(np.finfo(np.float64).eps)

PENALTIES = ("none", "l2", "l1", "elasticnet")
SOLVERS = ("auto", "normal", "qr", "cd", "gd")
_SMOOTH_ONLY = frozenset({"normal", "qr"})


@dataclass(frozen=True)
class Penalty:
    """Strengths on the unscaled objective ½‖y - Xw‖² + l1‖w‖₁ + ½·l2‖w‖²."""

    l1: float
    l2: float


@dataclass(frozen=True)
class Rows:
    """The rows themselves, transformed block by block as ``(X - x_offset) / x_scale``."""

    X: Array
    y: Array
    x_offset: Array
    y_offset: float
    x_scale: Array

    def blocks(self, out: Array) -> Iterator[Array]:
        """Fill ``out`` with ``[transformed X | y - y_offset]`` block by block; yield the filled part."""
        n_features = self.X.shape[1]
        step = out.shape[0]
        for start in range(0, self.X.shape[0], step):
            block = self.X[start : start + step]
            filled = out[: block.shape[0]]
            np.subtract(block, self.x_offset, out=filled[:, :n_features])
            filled[:, :n_features] /= self.x_scale
            np.subtract(self.y[start : start + step], self.y_offset, out=filled[:, n_features])
            yield filled


@dataclass(frozen=True)
class Problem:
    gram: Array
    xty: Array
    yty: float
    n_samples: int
    rows: Rows | None


@dataclass(frozen=True)
class Options:
    max_iter: int
    tol: float
    learning_rate: float | None


@dataclass(frozen=True)
class Solution:
    coef: Array
    n_iter: int
    solver: str


def resolve_solver(solver: str, penalty: str) -> str:
    """Pick the solver for ``auto`` and refuse pairs that cannot work (e.g. ``normal`` with ``l1``)."""
    has_l1 = penalty in ("l1", "elasticnet")
    if solver == "auto":
        return "cd" if has_l1 else "normal"
    if has_l1 and solver in _SMOOTH_ONLY:
        raise IncompatibleSolverError(
            f"solver: {solver!r} cannot minimise the non-smooth penalty {penalty!r}; use 'cd', 'gd' or 'auto'"
        )
    return solver


def solve(problem: Problem, penalty: Penalty, solver: str, options: Options) -> Solution:
    return _SOLVERS[solver](problem, penalty, options)


# -- direct solvers ------------------------------------------------------------------------


def _solve_normal(problem: Problem, penalty: Penalty, options: Options) -> Solution:
    """Cholesky on the Jacobi-scaled ``XᵀX + l2·I``; QR/SVD when that is ill-conditioned."""
    system = problem.gram + penalty.l2 * np.eye(problem.gram.shape[0])
    jacobi = _jacobi(system)
    scaled = system * np.outer(jacobi, jacobi)
    eigenvalues = np.linalg.eigvalsh(scaled)
    if eigenvalues[0] > eigenvalues[-1] / MAX_NORMAL_CONDITION:
        try:
            factor = np.asarray(np.linalg.cholesky(scaled), dtype=np.float64)
        except np.linalg.LinAlgError:
            pass
        else:
            z = _solve_upper(factor.T, _solve_lower(factor, problem.xty * jacobi))
            return Solution(z * jacobi, 1, "normal")
    if problem.rows is not None:
        return _solve_qr(problem, penalty, options)
    return _solve_gram_svd(problem, penalty)


def _solve_qr(problem: Problem, penalty: Penalty, options: Options) -> Solution:
    """Tall-skinny QR of ``[X | y]`` block by block, then an SVD least-squares solve on R.

    R has the singular values of X, so the minimum-norm solution from R equals the careful
    SVD solve on the centred data (same cut-off as ``numpy.linalg.lstsq`` on the full X),
    while memory stays at one block.
    """
    rows = problem.rows
    if rows is None:
        raise IncompatibleSolverError(
            "solver: 'qr' needs the rows; fit_statistics supports 'normal', 'cd', 'gd' or 'auto'"
        )
    n_features = problem.gram.shape[0]
    width = n_features + 1
    buffer = np.zeros((width + block_rows(width), width))
    for block in rows.blocks(buffer[width:]):
        stacked = buffer[: width + block.shape[0]]
        buffer[:width] = _triangle(stacked)
    triangle = buffer[:width]
    if penalty.l2 > 0:
        ridge = np.zeros((n_features, width))
        ridge[:, :n_features] = math.sqrt(penalty.l2) * np.eye(n_features)
        triangle = _triangle(np.vstack([triangle, ridge]))
    rcond = EPS * max(problem.n_samples, n_features)
    upper, rhs = triangle[:n_features, :n_features], triangle[:n_features, n_features]
    coef: Array = np.linalg.lstsq(upper, rhs, rcond=rcond)[0]
    return Solution(coef, 1, "qr")


def _triangle(matrix: Array) -> Array:
    """The R factor of a QR decomposition of a matrix with at least as many rows as columns."""
    return np.asarray(np.linalg.qr(matrix, mode="r"), dtype=np.float64)


def _solve_gram_svd(problem: Problem, penalty: Penalty) -> Solution:
    """Minimum-norm solution from the eigen-decomposition of the Gram matrix (no rows at hand)."""
    system = problem.gram + penalty.l2 * np.eye(problem.gram.shape[0])
    jacobi = _jacobi(system)
    eigenvalues, vectors = np.linalg.eigh(system * np.outer(jacobi, jacobi))
    cutoff = max(eigenvalues[-1], 0.0) * 10 * EPS * len(eigenvalues)
    keep = eigenvalues > cutoff
    basis = vectors[:, keep]
    z = basis @ ((basis.T @ (problem.xty * jacobi)) / eigenvalues[keep])
    return Solution(z * jacobi, 1, "svd")


def _jacobi(system: Array) -> Array:
    """Diagonal scaling that makes the diagonal one (zero columns stay unscaled)."""
    diagonal = system.diagonal()
    return np.where(diagonal > 0, 1.0 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0)), 1.0)


def _solve_lower(factor: Array, rhs: Array) -> Array:
    solution = np.zeros_like(rhs)
    for i in range(len(rhs)):
        solution[i] = (rhs[i] - factor[i, :i] @ solution[:i]) / factor[i, i]
    return solution


def _solve_upper(factor: Array, rhs: Array) -> Array:
    solution = np.zeros_like(rhs)
    for i in range(len(rhs) - 1, -1, -1):
        solution[i] = (rhs[i] - factor[i, i + 1 :] @ solution[i + 1 :]) / factor[i, i]
    return solution


# -- iterative solvers ---------------------------------------------------------------------


def _solve_cd(problem: Problem, penalty: Penalty, options: Options) -> Solution:
    """Cyclic coordinate descent on the Gram matrix, O(d²) per sweep, scikit-learn's stopping rule.

    After a sweep whose largest coordinate change is ≤ tol x the largest coefficient, the
    duality gap is checked: it must be ≤ tol·‖y‖² (``tol·‖y‖²/n`` in the 1/(2n) scaling),
    exactly how ``sklearn.linear_model.ElasticNet`` decides convergence. Every sweep visits
    every coordinate in order, as scikit-learn does, so the iterates (and the objective
    reached at a given tol) match its own; an active-set shortcut would stop elsewhere.
    """
    gram, l1, l2, tol = problem.gram, penalty.l1, penalty.l2, options.tol
    gram_rows = list(gram)
    diagonal = gram.diagonal().tolist()
    xty = problem.xty.tolist()
    weights = [0.0] * len(xty)
    gram_w = np.zeros(len(xty))
    gap_tolerance = tol * problem.yty
    coordinates = [j for j, d_jj in enumerate(diagonal) if d_jj > 0.0]
    n_iter = 0
    for n_iter in range(1, options.max_iter + 1):
        largest_weight = largest_change = 0.0
        for j in coordinates:
            d_jj, old = diagonal[j], weights[j]
            rho = xty[j] - gram_w.item(j) + old * d_jj
            new = math.copysign(max(abs(rho) - l1, 0.0), rho) / (d_jj + l2)
            if new != old:
                gram_w += (new - old) * gram_rows[j]
                weights[j] = new
                largest_change = max(largest_change, abs(new - old))
            largest_weight = max(largest_weight, abs(new))
        settled = largest_weight == 0.0 or largest_change <= tol * largest_weight
        if settled or n_iter == options.max_iter:
            gap = duality_gap(np.array(weights), gram_w, problem.xty, problem.yty, penalty)
            if gap <= gap_tolerance:
                return Solution(np.array(weights), n_iter, "cd")
    warnings.warn(
        f"coordinate descent stopped at max_iter={options.max_iter} before the duality gap "
        f"reached tol·‖y‖² = {gap_tolerance:.3g}; raise max_iter or tol",
        ConvergenceWarning,
        stacklevel=5,
    )
    return Solution(np.array(weights), n_iter, "cd")


def duality_gap(weights: Array, gram_w: Array, xty: Array, yty: float, penalty: Penalty) -> float:
    """scikit-learn's gap for ½‖y - Xw‖² + l1‖w‖₁ + ½·l2‖w‖² from Gram quantities.

    With ``l1 = 0`` it uses the ridge formulation, and with no penalty the squared norm of the
    gradient (the OLS first-order condition), as ``enet_coordinate_descent_gram`` does.
    """
    l1, l2 = penalty.l1, penalty.l2
    q_dot_w = float(xty @ weights)
    residual_norm2 = yty + float(weights @ gram_w) - 2.0 * q_dot_w
    residual_dot_y = yty - q_dot_w
    weights_norm2 = float(weights @ weights)
    correlation = xty - gram_w
    if l1 == 0.0:
        correlation_norm2 = float(correlation @ correlation)
        if l2 == 0.0:
            return correlation_norm2
        return residual_norm2 + 0.5 * l2 * weights_norm2 - residual_dot_y + correlation_norm2 / (2 * l2)
    dual_norm = float(np.max(np.abs(correlation - l2 * weights)))
    primal = 0.5 * (residual_norm2 + l2 * weights_norm2) + l1 * float(np.abs(weights).sum())
    scale = l1 / dual_norm if dual_norm > l1 else 1.0
    dual = -0.5 * scale**2 * (residual_norm2 + l2 * weights_norm2) + scale * residual_dot_y
    return primal - dual


def _solve_gd(problem: Problem, penalty: Penalty, options: Options) -> Solution:
    """Batch gradient descent as the seed writes it, with the gradient taken from the Gram matrix.

    θj := θj - alpha·(1/m·Σ(h(x)-y)·xj + λ2·θj + λ1·sgn(θj)), where λ1 = l1/m and λ2 = l2/m: the
    seed's λ·sgn(θ) (L1) and λ·θ (L2) updates. ``1/m·Σ(h-y)x`` equals ``(XᵀXθ - Xᵀy)/m``, so an
    iteration costs O(d²) whatever the row count. θ0 is not iterated: with centred data its
    optimum is known in closed form for any θ and the estimator sets it afterwards.
    The default learning rate is 1/L, the largest step that always descends.
    """
    m = problem.n_samples
    lipschitz = (float(np.linalg.eigvalsh(problem.gram)[-1]) + penalty.l2) / m
    rate = options.learning_rate if options.learning_rate is not None else 1.0 / max(lipschitz, EPS)
    theta = np.zeros(len(problem.xty))
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected and explained below
        return _descend(problem, penalty, options, theta, rate, lipschitz)


def _descend(
    problem: Problem, penalty: Penalty, options: Options, theta: Array, rate: float, lipschitz: float
) -> Solution:
    m = problem.n_samples
    for n_iter in range(1, options.max_iter + 1):
        gradient = (problem.gram @ theta - problem.xty) / m
        gradient += (penalty.l2 / m) * theta + (penalty.l1 / m) * np.sign(theta)
        step = rate * gradient
        theta = theta - step
        if not np.isfinite(theta).all():
            raise DivergenceError(
                f"gradient descent diverged at iteration {n_iter}: learning_rate {rate:g} is above the "
                f"stable limit 2/L = {2 / lipschitz:.3g} for this data; lower it or use standardize=True"
            )
        if np.max(np.abs(step)) <= options.tol * max(float(np.max(np.abs(theta))), EPS):
            return Solution(theta, n_iter, "gd")
    warnings.warn(
        f"gradient descent stopped at max_iter={options.max_iter} before the largest step fell "
        f"below tol x the largest coefficient; raise max_iter or learning_rate",
        ConvergenceWarning,
        stacklevel=6,
    )
    return Solution(theta, options.max_iter, "gd")


_SOLVERS: dict[str, Callable[[Problem, Penalty, Options], Solution]] = {
    "normal": _solve_normal,
    "qr": _solve_qr,
    "cd": _solve_cd,
    "gd": _solve_gd,
}
