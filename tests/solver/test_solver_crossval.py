"""Cross-validation from sufficient statistics equals refitting on each fold's rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from marina.solver import LinearRegressor, SufficientStatistics, crossval


def test_validation_mse_from_statistics_equals_the_direct_one() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(50, 3)) + 7.0, rng.normal(size=50) + 3.0
    coef, intercept = np.array([0.5, -1.0, 2.0]), 0.25
    stats = SufficientStatistics.from_arrays(x, y)
    direct = float(np.mean((y - x @ coef - intercept) ** 2))
    assert crossval.validation_mse(coef, intercept, stats) == pytest.approx(direct, rel=1e-12)


def test_training_statistics_are_the_other_folds() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    folds = np.array_split(rng.permutation(30), 3)
    training = crossval.training_statistics(crossval.fold_statistics(x, y, folds))
    for k, stats in enumerate(training):
        rows = np.sort(np.concatenate([f for j, f in enumerate(folds) if j != k]))
        direct = SufficientStatistics.from_arrays(x[rows], y[rows])
        assert stats.n_samples == direct.n_samples
        np.testing.assert_allclose(stats.xx, direct.xx, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(stats.xy, direct.xy, rtol=1e-10, atol=1e-12)


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
        assert score == pytest.approx(direct, rel=1e-7)
