"""Rank-deficient and badly conditioned designs: never worse than a careful SVD solve on centred data.

Every tolerance comes from ``bounds``: residual norms are compared up to the rounding of
evaluating them, coefficients up to the forward-error bound of the method (κ·eps for QR/SVD,
κ²·eps for anything built on the Gram).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from bounds import (
    condition,
    effective_condition,
    gram_residual_tolerance,
    least_squares_tolerance,
    normal_equations_tolerance,
    residual_tolerance,
    scaled_error,
)
from marina.solver import LinearRegressor, SufficientStatistics

Array = NDArray[np.float64]
Design = Callable[[np.random.Generator], tuple[Array, Array]]


def svd_reference(X: Array, y: Array) -> tuple[Array, float]:
    """np.linalg.lstsq on exactly centred data: the careful reference."""
    x_mean, y_mean = X.mean(axis=0), y.mean()
    coef = np.linalg.lstsq(X - x_mean, y - y_mean, rcond=None)[0]
    return coef, float(y_mean - x_mean @ coef)


def residual_norm(X: Array, y: Array, coef: Array, intercept: float) -> float:
    return float(np.linalg.norm(y - X @ coef - intercept))


def duplicated_column(rng: np.random.Generator) -> tuple[Array, Array]:
    X = rng.standard_normal((500, 5))
    X = np.column_stack([X, X[:, 1], X[:, 0] - 2 * X[:, 3]])
    return X, X[:, :5] @ np.arange(1.0, 6.0) + rng.normal(0, 0.1, 500)


def large_offset(rng: np.random.Generator) -> tuple[Array, Array]:
    X = 1e7 + rng.standard_normal((800, 4)) * np.array([1.0, 1e-2, 1e2, 1.0])
    return X, (X - 1e7) @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(0, 0.01, 800)


def badly_scaled(rng: np.random.Generator) -> tuple[Array, Array]:
    base = rng.standard_normal((600, 4))
    X = np.column_stack([base[:, 0] * 1e6, base[:, 1] * 1e-6, base[:, 2], base[:, 2] + 1e-7 * base[:, 3]])
    return X, base @ np.array([1.0, 1.0, 1.0, 1.0]) + rng.normal(0, 0.1, 600)


def constant_column(rng: np.random.Generator) -> tuple[Array, Array]:
    X = np.column_stack([rng.standard_normal((300, 3)), np.full(300, 4.0)])
    return X, X[:, :3] @ np.array([1.0, 2.0, 3.0]) + rng.normal(0, 0.1, 300)


def more_features_than_rows(rng: np.random.Generator) -> tuple[Array, Array]:
    X = rng.standard_normal((12, 30))
    return X, rng.standard_normal(12)


DESIGNS: list[Design] = [
    duplicated_column,
    large_offset,
    badly_scaled,
    constant_column,
    more_features_than_rows,
]
RANK_DEFICIENT: list[Design] = [duplicated_column, constant_column, more_features_than_rows]
PATHS = ["auto", "normal", "qr", "streaming"]


def fit(path: str, X: Array, y: Array, **params: object) -> LinearRegressor:
    """Fit on the rows with solver ``path``, or from SufficientStatistics alone for ``streaming``."""
    if path == "streaming":
        return LinearRegressor(**params).fit_statistics(SufficientStatistics.from_arrays(X, y))  # type: ignore[arg-type]
    return LinearRegressor(solver=path, **params).fit(X, y)  # type: ignore[arg-type]


@pytest.mark.parametrize("design", DESIGNS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("path", PATHS)
def test_residual_no_worse_than_svd_on_centred_data(design: Design, path: str) -> None:
    """Rows paths: the SVD's residual up to evaluation rounding; streaming: up to the Gram's limit."""
    X, y = design(np.random.default_rng(11))
    coef, intercept = svd_reference(X, y)
    model = fit(path, X, y)
    reference = residual_norm(X, y, coef, intercept)
    slack = residual_tolerance(X, y, coef, intercept) + residual_tolerance(
        X, y, model.coef_, model.intercept_
    )
    if path == "streaming":
        slack += gram_residual_tolerance(X, y, coef)
    assert residual_norm(X, y, model.coef_, model.intercept_) <= reference + slack
    assert np.isfinite(model.coef_).all()


@pytest.mark.parametrize("design", RANK_DEFICIENT, ids=lambda f: f.__name__)
@pytest.mark.parametrize("path", PATHS)
def test_rank_deficient_gets_minimum_norm(design: Design, path: str) -> None:
    """The minimum-norm solution is as sensitive as the condition number of the kept singular values."""
    X, y = design(np.random.default_rng(13))
    model = fit(path, X, y)
    assert model.solver_ == ("svd" if path == "streaming" else "qr")
    coef, intercept = svd_reference(X, y)
    kappa, (n, d) = effective_condition(X), X.shape
    relative_residual = residual_norm(X, y, coef, intercept) / (
        np.linalg.norm(X - X.mean(axis=0)) * np.linalg.norm(coef)
    )
    tolerance = 2 * least_squares_tolerance(kappa, n, d, relative_residual)
    if path == "streaming":
        tolerance += normal_equations_tolerance(kappa, n, d)
    assert np.linalg.norm(model.coef_ - coef) <= tolerance * np.linalg.norm(coef)


def test_well_conditioned_uses_cholesky() -> None:
    X, y = large_offset(np.random.default_rng(14))
    model = LinearRegressor().fit(X, y)
    assert model.solver_ == "normal"
    coef, _ = svd_reference(X, y)
    kappa, (n, d) = condition(X), X.shape
    tolerance = normal_equations_tolerance(kappa, n, d) + least_squares_tolerance(kappa, n, d, 1.0)
    assert scaled_error(X, model.coef_, coef) <= tolerance


@pytest.mark.parametrize("design", DESIGNS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("alpha", [1e-9, 1.0])
@pytest.mark.parametrize("solver", ["normal", "qr"])
def test_ridge_objective_no_worse_than_svd_of_augmented_system(
    design: Design, alpha: float, solver: str
) -> None:
    """Ridge = least squares on [Xc; √alpha·I]; a tiny alpha leaves it as ill-conditioned as OLS.

    Both objectives are minimal to first order, so they differ by the rounding of evaluating
    ‖r‖² + alpha·‖w‖²: 2‖r‖·δ + δ² with δ the residual's evaluation bound, twice.
    """
    X, y = design(np.random.default_rng(15))
    x_mean, y_mean = X.mean(axis=0), y.mean()
    augmented = np.vstack([X - x_mean, np.sqrt(alpha) * np.eye(X.shape[1])])
    target = np.concatenate([y - y_mean, np.zeros(X.shape[1])])
    reference = np.linalg.lstsq(augmented, target, rcond=None)[0]

    def objective(coef: Array) -> float:
        residual = y - y_mean - (X - x_mean) @ coef
        return float(residual @ residual + alpha * coef @ coef)

    model = LinearRegressor(penalty="l2", alpha=alpha, solver=solver).fit(X, y)
    delta = sum(residual_tolerance(augmented, target, coef, 0.0) for coef in (reference, model.coef_))
    slack = 2 * np.sqrt(objective(reference)) * delta + delta**2
    assert objective(model.coef_) <= objective(reference) + slack
