"""Tolerances of the solver tests, each derived from a floating-point error bound.

A test that compares two floating-point results may only demand what rounding allows: the
bounds below are standard first-order results (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., §3, §19-20) with the dimension factors written out and a safety factor
``SAFETY`` for the constants the theory leaves open. Nothing here depends on the BLAS kernel:
a different ``OPENBLAS_CORETYPE`` or thread count reorders sums, which these bounds cover.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

EPS = float(np.finfo(np.float64).eps)
#: Constant factor on every bound: the theory gives "c·n·eps" with c of order one.
SAFETY = 10.0


def condition(X: Array, fit_intercept: bool = True) -> float:
    """κ of the design as the solvers see it: centred (with an intercept), columns scaled to unit norm."""
    design = X - X.mean(axis=0) if fit_intercept else X
    norms = np.linalg.norm(design, axis=0)
    scaled = design / np.where(norms > 0, norms, 1.0)
    singular = np.linalg.svd(scaled, compute_uv=False)
    return float(singular[0] / singular[-1]) if singular[-1] > 0 else float("inf")


def residual_tolerance(X: Array, y: Array, coef: Array, intercept: float) -> float:
    """Rounding in evaluating ‖y - Xw - b‖ itself: ≲ n·eps·(‖|X|·|w|‖ + √n·|b| + ‖y‖).

    Each residual entry sums d+2 terms, so its error is ≤ (d+2)·eps·(|x|ᵀ|w| + |b| + |y|); the
    2-norm over n rows adds at most √n of those. Comparing two residual norms must allow this
    much even when both solutions are exact (e.g. |X| ≈ 1e7 and b ≈ -2.5e7 give ~1e-8 relative).
    """
    d = X.shape[1]
    magnitude = np.abs(X) @ np.abs(coef) + abs(intercept) + np.abs(y)
    return SAFETY * (d + 2) * EPS * float(np.linalg.norm(magnitude))


def least_squares_tolerance(kappa: float, n: int, d: int, relative_residual: float) -> float:
    """Relative forward error of a backward-stable least-squares solve (QR, SVD).

    Perturbation theory (Wedin; Higham Thm 20.1): ‖Δw‖/‖w‖ ≲ c·n·d·eps·(κ + κ²·‖r‖/(‖X‖‖w‖)),
    κ of the column-scaled design, r the least-squares residual.
    """
    return SAFETY * n * d * EPS * (kappa + kappa**2 * relative_residual)


def normal_equations_tolerance(kappa: float, n: int, d: int) -> float:
    """Relative forward error of Cholesky on the scaled Gram: c·(n + d²)·eps·κ².

    Forming XᵀX rounds each entry by ≤ n·eps·|X|ᵀ|X| (Jacobi-scaled: n·eps), Cholesky adds
    d²·eps (Higham Thm 10.3), and the Gram's condition number is κ².
    """
    return SAFETY * (n + d * d) * EPS * kappa**2


def step_tolerance(tol: float, kappa: float, d: int) -> float:
    """Scaled coefficient error of gradient descent stopped when its largest step ≤ tol·max|θ|.

    With step 1/L the gradient is ≤ L·√d·tol·‖θ‖, and the error ≤ ‖gradient‖/μ = κ²·√d·tol·‖θ‖.
    """
    return SAFETY * tol * float(np.sqrt(d)) * max(kappa**2, 1.0)


def gram_residual_tolerance(X: Array, y: Array, coef: Array, fit_intercept: bool = True) -> float:
    """Extra residual a Gram-only (streaming) solve may leave, beyond the evaluation rounding.

    The centred Gram carries rounding ≈ n·eps·‖A‖² (A the centred rows with unit-norm columns),
    so the scaled coefficients v come out with relative error ≲ min(normal-equations bound,
    √(n·eps)): directions with singular value below √(n·eps)·‖A‖ are unresolved, and cost at
    most that much residual each. The residual moves by ≤ ‖A‖·‖Δv‖ ≤ √d·‖Δv‖.
    """
    n, d = X.shape
    design = X - X.mean(axis=0) if fit_intercept else X
    scaled_coef = float(np.linalg.norm(np.linalg.norm(design, axis=0) * coef))
    kappa = condition(X, fit_intercept)
    relative = min(normal_equations_tolerance(kappa, n, d), SAFETY * float(np.sqrt(n * EPS)))
    return float(np.sqrt(d)) * relative * scaled_coef + residual_tolerance(X, y, coef, 0.0)


def scaled_error(X: Array, coef: Array, exact: Array, fit_intercept: bool = True) -> float:
    """max_j |w_j - ŵ_j|·‖x_j‖ over max_j |ŵ_j|·‖x_j‖ (centred columns): the normwise relative
    error the bounds above speak of, in units where every column matters equally."""
    design = X - X.mean(axis=0) if fit_intercept else X
    norms = np.linalg.norm(design, axis=0)
    return float(np.max(np.abs(coef - exact) * norms) / max(float(np.max(np.abs(exact) * norms)), EPS))


def effective_condition(X: Array) -> float:
    """s_1/s_k (singular values) of the centred design, k its numerical rank (lstsq's max(n, d)·eps cut).

    A minimum-norm solution of a rank-deficient problem is as sensitive as this κ (Higham §20.3).
    """
    singular = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    kept = singular[singular > max(X.shape) * EPS * singular[0]]
    return float(kept[0] / kept[-1])


def intercept_tolerance(X: Array, coef: Array, intercept: float, relative: float) -> float:
    """How far the intercept ȳ - x̄·w moves when every scaled coefficient moves by ``relative``.

    |Δw_j| ≤ relative·max_k |w_k|·‖x_k‖ / ‖x_j‖ (centred norms), so |Δb| ≤ Σ_j |x̄_j|·|Δw_j|,
    plus the rounding of the sum itself.
    """
    mean, norms = X.mean(axis=0), np.linalg.norm(X - X.mean(axis=0), axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    largest = float(np.max(np.abs(coef) * norms))
    moved = relative * largest * float(np.sum(np.abs(mean) / norms))
    return moved + SAFETY * X.shape[1] * EPS * (abs(intercept) + float(np.abs(mean) @ np.abs(coef)))


def duality_gap_tolerance(tol: float, kappa: float) -> float:
    """Scaled coefficient error of a solver stopped at duality gap ≤ tol·‖y‖² (scikit-learn's rule).

    The objective is s_min²-strongly convex in the scaled coefficients v, so
    ½s_min²‖v - v*‖² ≤ gap and ‖v - v*‖ ≤ √(2·tol)·‖y‖/s_min ≈ √(2·tol)·κ·‖v*‖ (‖y‖ ≈ s_max‖v*‖
    up to the residual, which a factor SAFETY covers).
    """
    return SAFETY * float(np.sqrt(2 * tol)) * kappa


def relative_residual(X: Array, y: Array, coef: Array, intercept: float) -> float:
    """‖r‖/(‖A‖·‖v‖) in scaled units (A centred, unit-norm columns; v = ‖x_j‖·w_j): the factor on κ²."""
    centred = X - X.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    scaled = centred / np.where(norms > 0, norms, 1.0)
    size = float(np.linalg.norm(scaled, 2)) * float(np.linalg.norm(norms * coef))
    return float(np.linalg.norm(y - X @ coef - intercept)) / max(size, EPS)


def prediction_tolerance(X: Array, coef: Array, intercept: float, relative: float) -> float:
    """Largest change of x·w + b over the rows when the scaled coefficients move by ``relative``."""
    norms = np.linalg.norm(X - X.mean(axis=0), axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    largest = float(np.max(np.abs(coef) * norms))
    spread = float(np.max(np.abs(X - X.mean(axis=0)) @ (1.0 / norms)))
    return relative * largest * spread + intercept_tolerance(X, coef, intercept, relative)


def product_tolerance(A: Array, B: Array) -> Array:
    """Elementwise rounding of a computed AᵀB, however the BLAS orders the sums: n·eps·|A|ᵀ|B|.

    (Higham Lemma 3.5, gamma_n ≈ n·eps.) Centred cross-products formed as Σ(x-s)(x-s)ᵀ - n·δδᵀ
    obey the same bound with A, B the shifted rows.
    """
    bound: Array = SAFETY * A.shape[0] * EPS * (np.abs(A).T @ np.abs(B))
    return bound


# --- sums, metrics and predictions (used by the tests outside tests/solver too) ---------------------


def sum_tolerance(n: int) -> float:
    """Relative error of a sum of n terms of one sign, in any order: (n-1)·eps (Higham §4.2).

    Recursive summation attains it; pairwise (numpy's 1-d reductions) does better, but numpy's
    axis-0 reductions of a C-ordered matrix add row by row, and a BLAS may use any order.
    """
    return SAFETY * max(n, 1) * EPS


def rounding_ulps(value: float, ulps: int = 4) -> float:
    """A few units in the last place of ``value``: for one correctly rounded operation or two."""
    return ulps * EPS * abs(value)


def held_out_factor(x_train: Array, x_eval: Array, fit_intercept: bool = True) -> float:
    """max over Δθ of ‖A_eval·Δθ‖ / ‖A_train·Δθ‖, A = [X 1] (or X without an intercept): ‖A_eval·A_train⁺‖₂.

    Converts a bound on how far two fits' predictions differ on the rows they were fitted on into
    one on other rows (a test split, a held-out fold); exact when A_train has full column rank.
    """

    def design(X: Array) -> Array:
        return np.column_stack([X, np.ones(len(X))]) if fit_intercept else X

    return float(np.linalg.norm(design(x_eval) @ np.linalg.pinv(design(x_train)), 2))


def gap_prediction_tolerance(y_train: Array, tol: float, fit_intercept: bool = True) -> float:
    """‖A(θ - θ*)‖ on the training rows of a fit stopped at duality gap ≤ tol·‖y_c‖² (½‖r‖² scaling).

    The objective is ½‖y - Aθ‖² plus a convex penalty, so P(θ) - P(θ*) ≥ ½‖A(θ - θ*)‖² (optimality
    of θ* kills the first-order term); the gap bounds P(θ) - P(θ*), hence ‖A(θ - θ*)‖ ≤ √(2·tol)·‖y_c‖.
    No condition number enters: predictions are what the gap controls. (Lasso and elastic net, ours
    and scikit-learn's: both stop on this gap.)
    """
    centred = y_train - y_train.mean() if fit_intercept else y_train
    return float(np.sqrt(2 * tol)) * float(np.linalg.norm(centred))


def coefficient_prediction_tolerance(
    x_train: Array, x_eval: Array, coef: Array, intercept: float, relative: float, fit_intercept: bool = True
) -> float:
    """‖Δprediction‖ (2-norm over the rows of x_eval) when the scaled coefficients move by ``relative``.

    As ``scaled_error`` defines it, |Δw_j| ≤ relative·max_k |w_k|·‖x_k‖ / ‖x_j‖ (training columns,
    centred with an intercept) and the intercept moves by ``intercept_tolerance``; each row's
    prediction moves by Σ_j |x_ij|·|Δw_j| + |Δb|.
    """
    design = x_train - x_train.mean(axis=0) if fit_intercept else x_train
    norms = np.linalg.norm(design, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    moved = relative * float(np.max(np.abs(coef) * norms)) / norms
    shift = np.abs(x_eval) @ moved
    if fit_intercept:
        shift = shift + intercept_tolerance(x_train, coef, intercept, relative)
    return float(np.linalg.norm(shift))


def metrics_tolerance(truth: Array, prediction: Array, shift: float = 0.0) -> dict[str, float]:
    """How far two evaluations of mse, rmse, mae and r2 may differ, metric by metric (absolute).

    ``shift`` bounds ‖p₁ - p₂‖ (2-norm over the m rows) between the two sets of predictions; with
    D = shift/√m (an rms), Minkowski gives |Δrmse| ≤ D and |Δmae| ≤ mean|δ| ≤ D, so |Δmse| ≤
    D·(2·rmse + D) and |Δr2| = |Δmse|·m/TSS. On top, each side's own reductions round by
    ``sum_tolerance(m)`` relative (mse, mae, RSS and TSS are sums of m terms of one sign).
    """
    m = len(truth)
    residual = truth - prediction
    mse, mae = float(np.mean(residual**2)), float(np.mean(np.abs(residual)))
    total = float(np.sum((truth - truth.mean()) ** 2))
    spread, rounding = shift / np.sqrt(m), 2 * sum_tolerance(m)
    moved_mse = spread * (2 * np.sqrt(mse) + spread)
    return {
        "mse": moved_mse + rounding * mse,
        "rmse": spread + rounding * np.sqrt(mse),
        "mae": spread + rounding * mae,
        "r2": (moved_mse + 2 * rounding * mse) * m / total,
    }


def statistics_mse_tolerance(x: Array, y: Array, coef: Array, intercept: float) -> float:
    """Rounding of the mean squared residual from centred moments, Syy - 2wᵀSxy + wᵀSxxw + n·offset².

    Each moment carries the product bound n·eps·|A|ᵀ|A| of the shifted rows (``product_tolerance``),
    so the sum is off by ≤ SAFETY·n·eps·‖|X - s|·|w| + |y - t|‖² (plus the offset term, same form);
    a shift is a mean of some rows, so |X| + max|X| bounds |X - s| whichever shift was chosen.
    The direct mean of r² adds its own evaluation (2‖r‖δ + δ², δ = ``residual_tolerance``).
    """
    n = len(y)
    magnitude = (np.abs(x) + np.abs(x).max(axis=0)) @ np.abs(coef) + np.abs(y) + np.abs(y).max()
    offset = abs(float(y.mean() - x.mean(axis=0) @ coef - intercept)) + abs(intercept)
    moments = SAFETY * n * EPS * (float(magnitude @ magnitude) + n * offset**2)
    delta = residual_tolerance(x, y, coef, intercept)
    norm = float(np.linalg.norm(y - x @ coef - intercept))
    return (moments + 2 * norm * delta + delta**2) / n


# --- what models answer beside predictions (tests/model, tests/serving) -----------------------------------


def leverage_tolerance(kappa: float, n: int, d: int, method: str) -> float:
    """Relative error of a leverage zᵀ(AᵀA)⁺z from the design's factor R (RᵀR = the scaled Gram).

    The leverage is ‖R⁻ᵀz‖², so a relative perturbation δ of R moves it by at most 2κ(R)·δ. From the
    Gram ("gram": eigen-decomposition, then QR of the root), δ ≈ (n + d²)·eps·κ (the Gram's rounding
    n·eps relative, Jacobi-scaled, over κ(R)² = κ²); from the rows ("qr": Householder TSQR, Higham Thm
    19.4), δ ≈ n·d·eps.
    """
    if method == "gram":
        return 2 * SAFETY * (n + d * d) * EPS * kappa**2
    return 2 * SAFETY * n * d * EPS * kappa


def explanation_tolerance(coef: Array, intercept: float, rows: Array, means: Array) -> Array:
    """Per row, how far base + Σ contributions may be from the prediction x·β + b when every piece rounds.

    The prediction and the base are sums of d + 1 terms: errors ≤ (d + 1)·eps·(Σ|βⱼxⱼ| + |b|) and
    (d + 1)·eps·(Σ|βⱼμⱼ| + |b|). Each contribution βⱼ·(xⱼ - μⱼ) rounds twice, ≤ 2·eps·|βⱼ|(|xⱼ| + |μⱼ|),
    and a category's block sums up to d of them; adding base and the contributions is d + 1 more terms.
    All are ≤ (d + 1)·eps·M, M = |b| + Σ|βⱼ|(|xⱼ| + |μⱼ|), so 4·(d + 1)·eps·M bounds the difference.
    """
    d = len(coef)
    magnitude = abs(intercept) + (np.abs(rows) + np.abs(means)) @ np.abs(coef)
    bound: Array = SAFETY * 4 * (d + 1) * EPS * magnitude
    return bound


def continued_fraction_tolerance(terms: float) -> float:
    """Relative error of a continued fraction evaluated by Lentz's method over `terms` terms: each term
    is a few correctly rounded operations, and their errors add up (multiplicatively, to first order)."""
    return SAFETY * (terms + 10) * EPS
