"""Rank-deficient and badly conditioned designs: never worse than a careful SVD solve on centred data."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from marina.solver import LinearRegressor, SufficientStatistics

Array = NDArray[np.float64]


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


DESIGNS = [duplicated_column, large_offset, badly_scaled, constant_column, more_features_than_rows]


@pytest.mark.parametrize("design", DESIGNS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("solver", ["auto", "normal", "qr"])
def test_residual_no_worse_than_svd_on_centred_data(design, solver: str) -> None:
    X, y = design(np.random.default_rng(11))
    coef, intercept = svd_reference(X, y)
    model = LinearRegressor(solver=solver).fit(X, y)
    reference = residual_norm(X, y, coef, intercept)
    assert residual_norm(X, y, model.coef_, model.intercept_) <= reference * (1 + 1e-9) + 1e-12
    assert np.isfinite(model.coef_).all()


@pytest.mark.parametrize("design", DESIGNS, ids=lambda f: f.__name__)
def test_statistics_only_fit_is_as_good_as_svd(design) -> None:
    """Without the rows the fallback is an eigen-decomposition of the Gram matrix."""
    X, y = design(np.random.default_rng(12))
    coef, intercept = svd_reference(X, y)
    model = LinearRegressor().fit_statistics(SufficientStatistics.from_arrays(X, y))
    reference = residual_norm(X, y, coef, intercept)
    assert residual_norm(X, y, model.coef_, model.intercept_) <= reference * (1 + 1e-7) + 1e-12


@pytest.mark.parametrize("design", [duplicated_column, constant_column, more_features_than_rows])
def test_rank_deficient_falls_back_to_minimum_norm(design) -> None:
    X, y = design(np.random.default_rng(13))
    model = LinearRegressor().fit(X, y)
    assert model.solver_ == "qr"
    coef, _ = svd_reference(X, y)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-6, atol=1e-8)


def test_well_conditioned_uses_cholesky() -> None:
    X, y = large_offset(np.random.default_rng(14))
    model = LinearRegressor().fit(X, y)
    assert model.solver_ == "normal"
    coef, _ = svd_reference(X, y)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-7)


@pytest.mark.parametrize("design", DESIGNS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("alpha", [1e-9, 1.0])
def test_ridge_objective_no_worse_than_svd_of_augmented_system(design, alpha: float) -> None:
    """Ridge = least squares on [Xc; √alpha·I]; a tiny alpha leaves it as ill-conditioned as OLS."""
    X, y = design(np.random.default_rng(15))
    x_mean, y_mean = X.mean(axis=0), y.mean()
    augmented = np.vstack([X - x_mean, np.sqrt(alpha) * np.eye(X.shape[1])])
    target = np.concatenate([y - y_mean, np.zeros(X.shape[1])])
    reference = np.linalg.lstsq(augmented, target, rcond=None)[0]

    def objective(coef: Array) -> float:
        residual = y - y_mean - (X - x_mean) @ coef
        return float(residual @ residual + alpha * coef @ coef)

    for solver in ("normal", "qr"):
        model = LinearRegressor(penalty="l2", alpha=alpha, solver=solver).fit(X, y)
        assert objective(model.coef_) <= objective(reference) * (1 + 1e-9) + 1e-12
