"""The seed's batch gradient descent: converges to the closed form on standardised data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from solver_data import Dataset, synthetic

from bounds import (
    EPS,
    SAFETY,
    condition,
    intercept_tolerance,
    normal_equations_tolerance,
    scaled_error,
    step_tolerance,
)
from marina.solver import ConvergenceWarning, LinearRegressor


@pytest.mark.parametrize("penalty", ["none", "l2"])
def test_converges_to_closed_form_when_standardized(dataset: Dataset, penalty: str) -> None:
    X, y = dataset
    closed = LinearRegressor(penalty=penalty, alpha=3.0, standardize=True).fit(X, y)
    descended = LinearRegressor(
        penalty=penalty, alpha=3.0, solver="gd", standardize=True, tol=1e-12, max_iter=200_000
    ).fit(X, y)
    assert descended.n_iter_ > 10
    kappa, (n, d) = condition(X), X.shape
    tolerance = step_tolerance(1e-12, kappa, d) + normal_equations_tolerance(kappa, n, d)
    assert scaled_error(X, descended.coef_, closed.coef_) <= tolerance
    assert abs(descended.intercept_ - closed.intercept_) <= intercept_tolerance(
        X, closed.coef_, closed.intercept_, tolerance
    )


def test_seed_update_rule_step_by_step() -> None:
    """One iteration equals θj := θj - rate·(1/m·Σ(h(x)-y)·xj + λ·θj) computed by hand on centred data."""
    X, y = synthetic(n=50, d=3, seed=2)
    alpha, rate = 5.0, 0.01
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    theta = np.zeros(3)
    for _ in range(3):
        h = Xc @ theta
        theta = theta - rate * ((h - yc) @ Xc / len(y) + (alpha / len(y)) * theta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LinearRegressor(penalty="l2", alpha=alpha, solver="gd", learning_rate=rate, max_iter=3)
        model.fit(X, y)
    # Same three updates in a different order of operations (Gram vs rows): each step rounds by
    # ≲ n·d·eps relative, and three steps of a contraction add up to three times that.
    tolerance = 3 * SAFETY * len(y) * X.shape[1] * EPS
    np.testing.assert_allclose(model.coef_, theta, rtol=tolerance)
    assert model.intercept_ == pytest.approx(y.mean() - X.mean(axis=0) @ theta, rel=tolerance)


def test_l1_subgradient_lands_near_lasso() -> None:
    """λ·sgn(θ) never settles exactly (it chatters around zero) but a small step lands close."""
    X, y = synthetic(n=400, d=6, seed=4)
    lasso = LinearRegressor(penalty="l1", alpha=0.5, standardize=True, tol=1e-12, max_iter=10_000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        descended = LinearRegressor(
            penalty="l1", alpha=0.5, solver="gd", standardize=True, learning_rate=1e-2, max_iter=20_000
        ).fit(X, y)
    scaled_gap = np.abs((descended.coef_ - lasso.coef_) * X.std(axis=0))
    assert scaled_gap.max() < 2 * 1e-2 * 0.5  # the chatter is about learning_rate·alpha per coordinate
