"""Every solver against every other and against scikit-learn, on diabetes and synthetic data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from solver_data import Dataset, synthetic

from marina.solver import LinearRegressor

# penalty -> (scikit-learn model, our keyword arguments); alphas chosen so several coefficients
# are non-zero and several are zero on both data sets.
REFERENCES: dict[str, tuple[Any, dict[str, Any]]] = {
    "none": (lambda: LinearRegression(), {}),
    "l2": (lambda: Ridge(alpha=0.5), {"alpha": 0.5}),
    "l1": (lambda: Lasso(alpha=0.05, tol=1e-12, max_iter=100_000), {"alpha": 0.05}),
    "elasticnet": (
        lambda: ElasticNet(alpha=0.02, l1_ratio=0.7, tol=1e-12, max_iter=100_000),
        {"alpha": 0.02, "l1_ratio": 0.7},
    ),
}
SOLVERS_FOR = {
    "none": ["auto", "normal", "qr", "cd", "gd"],
    "l2": ["auto", "normal", "qr", "cd", "gd"],
    "l1": ["auto", "cd"],
    "elasticnet": ["auto", "cd"],
}
CASES = [(penalty, solver) for penalty, solvers in SOLVERS_FOR.items() for solver in solvers]
DIRECT = {"auto", "normal", "qr"}


def tight(penalty: str, solver: str, **overrides: Any) -> LinearRegressor:
    """Our estimator with iterative solvers run to convergence far below the test tolerance."""
    params = {**REFERENCES[penalty][1], "penalty": penalty, "solver": solver}
    if solver in ("cd", "gd") or penalty in ("l1", "elasticnet"):
        params.update(tol=1e-13, max_iter=500_000)
    return LinearRegressor(**{**params, **overrides})


def rtol_for(penalty: str, solver: str) -> float:
    return 1e-9 if solver in DIRECT and penalty in ("none", "l2") else 1e-6


def assert_close_coefs(ours: LinearRegressor, coef: Any, intercept: float, rtol: float) -> None:
    coef = np.asarray(coef, dtype=np.float64)
    scale = max(float(np.max(np.abs(coef))), 1.0)
    np.testing.assert_allclose(ours.coef_, coef, rtol=0, atol=rtol * scale)
    assert abs(ours.intercept_ - intercept) <= rtol * max(scale, abs(intercept))


@pytest.mark.parametrize(("penalty", "solver"), CASES)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_scikit_learn(dataset: Dataset, penalty: str, solver: str, fit_intercept: bool) -> None:
    X, y = dataset
    reference = REFERENCES[penalty][0]().set_params(fit_intercept=fit_intercept).fit(X, y)
    ours = tight(penalty, solver, fit_intercept=fit_intercept).fit(X, y)
    assert_close_coefs(ours, reference.coef_, float(reference.intercept_), rtol_for(penalty, solver))


@pytest.mark.parametrize(("penalty", "solver"), CASES)
def test_standardize_matches_scaled_pipeline(dataset: Dataset, penalty: str, solver: str) -> None:
    """standardize=True equals StandardScaler + the model, with coef_ folded back to raw units."""
    X, y = dataset
    pipeline = make_pipeline(StandardScaler(), REFERENCES[penalty][0]()).fit(X, y)
    scaler, model = pipeline[0], pipeline[1]
    coef = model.coef_ / scaler.scale_
    intercept = float(model.intercept_ - scaler.mean_ @ coef)
    ours = tight(penalty, solver, standardize=True).fit(X, y)
    assert_close_coefs(ours, coef, intercept, rtol_for(penalty, solver))
    np.testing.assert_allclose(ours.predict(X), pipeline.predict(X), rtol=1e-6, atol=1e-6 * np.abs(y).max())


@pytest.mark.parametrize("penalty", ["none", "l2"])
def test_every_solver_agrees_with_every_other(dataset: Dataset, penalty: str) -> None:
    X, y = dataset
    fits = {solver: tight(penalty, solver, standardize=True).fit(X, y) for solver in SOLVERS_FOR[penalty]}
    reference = fits["qr"]
    for solver, fit in fits.items():
        assert_close_coefs(fit, reference.coef_, reference.intercept_, rtol_for(penalty, solver))


@pytest.mark.parametrize("penalty", ["l1", "elasticnet"])
def test_lasso_objective_no_worse_than_scikit_learn_at_same_tol(penalty: str) -> None:
    X, y = synthetic(n=2000, d=15, seed=3)
    params = REFERENCES[penalty][1]
    reference = REFERENCES[penalty][0]().set_params(tol=1e-4).fit(X, y)
    ours = LinearRegressor(penalty=penalty, tol=1e-4, **params).fit(X, y)

    def objective(coef: Any, intercept: float) -> float:
        l1_ratio = params.get("l1_ratio", 1.0)
        residual = y - X @ coef - intercept
        return float(
            residual @ residual / (2 * len(y))
            + params["alpha"] * l1_ratio * np.abs(coef).sum()
            + 0.5 * params["alpha"] * (1 - l1_ratio) * coef @ coef
        )

    ours_value = objective(ours.coef_, ours.intercept_)
    theirs = objective(reference.coef_, float(reference.intercept_))
    assert ours_value <= theirs * (1 + 1e-6)
    assert ours.solver_ == "cd"
    assert ours.n_iter_ == reference.n_iter_  # same cyclic sweeps, same stopping rule


def test_score_is_r_squared(dataset: Dataset) -> None:
    X, y = dataset
    ours = LinearRegressor().fit(X, y)
    assert ours.score(X, y) == pytest.approx(LinearRegression().fit(X, y).score(X, y), rel=1e-12)
