"""Correct significant digits on extremely ill-conditioned designs, against 50-digit references.

Designs in the spirit of NIST StRD (Wampler, Filip, Longley): polynomials of degree up to 10 in
an x with a large mean (raw condition numbers 1e6 to 1e27, about 1e3 to 1e10 once centred and
column-scaled), with and without an intercept, and correlated economic series. Each is built
here, deterministically; the target is exact coefficients plus a deterministic wobble, so the
residual is not zero. The reference is the least-squares solution of the stored float64 rows
computed by mpmath with 50 digits (centred and scaled in mpmath, then the normal equations: κ²
≤ 1e21 leaves more than 25 digits).

The rows path (``fit``) must get ≥ 9 correct digits on every coefficient and the intercept with
every direct solver; the streaming path (``fit_statistics``) only has the Gram, whose condition
number is κ², so it must meet the κ²·eps bound, and 9 digits where κ² ≤ 1e6.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import numpy as np
import pytest
from numpy.typing import NDArray

from bounds import EPS, SAFETY, condition, gram_residual_tolerance, residual_tolerance
from marina.solver import LinearRegressor, SufficientStatistics

Array = NDArray[np.float64]

TARGET_DIGITS = 9.0
#: Coefficients smaller than this fraction of the largest (in units of their column's norm)
#: are "near zero": their error is measured relative to that largest scaled coefficient.
NEAR_ZERO = 1e-6
#: κ² up to which the streaming path must also reach the target digits: κ²·eps·SAFETY·n < 1e-9.
STREAMING_TARGET_KAPPA2 = 1e6

# NIST StRD Filip certified coefficients (β0 … β10), used as the exact polynomial.
FILIP = (
    -1467.48961422980, -2772.17959193342, -2316.37108160893, -1127.97394098372, -354.478233703349,
    -75.1242017393757, -10.8753180355343, -1.06221498588947, -0.670191154593408e-01,
    -0.246781078275479e-02, -0.402962525080404e-04,
)  # fmt: skip


@dataclass(frozen=True)
class Design:
    X: Array
    y: Array
    fit_intercept: bool = True


def wobble(n: int, frequency: float = 1.7, chirp: float = 0.37) -> Array:
    """A deterministic, noise-like perturbation in [-1, 1]."""
    k = np.arange(n, dtype=np.float64)
    return np.sin(frequency * k + 0.3) * np.cos(chirp * k * k)


def powers(x: Array, degree: int) -> Array:
    return np.column_stack([x**p for p in range(1, degree + 1)])


def polynomial(
    low: float, high: float, degree: int, n: int, noise: float, fit_intercept: bool = True
) -> Design:
    """y = Σ (x/x̄)^p / p + 2 (+ wobble) at n evenly spaced x in [low, high]."""
    x = np.linspace(low, high, n)
    mean = (low + high) / 2
    truth = 1.0 / (np.arange(1, degree + 1) * mean ** np.arange(1, degree + 1))
    X = powers(x, degree)
    return Design(X, X @ truth + (2.0 if fit_intercept else 0.0) + noise * wobble(n), fit_intercept)


def wampler() -> Design:
    """NIST Wampler-like: x = 0…20, y = 1 + x + … + x⁵ plus a large wobble."""
    X = powers(np.arange(21.0), 5)
    return Design(X, 1.0 + X.sum(axis=1) + 100.0 * wobble(21))


def filip() -> Design:
    """NIST Filip-like: degree 10 on x in [-9, -3] (raw κ ≈ 1e15), Filip's coefficients, residual ~3e-3."""
    X = powers(np.linspace(-9.0, -3.0, 82), 10)
    return Design(X, FILIP[0] + X @ np.array(FILIP[1:]) + 3e-3 * wobble(82))


def longley() -> Design:
    """Longley-like: 16 years of six trending, strongly correlated economic series."""
    t = np.arange(16.0)
    X = np.column_stack(
        [
            83.0 + 2.2 * t + 0.2 * wobble(16),
            234289.0 + 2e4 * t + 900.0 * wobble(16, 0.9, 0.21),
            2356.0 + 150.0 * t + 400.0 * wobble(16, 2.3, 0.5),
            1590.0 + 130.0 * t + 300.0 * wobble(16, 1.1, 0.8),
            107608.0 + 1500.0 * t + 9.0 * wobble(16, 0.5, 0.3),
            1947.0 + t,
        ]
    )
    y = X @ np.array([15.0, -0.036, -2.0, -1.0, -0.05, 1829.0]) - 3.48e6 + 300.0 * wobble(16, 2.9, 0.7)
    return Design(X, y)


DESIGNS: dict[str, Callable[[], Design]] = {
    "wampler": wampler,
    "filip": filip,
    "longley": longley,
    "degree10_x5to10": lambda: polynomial(5.0, 10.0, 10, 60, 1e-4),
    "degree8_x1e4": lambda: polynomial(1e4, 2e4, 8, 60, 1e-3),
    "degree5_x1e4": lambda: polynomial(1e4, 1.2e4, 5, 40, 1e-3),
    "degree10_x2to8_no_intercept": lambda: polynomial(2.0, 8.0, 10, 60, 1e-4, fit_intercept=False),
    "degree5_x1e4_no_intercept": lambda: polynomial(1e4, 1.2e4, 5, 40, 1e-3, fit_intercept=False),
}


def reference(design: Design) -> tuple[Array, float]:
    """Least squares of the stored rows in 50-digit arithmetic: centre and scale, then solve AᵀA."""
    with mpmath.workdps(50):
        n, d = design.X.shape
        columns = [[mpmath.mpf(float(v)) for v in design.X[:, j]] for j in range(d)]
        target = [mpmath.mpf(float(v)) for v in design.y]
        means = [mpmath.fsum(c) / n for c in columns] if design.fit_intercept else [mpmath.mpf(0)] * d
        y_mean = mpmath.fsum(target) / n if design.fit_intercept else mpmath.mpf(0)
        centred = [[v - m for v in c] for c, m in zip(columns, means, strict=True)]
        norms = [mpmath.sqrt(mpmath.fsum(v * v for v in c)) for c in centred]
        scaled = [[v / s for v in c] for c, s in zip(centred, norms, strict=True)]
        rhs = [v - y_mean for v in target]
        gram = mpmath.matrix(d, d)
        for i in range(d):
            for j in range(i, d):
                gram[i, j] = gram[j, i] = mpmath.fdot(scaled[i], scaled[j])
        moments = mpmath.matrix([mpmath.fdot(c, rhs) for c in scaled])
        solution = mpmath.cholesky_solve(gram, moments)
        coef = [solution[j] / norms[j] for j in range(d)]
        intercept = y_mean - mpmath.fdot(means, coef)
        return np.array([float(c) for c in coef]), float(intercept)


def correct_digits(coef: Array, intercept: float, design: Design, exact: tuple[Array, float]) -> float:
    """The fewest correct significant digits, -log10(|b - b_ref|/|b_ref|), over coefficients and intercept.

    A coefficient whose scaled size |b_ref|·‖x_j‖ is below NEAR_ZERO of the largest is compared
    relative to that largest scaled coefficient instead (its own relative error means nothing).
    """
    exact_coef, exact_intercept = exact
    norms = np.linalg.norm(design.X, axis=0)
    scaled = np.abs(exact_coef) * norms
    denominators = np.maximum(np.abs(exact_coef), NEAR_ZERO * scaled.max() / norms)
    errors = list(np.abs(coef - exact_coef) / denominators)
    if design.fit_intercept:
        errors.append(abs(intercept - exact_intercept) / abs(exact_intercept))
    worst = max(errors)
    return 17.0 if worst == 0 else -math.log10(worst)


@pytest.fixture(scope="module", params=sorted(DESIGNS))
def case(request: pytest.FixtureRequest) -> tuple[str, Design, tuple[Array, float]]:
    design = DESIGNS[request.param]()
    return request.param, design, reference(design)


@pytest.mark.parametrize("solver", ["auto", "normal", "qr"])
def test_rows_path_gets_nine_digits(case: tuple[str, Design, tuple[Array, float]], solver: str) -> None:
    _, design, exact = case
    model = LinearRegressor(solver=solver, fit_intercept=design.fit_intercept).fit(design.X, design.y)
    digits = correct_digits(model.coef_, model.intercept_, design, exact)
    kappa = condition(design.X, design.fit_intercept)
    assert digits >= TARGET_DIGITS, f"{digits:.1f} correct digits (κ = {kappa:.1e})"


@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("solver", ["auto", "qr"])
def test_rows_read_in_chunks_get_the_same_nine_digits(
    case: tuple[str, Design, tuple[Array, float]], solver: str, chunk: int
) -> None:
    """fit_chunks re-reads the rows for R and for each refinement sweep: data from storage, larger than
    memory, gets the rows path's accuracy, not the Gram's."""
    _, design, exact = case

    def chunks() -> list[tuple[Array, Array]]:
        return [(design.X[i : i + chunk], design.y[i : i + chunk]) for i in range(0, len(design.y), chunk)]

    model = LinearRegressor(solver=solver, fit_intercept=design.fit_intercept).fit_chunks(chunks)
    digits = correct_digits(model.coef_, model.intercept_, design, exact)
    kappa = condition(design.X, design.fit_intercept)
    assert digits >= TARGET_DIGITS, f"{digits:.1f} correct digits (κ = {kappa:.1e})"


def test_streaming_path_meets_the_gram_bound(case: tuple[str, Design, tuple[Array, float]]) -> None:
    """Without rows only the Gram is left: error ≲ c·n·eps·κ², lost directions beyond 1/(n·eps).

    Where that bound exceeds 1 no digit is promised, but the residual still may not exceed the
    reference's by more than the unresolved directions can explain.
    """
    _, design, exact = case
    X, y = design.X, design.y
    statistics = SufficientStatistics.from_arrays(X, y)
    model = LinearRegressor(fit_intercept=design.fit_intercept).fit_statistics(statistics)
    kappa2 = condition(X, design.fit_intercept) ** 2
    digits = correct_digits(model.coef_, model.intercept_, design, exact)
    bound = SAFETY * X.shape[0] * EPS * kappa2
    if kappa2 <= STREAMING_TARGET_KAPPA2:
        assert digits >= TARGET_DIGITS
    elif bound < 1:
        assert digits >= -math.log10(bound)
    slack = gram_residual_tolerance(X, y, exact[0], design.fit_intercept)
    slack += residual_tolerance(X, y, model.coef_, model.intercept_)
    assert residual_norm(X, y, model.coef_, model.intercept_) <= residual_norm(X, y, *exact) + slack


def residual_norm(X: Array, y: Array, coef: Array, intercept: float) -> float:
    return float(np.linalg.norm(y - X @ coef - intercept))
