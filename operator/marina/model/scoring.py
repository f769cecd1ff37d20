"""Regression metrics and k-fold cross-validated grid search.

The metrics follow scikit-learn's definitions exactly (R² of a constant target is 1.0 for a perfect
prediction and 0.0 otherwise), so Marina's numbers can be compared with scikit-learn's directly.
The search works with any estimator that has `fit(X, y)` and `predict(X)`, so it does not depend
on the solver and can be tested on its own.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from marina.contract import SpecError
from marina.data.table import DataError

Parameters = Mapping[str, Any]


class EvaluationError(ValueError):
    """Metrics or a search were called with inputs this code should never produce: a bug, not bad data."""


class Regressor(Protocol):
    def fit(self, x: np.ndarray, y: np.ndarray) -> Any: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, prediction = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if truth.ndim != 1 or truth.shape != prediction.shape:
        raise EvaluationError(
            f"metrics need two vectors of the same length, got shapes {truth.shape} and {prediction.shape}"
        )
    if truth.size == 0:
        raise EvaluationError("metrics need at least one row")
    return truth, prediction


def mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    truth, prediction = _pair(y_true, y_pred)
    return float(np.mean((truth - prediction) ** 2))


def root_mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return math.sqrt(mean_squared_error(y_true, y_pred))


def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    truth, prediction = _pair(y_true, y_pred)
    return float(np.mean(np.abs(truth - prediction)))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    truth, prediction = _pair(y_true, y_pred)
    residual = float(np.sum((truth - prediction) ** 2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The four numbers Marina reports for a model: mse, rmse, mae and r2."""
    mse = mean_squared_error(y_true, y_pred)
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": mean_absolute_error(y_true, y_pred),
        "r2": r2_score(y_true, y_pred),
    }


class ResidualMoments:
    """The sums behind `regression_metrics`, gathered chunk by chunk (Chan's update for the target)."""

    def __init__(self) -> None:
        self.rows = 0
        self.squared = 0.0
        self.absolute = 0.0
        self.y_mean = 0.0
        self.y_m2 = 0.0

    def add(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        truth, prediction = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
        if truth.size == 0:
            return
        residual = truth - prediction
        self.squared += float(residual @ residual)
        self.absolute += float(np.abs(residual).sum())
        mean = float(truth.mean())
        m2 = float(((truth - mean) ** 2).sum())
        total = self.rows + truth.size
        delta = mean - self.y_mean
        self.y_m2 += m2 + delta * delta * self.rows * truth.size / total
        self.y_mean += delta * truth.size / total
        self.rows = total

    def metrics(self) -> dict[str, float]:
        if self.rows == 0:
            raise EvaluationError("metrics need at least one row")
        mse = self.squared / self.rows
        constant = 1.0 if self.squared == 0.0 else 0.0
        r2 = constant if self.y_m2 == 0.0 else 1.0 - self.squared / self.y_m2
        return {"mse": mse, "rmse": math.sqrt(mse), "mae": self.absolute / self.rows, "r2": r2}


def kfold_indices(rows: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled k-fold (train, validation) index pairs; the first rows % folds folds get one extra row."""
    if folds < 2:
        raise SpecError(f"cv: need at least 2 folds, got {folds}")
    if folds > rows:  # the request may be fine; this data is too small for it
        raise DataError(f"cv: {folds} folds need at least {folds} training rows, got {rows}")
    permutation = np.random.default_rng(seed).permutation(rows)
    sizes = np.full(folds, rows // folds)
    sizes[: rows % folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    pairs = []
    for start, stop in itertools.pairwise(bounds):
        validation = permutation[start:stop]
        train = np.concatenate([permutation[:start], permutation[stop:]])
        pairs.append((np.sort(train), np.sort(validation)))
    return pairs


@dataclass(frozen=True)
class CandidateScore:
    """One point of the grid and its validation MSE on each fold."""

    parameters: dict[str, Any]
    fold_mse: tuple[float, ...]

    @property
    def mean_mse(self) -> float:
        return float(np.mean(self.fold_mse))

    @property
    def std_mse(self) -> float:
        return float(np.std(self.fold_mse))


@dataclass(frozen=True)
class SearchResult:
    best: CandidateScore
    candidates: tuple[CandidateScore, ...]
    folds: int


def parameter_grid(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, in the order given (the first axis varies slowest)."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(axes[n] for n in names))]


def cross_validate(
    make_model: Callable[[], Regressor],
    x: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[float, ...]:
    """Validation MSE of a freshly made model on each fold."""
    scores = []
    for train, validation in folds:
        model = make_model()
        model.fit(x[train], y[train])
        scores.append(mean_squared_error(y[validation], model.predict(x[validation])))
    return tuple(scores)


FoldScorer = Callable[[Parameters], tuple[float, ...]]


def search(grid: Sequence[Parameters], score: FoldScorer, folds: int) -> SearchResult:
    """Score every grid point; the lowest mean MSE wins, the earliest on a tie."""
    if not grid:
        raise EvaluationError("search: the parameter grid is empty")
    candidates = tuple(CandidateScore(dict(point), score(point)) for point in grid)
    best = min(candidates, key=lambda c: c.mean_mse)  # min keeps the first of equal scores
    return SearchResult(best, candidates, folds)


def grid_search(
    make_model: Callable[[Parameters], Regressor],
    grid: Sequence[Parameters],
    x: np.ndarray,
    y: np.ndarray,
    folds: int,
    seed: int,
) -> SearchResult:
    """Fit and score every grid point on the same seeded folds, for any estimator."""
    splits = kfold_indices(x.shape[0], folds, seed)
    return search(
        grid, lambda point: cross_validate(functools.partial(make_model, point), x, y, splits), folds
    )
