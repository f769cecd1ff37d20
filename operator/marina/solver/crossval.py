"""k-fold cross-validation from sufficient statistics: one pass over the rows, then O(d³) per fit.

Each fold's rows are summarised once; a fold's training side is the merge of the other folds'
statistics (exact, see `SufficientStatistics.__add__`), and its validation MSE follows from the held-out
statistics alone, so scoring a grid never refits on rows.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from marina.solver.estimator import LinearRegressor
from marina.solver.statistics import SufficientStatistics

FoldScorer = Callable[[Mapping[str, Any]], tuple[float, ...]]


def fold_statistics(
    x: np.ndarray, y: np.ndarray, validation_folds: Sequence[np.ndarray]
) -> list[SufficientStatistics]:
    """The statistics of each fold's held-out rows."""
    return [SufficientStatistics.from_arrays(x[rows], y[rows]) for rows in validation_folds]


def merge(parts: Sequence[SufficientStatistics]) -> SufficientStatistics:
    return functools.reduce(operator.add, parts)


def training_statistics(held_out: Sequence[SufficientStatistics]) -> list[SufficientStatistics]:
    """For each fold, the merge of every other fold: the rows it trains on."""
    return [merge([s for j, s in enumerate(held_out) if j != k]) for k in range(len(held_out))]


def validation_mse(coef: np.ndarray, intercept: float, stats: SufficientStatistics) -> float:
    """Mean squared error of x·coef + intercept on the rows behind `stats`, from their centred moments:
    Σr² = Syy - 2·wᵀSxy + wᵀSxxw + n·(ȳ - x̄·w - b)²  (the cross terms vanish around the means)."""
    w = np.asarray(coef, dtype=np.float64)
    offset = stats.y_mean - float(stats.x_mean @ w) - intercept
    residual = stats.yy - 2.0 * float(w @ stats.xy) + float(w @ stats.xx @ w) + stats.n_samples * offset**2
    return max(float(residual), 0.0) / stats.n_samples


def statistics_scorer(
    parameters: Mapping[str, Any], x: np.ndarray, y: np.ndarray, validation_folds: Sequence[np.ndarray]
) -> FoldScorer:
    """Validation MSE per fold of `LinearRegressor(**parameters, **point)` for any grid point."""
    return held_out_scorer(parameters, fold_statistics(x, y, validation_folds))


def held_out_scorer(parameters: Mapping[str, Any], held_out: Sequence[SufficientStatistics]) -> FoldScorer:
    """The same scorer from each fold's held-out statistics, however they were gathered (chunk by chunk)."""
    training = training_statistics(held_out)

    def score(point: Mapping[str, Any]) -> tuple[float, ...]:
        models = [LinearRegressor(**{**parameters, **point}).fit_statistics(stats) for stats in training]
        return tuple(
            validation_mse(m.coef_, m.intercept_, stats) for m, stats in zip(models, held_out, strict=True)
        )

    return score
