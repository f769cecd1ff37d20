"""Every solver against every other and against scikit-learn, on diabetes and synthetic data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from solver_data import Dataset, synthetic

from bounds import (
    condition,
    duality_gap_tolerance,
    intercept_tolerance,
    least_squares_tolerance,
    normal_equations_tolerance,
    prediction_tolerance,
    relative_residual,
    residual_tolerance,
    scaled_error,
    step_tolerance,
)
from marina.solver import LinearRegressor

#: Stopping tolerances: scikit-learn's references and our iterative solvers.
REFERENCE_TOL, TIGHT_TOL = 1e-12, 1e-13

# penalty -> (scikit-learn model, our keyword arguments); alphas chosen so several coefficients
# are non-zero and several are zero on both data sets.
REFERENCES: dict[str, tuple[Any, dict[str, Any]]] = {
    "none": (lambda: LinearRegression(), {}),
    "l2": (lambda: Ridge(alpha=0.5), {"alpha": 0.5}),
    "l1": (lambda: Lasso(alpha=0.05, tol=REFERENCE_TOL, max_iter=100_000), {"alpha": 0.05}),
    "elasticnet": (
        lambda: ElasticNet(alpha=0.02, l1_ratio=0.7, tol=REFERENCE_TOL, max_iter=100_000),
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
        params.update(tol=TIGHT_TOL, max_iter=500_000)
    return LinearRegressor(**{**params, **overrides})


def tolerance_for(X: Any, y: Any, penalty: str, solver: str, fit_intercept: bool = True) -> float:
    """Scaled relative error two fits may differ by: each method's forward-error bound, summed.

    Direct fits: Cholesky's κ²·eps plus a backward-stable reference's κ·eps + κ²·eps·‖r‖/(‖A‖‖v‖);
    iterative ones add what their stopping rules leave (duality gap, or gradient-descent step).
    """
    kappa, (n, d) = condition(X, fit_intercept), X.shape
    coef, intercept = exact_least_squares(X, y)
    direct = normal_equations_tolerance(kappa, n, d) + least_squares_tolerance(
        kappa, n, d, relative_residual(X, y, coef, intercept)
    )
    tolerance = direct
    if solver == "gd":
        tolerance += step_tolerance(TIGHT_TOL, kappa, d)
    elif solver not in DIRECT or penalty in ("l1", "elasticnet"):  # coordinate descent
        tolerance += duality_gap_tolerance(TIGHT_TOL, kappa)
    if penalty in ("l1", "elasticnet"):  # scikit-learn's Lasso/ElasticNet stop on the gap too
        tolerance += duality_gap_tolerance(REFERENCE_TOL, kappa)
    return tolerance


def exact_least_squares(X: Any, y: Any) -> tuple[Any, float]:
    x_mean, y_mean = X.mean(axis=0), y.mean()
    coef = np.linalg.lstsq(X - x_mean, y - y_mean, rcond=None)[0]
    return coef, float(y_mean - x_mean @ coef)


def assert_close_coefs(
    X: Any, ours: LinearRegressor, coef: Any, intercept: float, tolerance: float, fit_intercept: bool = True
) -> None:
    coef = np.asarray(coef, dtype=np.float64)
    assert scaled_error(X, ours.coef_, coef, fit_intercept) <= tolerance
    assert abs(ours.intercept_ - intercept) <= intercept_tolerance(X, coef, intercept, tolerance)


@pytest.mark.parametrize(("penalty", "solver"), CASES)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_scikit_learn(dataset: Dataset, penalty: str, solver: str, fit_intercept: bool) -> None:
    X, y = dataset
    reference = REFERENCES[penalty][0]().set_params(fit_intercept=fit_intercept).fit(X, y)
    ours = tight(penalty, solver, fit_intercept=fit_intercept).fit(X, y)
    tolerance = tolerance_for(X, y, penalty, solver, fit_intercept)
    assert_close_coefs(X, ours, reference.coef_, float(reference.intercept_), tolerance, fit_intercept)


@pytest.mark.parametrize(("penalty", "solver"), CASES)
def test_standardize_matches_scaled_pipeline(dataset: Dataset, penalty: str, solver: str) -> None:
    """standardize=True equals StandardScaler + the model, with coef_ folded back to raw units."""
    X, y = dataset
    pipeline = make_pipeline(StandardScaler(), REFERENCES[penalty][0]()).fit(X, y)
    scaler, model = pipeline[0], pipeline[1]
    coef = model.coef_ / scaler.scale_
    intercept = float(model.intercept_ - scaler.mean_ @ coef)
    ours = tight(penalty, solver, standardize=True).fit(X, y)
    tolerance = tolerance_for(X, y, penalty, solver)
    assert_close_coefs(X, ours, coef, intercept, tolerance)
    difference = np.abs(ours.predict(X) - pipeline.predict(X)).max()
    assert difference <= prediction_tolerance(X, coef, intercept, tolerance)


@pytest.mark.parametrize("penalty", ["none", "l2"])
def test_every_solver_agrees_with_every_other(dataset: Dataset, penalty: str) -> None:
    X, y = dataset
    fits = {solver: tight(penalty, solver, standardize=True).fit(X, y) for solver in SOLVERS_FOR[penalty]}
    reference = fits["qr"]
    for solver, fit in fits.items():
        assert_close_coefs(
            X, fit, reference.coef_, reference.intercept_, tolerance_for(X, y, penalty, solver)
        )


@pytest.mark.parametrize("penalty", ["l1", "elasticnet"])
def test_lasso_objective_no_worse_than_scikit_learn_at_same_tol(penalty: str) -> None:
    X, y = synthetic(n=2000, d=15, seed=3)
    params = REFERENCES[penalty][1]
    tol = 1e-4  # scikit-learn's default: the comparison is at the same, loose stopping point
    reference = REFERENCES[penalty][0]().set_params(tol=tol).fit(X, y)
    ours = LinearRegressor(penalty=penalty, tol=tol, **params).fit(X, y)

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
    # Both stopped with duality gap ≤ tol·‖y_c‖² in the ½‖r‖² scaling, i.e. tol·‖y_c‖²/n here:
    # each objective is within that of the optimum.
    assert ours_value <= theirs + tol * float(np.sum((y - y.mean()) ** 2)) / len(y)
    assert ours.solver_ == "cd"
    assert ours.n_iter_ == reference.n_iter_  # same cyclic sweeps, same stopping rule


def test_score_is_r_squared(dataset: Dataset) -> None:
    X, y = dataset
    ours, theirs = LinearRegressor().fit(X, y), LinearRegression().fit(X, y)
    # R² = 1 - RSS/TSS; both fits are least-squares optimal, so their RSS differ by evaluation
    # rounding 2‖r‖δ + δ² (δ the residual bound), each.
    total = float(np.sum((y - y.mean()) ** 2))
    slack = 0.0
    for model in (ours, theirs):
        delta = residual_tolerance(X, y, model.coef_, float(model.intercept_))
        slack += (2 * np.sqrt(total) * delta + delta**2) / total
    assert abs(ours.score(X, y) - theirs.score(X, y)) <= slack
