"""Cross-validation from sufficient statistics equals refitting on each fold's rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bounds import (
    coefficient_prediction_tolerance,
    condition,
    gap_prediction_tolerance,
    held_out_factor,
    metrics_tolerance,
    normal_equations_tolerance,
    product_tolerance,
    residual_tolerance,
    statistics_mse_tolerance,
)
from marina.solver import LinearRegressor, SufficientStatistics, crossval


def test_validation_mse_from_statistics_equals_the_direct_one() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(50, 3)) + 7.0, rng.normal(size=50) + 3.0
    coef, intercept = np.array([0.5, -1.0, 2.0]), 0.25
    stats = SufficientStatistics.from_arrays(x, y)
    direct = float(np.mean((y - x @ coef - intercept) ** 2))
    # Moments' rounding in Syy - 2wᵀSxy + wᵀSxxw + n·offset², and the direct mean's own evaluation.
    tolerance = statistics_mse_tolerance(x, y, coef, intercept)
    assert abs(crossval.validation_mse(coef, intercept, stats) - direct) <= tolerance


def test_training_statistics_are_the_other_folds() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    folds = np.array_split(rng.permutation(30), 3)
    training = crossval.training_statistics(crossval.fold_statistics(x, y, folds))
    for k, stats in enumerate(training):
        rows = np.sort(np.concatenate([f for j, f in enumerate(folds) if j != k]))
        direct = SufficientStatistics.from_arrays(x[rows], y[rows])
        assert stats.n_samples == direct.n_samples
        # Both are computed centred products of these rows (merged by Chan's update, or at once):
        # each within the product bound of the shifted rows, as in test_solver_statistics.
        shifted = x[rows] - direct.x_shift
        shifted_y = (y[rows] - direct.y_shift)[:, None]
        assert np.all(np.abs(stats.xx - direct.xx) <= 2 * product_tolerance(shifted, shifted))
        assert np.all(np.abs(stats.xy - direct.xy) <= 2 * product_tolerance(shifted, shifted_y)[:, 0])


def scorer_tolerance(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
    model: Any,
    parameters: dict[str, Any],
) -> float:
    """|Δ held-out MSE| between the statistics-scored fit and ``model`` refit on the fold's rows.

    Direct fits (Cholesky on the merged Gram, and on the rows' Gram): κ²·eps twice, moving the
    held-out predictions by ``coefficient_prediction_tolerance``. Coordinate descent: both stop at
    duality gap ≤ tol·‖y_c‖², each within √(2·tol)·‖y_c‖ of the optimum's training predictions
    (``gap_prediction_tolerance``), times ‖A_v·A_t⁺‖ on the held-out rows. Plus the statistics
    formula's rounding.
    """
    x_t, y_t, x_v, y_v = x[train], y[train], x[held_out], y[held_out]
    coef, intercept = model.coef_, float(model.intercept_)
    fit_intercept = parameters.get("fit_intercept", True)
    if "tol" in parameters:
        shift = 2 * gap_prediction_tolerance(y_t, parameters["tol"], fit_intercept)
        shift *= held_out_factor(x_t, x_v, fit_intercept)
    else:
        relative = 2 * normal_equations_tolerance(condition(x_t, fit_intercept), *x_t.shape)
        shift = coefficient_prediction_tolerance(x_t, x_v, coef, intercept, relative, fit_intercept)
    shift += 2 * residual_tolerance(x_v, y_v, coef, intercept)
    prediction = model.predict(x_v)
    return metrics_tolerance(y_v, prediction, shift)["mse"] + statistics_mse_tolerance(
        x_v, y_v, coef, intercept
    )


@pytest.mark.parametrize(
    "parameters",
    [
        {"penalty": "none"},
        {"penalty": "l2", "standardize": True},
        {"penalty": "l2", "fit_intercept": False},
        {"penalty": "elasticnet", "l1_ratio": 0.3, "tol": 1e-10, "max_iter": 100_000},
    ],
    ids=["ols", "ridge-standardize", "no-intercept", "elasticnet"],
)
def test_scorer_equals_refitting_each_fold(parameters: dict[str, Any]) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(120, 4)) * [1, 10, 0.1, 3] + [0, 40, -2, 5]
    y = x @ rng.normal(size=4) + rng.normal(0, 1.0, 120)
    folds = np.array_split(rng.permutation(120), 4)
    point = {"alpha": 0.2}
    scores = crossval.statistics_scorer(parameters, x, y, folds)(point)
    for score, held_out in zip(scores, folds, strict=True):
        train = np.setdiff1d(np.arange(120), held_out)
        model = LinearRegressor(**parameters, **point).fit(x[train], y[train])
        direct = float(np.mean((y[held_out] - model.predict(x[held_out])) ** 2))
        assert abs(score - direct) <= scorer_tolerance(x, y, train, held_out, model, parameters)
