"""One private function per solver, one signature, one dispatcher (scikit-learn's layout).

Every solver minimises, on data already centred (and scaled) by the caller,

    ½‖y - Xw‖² + l1·‖w‖₁ + ½·l2·‖w‖²

given as a ``Problem`` (Gram matrix ``XᵀX``, ``Xᵀy``, ``yᵀy``, row count and, when the rows
are in memory, access to them) and a ``Penalty``; the estimator maps user-facing ``alpha``
and ``l1_ratio`` onto ``l1``/``l2`` and folds the intercept and scaling back afterwards (the
QR path, which refines against the raw rows, returns its own intercept).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from marina import contract
from marina.solver._validation import Array
from marina.solver.errors import ConvergenceWarning, DivergenceError, IncompatibleSolverError
from marina.solver.statistics import block_rows

#: Above this condition number of the Jacobi-scaled Gram matrix (κ² of the scaled design)
#: Cholesky's error bound c·κ²·eps passes 1e-9, so the solve falls back to QR (or, without
#: rows, to an eigen-decomposition).
MAX_NORMAL_CONDITION = 1e6
#: Refinement sweeps at most; each gains about -log10(κ·eps) digits, so a few suffice.
MAX_REFINEMENT_SWEEPS = 30
EPS = float(np.finfo(np.float64).eps)

# The names are the contract's: the CRDs, the commands and the solver accept exactly the same ones.
PENALTIES = contract.PENALTIES
SOLVERS = contract.SOLVERS


@dataclass(frozen=True)
class Penalty:
    """Strengths on the unscaled objective ½‖y - Xw‖² + l1‖w‖₁ + ½·l2‖w‖²."""

    l1: float
    l2: float


#: Re-reads the rows from the start, chunk by chunk, as (X, y): in memory one chunk, from storage many.
Chunks = Callable[[], Iterable[tuple[Array, Array]]]


@dataclass(frozen=True)
class Rows:
    """The rows themselves, as stored, readable any number of times; the model is
    ``intercept + X·(coef / x_scale)``. Every pass holds one block, so the QR path and its refinement
    work on data read from storage as well as on arrays in memory."""

    chunks: Chunks
    n_features: int
    x_offset: Array
    y_offset: float
    x_scale: Array
    intercept: bool

    def pieces(self, step: int) -> Iterator[tuple[Array, Array]]:
        """(X, y) in pieces of at most `step` rows, whatever the chunks."""
        for X, y in self.chunks():
            for start in range(0, X.shape[0], step):
                yield X[start : start + step], y[start : start + step]

    def blocks(self, out: Array, column_scale: Array, ones: float) -> Iterator[Array]:
        """Fill ``out`` block by block with ``[ones | (X - x_offset)/(x_scale·column_scale) | y - y_offset]``.

        The ``ones`` column is there only with an intercept; each filled block is yielded.
        """
        first = int(self.intercept)
        features = slice(first, first + self.n_features)
        divisor = self.x_scale * column_scale
        for block, target in self.pieces(out.shape[0]):
            filled = out[: block.shape[0]]
            if self.intercept:
                filled[:, 0] = ones
            np.subtract(block, self.x_offset, out=filled[:, features])
            filled[:, features] /= divisor
            np.subtract(target, self.y_offset, out=filled[:, -1])
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
    """Coefficients in solver units; ``intercept`` when the solver determined it itself."""

    coef: Array
    n_iter: int
    solver: str
    intercept: float | None = None


def resolve_solver(solver: str, penalty: str) -> str:
    """Pick the solver for ``auto`` and refuse pairs that cannot work (e.g. ``normal`` with ``l1``)."""
    has_l1 = penalty in contract.L1_PENALTIES
    if solver == "auto":
        return "cd" if has_l1 else "normal"
    if has_l1 and solver not in contract.L1_SOLVERS:
        raise IncompatibleSolverError(
            f"solver: {solver!r} cannot minimise the non-smooth penalty {penalty!r}; "
            f"use one of {', '.join(map(repr, contract.L1_SOLVERS))}"
        )
    return solver


def solve(problem: Problem, penalty: Penalty, solver: str, options: Options) -> Solution:
    return _SOLVERS[solver](problem, penalty, options)


# -- direct solvers ------------------------------------------------------------------------


def _solve_normal(problem: Problem, penalty: Penalty, options: Options) -> Solution:
    """Cholesky on the Jacobi-scaled ``XᵀX + l2·I``; QR when that is ill-conditioned.

    Cholesky's error grows like κ(scaled Gram)·eps = κ²·eps, so above ``MAX_NORMAL_CONDITION``
    the rows (when at hand) go to the QR path, whose error grows like κ·eps and is refined away.
    """
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
    return _solve_gram_eigen(problem, penalty)


def _solve_qr(problem: Problem, penalty: Penalty, options: Options) -> Solution:
    """Householder QR of the centred, column-scaled rows; refined against the raw rows.

    The tall-skinny QR of ``[1 | (X - x̄)/s | y - ȳ]`` is built block by block (memory: one
    block). A numerically rank-deficient R (smallest singular value ≤ max(n, d)·eps x the largest,
    after column scaling)
    gets the minimum-norm solution from an SVD of R, the careful ``lstsq`` answer on centred
    data; a full-rank one seeds iterative refinement (``_refine``), which reaches the
    least-squares solution of the rows as stored to about eps·κ where plain QR stops at κ·eps
    plus κ²·eps·‖r‖/(‖X‖‖w‖).
    """
    rows = problem.rows
    if rows is None:
        raise IncompatibleSolverError(
            "solver: 'qr' needs the rows; fit_statistics supports 'normal', 'cd', 'gd' or 'auto'"
        )
    basis = _Basis.of(problem, rows)
    triangle = _scaled_triangle(rows, basis, penalty)
    width = basis.width
    upper, qty = triangle[:width, :width], triangle[:width, width]
    if _rank_deficient(upper, max(problem.n_samples, width)):
        return Solution(_minimum_norm(upper, qty, basis, problem.n_samples), 1, "qr")
    intercept, coef = basis.parameters(_solve_upper(upper, qty))
    return _refine(rows, basis, upper, penalty, intercept, coef)


@dataclass(frozen=True)
class _Basis:
    """The preconditioning change of variables ``B = [1/√n | (X - x̄)/(x_scale·c)]`` of the rows.

    ``B`` spans the same space as the model's columns ``[1 | X/x_scale]``, but with the
    offsets removed and unit column norms, so its R factor is as well conditioned as the problem
    allows. The parameters stay in the solver's units: ``intercept`` (original units) and
    ``coef`` (per scaled feature); ``v`` denotes coordinates in the basis B.
    """

    intercept: bool
    offset: Array  # x̄ / x_scale: the feature offsets in solver units
    column_scale: Array  # c: norms of the centred solver-unit columns (never zero)
    sqrt_n: float
    y_offset: float

    @classmethod
    def of(cls, problem: Problem, rows: Rows) -> _Basis:
        """Column norms from the (centred) Gram, floored where centring leaves only rounding."""
        n = problem.n_samples
        offset = rows.x_offset / rows.x_scale
        centred_norm = np.sqrt(np.maximum(problem.gram.diagonal(), 0.0))
        raw_norm = np.hypot(centred_norm, math.sqrt(n) * offset)
        noise = max(n, problem.gram.shape[0] + 1) * EPS * raw_norm
        scale = np.maximum(centred_norm, noise)
        return cls(rows.intercept, offset, np.where(scale > 0, scale, 1.0), math.sqrt(n), rows.y_offset)

    @property
    def width(self) -> int:
        return len(self.column_scale) + int(self.intercept)

    def parameters(self, v: Array) -> tuple[float, Array]:
        """(intercept, coef) of coordinates ``v`` of B, relative to ``y_offset``."""
        if not self.intercept:
            return 0.0, v / self.column_scale
        coef = v[1:] / self.column_scale
        return self.y_offset + v[0] / self.sqrt_n - float(self.offset @ coef), coef

    def coordinates(self, gradient_b: float, gradient_coef: Array) -> Array:
        """``D⁻¹Tᵀg``: a gradient in the model's variables, expressed in the basis B."""
        scaled = gradient_coef / self.column_scale
        if not self.intercept:
            return scaled
        return np.concatenate(
            [[gradient_b / self.sqrt_n], scaled - gradient_b * self.offset / self.column_scale]
        )

    def corrected(self, intercept: float, coef: Array, dv: Array) -> tuple[float, Array]:
        """The parameters moved by ``dv`` (coordinates in B): ``T·D⁻¹·dv``."""
        if not self.intercept:
            return 0.0, coef + dv / self.column_scale
        d_coef = dv[1:] / self.column_scale
        return intercept + dv[0] / self.sqrt_n - float(self.offset @ d_coef), coef + d_coef

    def size(self, intercept: float, coef: Array) -> float:
        """‖v‖ of the parameters: the norm in which refinement measures its corrections."""
        scaled = coef * self.column_scale
        if not self.intercept:
            return float(np.linalg.norm(scaled))
        centred = intercept - self.y_offset + float(self.offset @ coef)
        return float(np.hypot(np.linalg.norm(scaled), self.sqrt_n * centred))


def _scaled_triangle(rows: Rows, basis: _Basis, penalty: Penalty) -> Array:
    """R of ``[B | y - ȳ]`` (plus ``√l2/c`` ridge rows), by tall-skinny QR one block at a time."""
    width = basis.width + 1
    buffer = np.zeros((width + block_rows(width), width))
    for block in rows.blocks(buffer[width:], basis.column_scale, 1.0 / basis.sqrt_n):
        stacked = buffer[: width + block.shape[0]]
        buffer[:width] = _triangle(stacked)
    triangle = buffer[:width]
    if penalty.l2 > 0:
        n_features = len(basis.column_scale)
        ridge = np.zeros((n_features, width))
        ridge[:, width - 1 - n_features : width - 1] = np.diag(math.sqrt(penalty.l2) / basis.column_scale)
        triangle = _triangle(np.vstack([triangle, ridge]))
    return triangle


def _triangle(matrix: Array) -> Array:
    """The R factor of a QR decomposition of a matrix with at least as many rows as columns."""
    return np.asarray(np.linalg.qr(matrix, mode="r"), dtype=np.float64)


def _rank_deficient(upper: Array, size: int) -> bool:
    """Smallest singular value of R ≤ max(n, d)·eps x the largest: such a direction is rounding."""
    singular_values = np.linalg.svd(upper, compute_uv=False)
    return bool(singular_values[-1] <= size * EPS * singular_values[0])


def _minimum_norm(upper: Array, qty: Array, basis: _Basis, n_samples: int) -> Array:
    """Minimum-norm coefficients (solver units) from an SVD of R, as ``lstsq`` on centred data."""
    start = int(basis.intercept)
    unscaled = upper[start:, start:] * basis.column_scale
    rcond = EPS * max(n_samples, len(basis.column_scale))
    return np.asarray(np.linalg.lstsq(unscaled, qty[start:], rcond=rcond)[0], dtype=np.float64)


def _refine(
    rows: Rows, basis: _Basis, upper: Array, penalty: Penalty, intercept: float, coef: Array
) -> Solution:
    """Iterative refinement: gradients of the raw rows in double-double, corrections from R.

    Each sweep computes ``g = Aᵀ(y - b - Xw) - l2·coef`` to about twice working precision and
    steps by ``(RᵀR)⁻¹g`` in the basis B (corrected semi-normal equations). Because R comes from
    QR of B, not from the Gram, the error contracts by about κ(B)·eps per sweep; the fixed point
    is the least-squares solution of the stored rows, free of the rounding of the centring.
    Its error is about κ²·eps² (the double-double gradient's own rounding, through the normal
    equations): ≥ 9 digits up to κ ≈ 1e11, about 7 at κ ≈ 6e12. Sweeps stop once a correction
    is at rounding level or stops shrinking (then the iterate is at that floor).
    """
    previous = math.inf
    sweeps = 0
    while sweeps < MAX_REFINEMENT_SWEEPS:
        gradient_b, gradient_coef = _gradient(rows, intercept, coef)
        gradient_coef -= penalty.l2 * coef
        dv = _solve_upper(upper, _solve_lower(upper.T, basis.coordinates(gradient_b, gradient_coef)))
        step = float(np.linalg.norm(dv))
        if not step < previous:
            break
        intercept, coef = basis.corrected(intercept, coef, dv)
        sweeps += 1
        previous = step
        if step <= EPS * basis.size(intercept, coef):
            break
    return Solution(coef, max(sweeps, 1), "qr", intercept if basis.intercept else None)


def _gradient(rows: Rows, intercept: float, coef: Array) -> tuple[float, Array]:
    """``(Σr, Xᵀr / x_scale)`` for ``r = y - intercept - X·coef/x_scale``, in double-double."""
    weights = coef / rows.x_scale
    total = _DoubleDouble(rows.n_features + 1)
    for X, y in rows.pieces(block_rows(rows.n_features + 2)):
        residual, residual_low = _residual(X, y, intercept, weights)
        with_ones = np.column_stack([np.ones(len(y)), X])
        products, errors = _two_product(with_ones, residual[:, None])
        errors += with_ones * residual_low[:, None]
        total.add(*_compensated_sum(products.T, errors.T))
    gradient = total.value()
    return float(gradient[0]), gradient[1:] / rows.x_scale


def _residual(X: Array, y: Array, intercept: float, weights: Array) -> tuple[Array, Array]:
    """``y - intercept - X·weights`` row by row as an unevaluated sum ``high + low``."""
    products, errors = _two_product(X, -weights)
    terms = np.column_stack([y, np.full(len(y), -intercept), products])
    carried = np.column_stack([np.zeros((len(y), 2)), errors])
    total, error = _compensated_sum(terms, carried)
    high = total + error
    return high, error - (high - total)


# -- compensated arithmetic (error-free transformations, Ogita-Rump-Oishi) ------------------

#: Dekker's splitter 2^27 + 1: a·SPLITTER splits a double into two 26-bit halves.
_SPLITTER = 134217729.0


class _DoubleDouble:
    """A running sum held as ``high + low`` (about 32 significant digits)."""

    def __init__(self, size: int) -> None:
        self.high, self.low = np.zeros(size), np.zeros(size)

    def add(self, high: Array, low: Array) -> None:
        self.high, error = _two_sum(self.high, high)
        self.low += error + low

    def value(self) -> Array:
        total: Array = self.high + self.low
        return total


def _two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    """``a + b`` exactly as ``sum + error`` (Knuth)."""
    total = a + b
    b_virtual = total - a
    return total, (a - (total - b_virtual)) + (b - b_virtual)


def _two_product(a: Array, b: Array) -> tuple[Array, Array]:
    """``a·b`` exactly as ``product + error`` (Dekker; numpy has no fused multiply-add)."""
    product = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    return product, error


def _split(a: Array) -> tuple[Array, Array]:
    scaled = _SPLITTER * a
    high = scaled - (scaled - a)
    return high, a - high


def _compensated_sum(terms: Array, errors: Array) -> tuple[Array, Array]:
    """Sum along the last axis to about twice working precision: pairwise TwoSum, errors alongside.

    The result ``(sum, error)`` is exact up to eps·|Σ| plus (log₂(k)·eps)²·Σ|terms|.
    """
    while terms.shape[-1] > 1:
        half = terms.shape[-1] // 2
        total, error = _two_sum(terms[..., :half], terms[..., half : 2 * half])
        error += errors[..., :half] + errors[..., half : 2 * half]
        if terms.shape[-1] % 2:
            total = np.concatenate([total, terms[..., -1:]], axis=-1)
            error = np.concatenate([error, errors[..., -1:]], axis=-1)
        terms, errors = total, error
    return terms[..., 0], errors[..., 0]


def _solve_gram_eigen(problem: Problem, penalty: Penalty) -> Solution:
    """Minimum-norm solution from the eigen-decomposition of the scaled Gram (no rows at hand).

    The Gram squares the condition number, and its entries carry rounding of up to about
    n·eps relative (Jacobi-scaled), so eigenvalues below ``max(n, d)·eps·λ_max`` are
    indistinguishable from zero and are dropped. Accuracy: relative error ≲ c·n·eps·κ² in the
    scaled coefficients while κ² < 1/(n·eps); directions beyond are lost, as if rank-deficient.
    """
    system = problem.gram + penalty.l2 * np.eye(problem.gram.shape[0])
    jacobi = _jacobi(system)
    eigenvalues, vectors = np.linalg.eigh(system * np.outer(jacobi, jacobi))
    cutoff = max(eigenvalues[-1], 0.0) * EPS * max(problem.n_samples, len(eigenvalues))
    keep = eigenvalues > cutoff
    basis = vectors[:, keep]
    z = jacobi * (basis @ ((basis.T @ (problem.xty * jacobi)) / eigenvalues[keep]))
    return Solution(_without_component_along(z, jacobi[:, None] * vectors[:, ~keep]), 1, "svd")


def _without_component_along(z: Array, null_space: Array) -> Array:
    """``z`` projected off the dropped directions: the minimum-norm solution in solver units.

    The directions were dropped in Jacobi-scaled coordinates; mapped back they are not
    orthogonal to ``z``, and removing their component gives what ``lstsq`` gives on the rows.
    """
    if null_space.shape[1] == 0:
        return z
    component = np.linalg.lstsq(null_space, z, rcond=None)[0]
    return np.asarray(z - null_space @ component, dtype=np.float64)


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
