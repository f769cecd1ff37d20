"""Metrics against scikit-learn's, k-fold splitting and the grid search's choice."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import Ridge

from bounds import metrics_tolerance, residual_tolerance, sum_tolerance
from marina.contract import SpecError
from marina.data.table import DataError
from marina.model import scoring


def vectors(seed: int, size: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(3.0, 2.0, size)
    return truth, truth + rng.normal(0.0, 0.5, size)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (scoring.mean_squared_error, skm.mean_squared_error),
        (scoring.root_mean_squared_error, skm.root_mean_squared_error),
        (scoring.mean_absolute_error, skm.mean_absolute_error),
        (scoring.r2_score, skm.r2_score),
    ],
    ids=["mse", "rmse", "mae", "r2"],
)
def test_metrics_equal_scikit_learns(ours: Any, theirs: Any, seed: int) -> None:
    truth, prediction = vectors(seed)
    # Same definitions on the same vectors: only the order of the sums may differ, within each
    # side's summation bound (``metrics_tolerance`` with predictions that do not move).
    name = {"mean_squared_error": "mse", "root_mean_squared_error": "rmse", "mean_absolute_error": "mae"}
    tolerance = metrics_tolerance(truth, prediction)[name.get(ours.__name__, "r2")]
    assert abs(ours(truth, prediction) - theirs(truth, prediction)) <= tolerance


@pytest.mark.parametrize(("prediction", "expected"), [([2.0, 2.0, 2.0], 1.0), ([2.0, 2.0, 3.0], 0.0)])
def test_r2_of_a_constant_target_matches_scikit_learn(prediction: list[float], expected: float) -> None:
    truth = np.array([2.0, 2.0, 2.0])
    assert scoring.r2_score(truth, np.array(prediction)) == expected == skm.r2_score(truth, prediction)


def test_regression_metrics_bundle() -> None:
    truth, prediction = vectors(4)
    result = scoring.regression_metrics(truth, prediction)
    assert set(result) == {"mse", "rmse", "mae", "r2"}
    # Exact by construction: rmse is math.sqrt of that very mse, and sqrt is correctly rounded.
    assert result["rmse"] == math.sqrt(result["mse"])


@pytest.mark.parametrize(
    ("truth", "prediction", "message"),
    [([1.0, 2.0], [1.0], "same length"), ([], [], "at least one row"), ([[1.0]], [[1.0]], "same length")],
)
def test_metric_input_errors(truth: list[Any], prediction: list[Any], message: str) -> None:
    with pytest.raises(scoring.EvaluationError, match=message):  # a bug of the caller, not bad data
        scoring.mean_squared_error(np.array(truth), np.array(prediction))


@pytest.mark.parametrize(("rows", "folds"), [(10, 3), (12, 4), (7, 7), (101, 5)])
def test_kfold_partitions_every_row_once(rows: int, folds: int) -> None:
    pairs = scoring.kfold_indices(rows, folds, seed=3)
    assert len(pairs) == folds
    validation = np.concatenate([v for _, v in pairs])
    assert sorted(validation.tolist()) == list(range(rows))
    sizes = sorted(len(v) for _, v in pairs)
    assert sizes[-1] - sizes[0] <= 1
    for train, valid in pairs:
        assert not set(train.tolist()) & set(valid.tolist())
        assert len(train) + len(valid) == rows
    again = scoring.kfold_indices(rows, folds, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(pairs, again, strict=True))


@pytest.mark.parametrize(
    ("rows", "folds", "error", "message"),
    [(10, 1, SpecError, "at least 2 folds"), (3, 5, DataError, "5 folds need at least 5")],
)
def test_kfold_errors(rows: int, folds: int, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        scoring.kfold_indices(rows, folds, seed=0)


def test_parameter_grid_order() -> None:
    grid = scoring.parameter_grid({"alpha": [0.1, 1.0], "l1_ratio": [0.2, 0.5]})
    assert grid == [
        {"alpha": 0.1, "l1_ratio": 0.2},
        {"alpha": 0.1, "l1_ratio": 0.5},
        {"alpha": 1.0, "l1_ratio": 0.2},
        {"alpha": 1.0, "l1_ratio": 0.5},
    ]


class ShrunkMean:
    """Predicts a constant: the training mean times `scale` — so the best scale is exactly 1."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.level = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray) -> ShrunkMean:
        self.level = float(y.mean()) * self.scale
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(x.shape[0], self.level)


def test_grid_search_picks_the_constructed_best() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 2)), rng.normal(10.0, 1.0, 60)
    result = scoring.grid_search(
        lambda p: ShrunkMean(p["scale"]), [{"scale": s} for s in (0.0, 0.5, 1.0, 2.0)], x, y, folds=5, seed=1
    )
    assert result.best.parameters == {"scale": 1.0}
    assert [len(c.fold_mse) for c in result.candidates] == [5, 5, 5, 5]
    assert result.best.mean_mse == min(c.mean_mse for c in result.candidates)


def test_grid_search_prefers_the_regularisation_that_generalises() -> None:
    """Few rows, many features, few real ones: a moderate ridge penalty beats a tiny and a crushing one."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 30))
    beta = np.zeros(30)
    beta[:5] = [3.0, -2.0, 2.0, 1.0, -1.0]
    y = x @ beta + rng.normal(0.0, 2.0, 40)
    alphas = [1e-4, 10.0, 1e5]

    def make(p: Mapping[str, Any]) -> Ridge:
        return Ridge(alpha=p["alpha"])

    result = scoring.grid_search(make, [{"alpha": a} for a in alphas], x, y, folds=4, seed=0)
    assert result.best.parameters["alpha"] == 10.0
    # Our folds scored by hand with scikit-learn give the same means.
    # The same Ridge fit on the same rows gives the same coefficients; the predictions' evaluation
    # order (BLAS) and the MSE reductions may differ: ``metrics_tolerance`` per fold, then a 4-term mean.
    splits = scoring.kfold_indices(40, 4, 0)
    for candidate in result.candidates:
        models = [Ridge(alpha=candidate.parameters["alpha"]).fit(x[t], y[t]) for t, _ in splits]
        by_hand = [
            skm.mean_squared_error(y[v], m.predict(x[v])) for m, (_, v) in zip(models, splits, strict=True)
        ]
        tolerance = sum_tolerance(4) * float(np.mean(by_hand)) + float(
            np.mean(
                [
                    metrics_tolerance(
                        y[v], m.predict(x[v]), 2 * residual_tolerance(x[v], y[v], m.coef_, m.intercept_)
                    )["mse"]
                    for m, (_, v) in zip(models, splits, strict=True)
                ]
            )
        )
        assert abs(candidate.mean_mse - np.mean(by_hand)) <= tolerance


def test_grid_search_tie_keeps_the_first() -> None:
    x, y = np.zeros((10, 1)), np.ones(10)
    result = scoring.grid_search(lambda p: ShrunkMean(1.0), [{"k": 1}, {"k": 2}], x, y, folds=2, seed=0)
    assert result.best.parameters == {"k": 1}


def test_grid_search_needs_a_grid() -> None:
    with pytest.raises(scoring.EvaluationError, match="grid is empty"):
        scoring.grid_search(lambda p: ShrunkMean(1.0), [], np.zeros((4, 1)), np.zeros(4), folds=2, seed=0)
