"""Every kind of bad input raises its own SolverError subclass with a message that says what and where."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from marina.solver import (
    ConvergenceWarning,
    DivergenceError,
    IncompatibleSolverError,
    InvalidParameterError,
    LinearRegressor,
    NonFiniteError,
    NotFittedError,
    ShapeMismatchError,
    SolverError,
    StatisticsFormatError,
    SufficientStatistics,
    TooFewRowsError,
)

X = np.arange(40, dtype=np.float64).reshape(10, 4) ** 1.5
Y = np.linspace(0.0, 3.0, 10)


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"penalty": "l3"}, InvalidParameterError, "penalty: unknown value 'l3'; valid values are 'none'"),
        ({"solver": "lbfgs"}, InvalidParameterError, "'auto', 'normal', 'qr', 'cd', 'gd'"),
        ({"alpha": -1.0}, InvalidParameterError, "alpha: -1.0 is outside [0, inf)"),
        ({"alpha": float("nan")}, InvalidParameterError, "alpha: nan is outside"),
        ({"alpha": "big"}, InvalidParameterError, "alpha: expected a real number, got 'big'"),
        ({"l1_ratio": 1.5}, InvalidParameterError, "l1_ratio: 1.5 is outside [0, 1]"),
        ({"max_iter": 0}, InvalidParameterError, "max_iter: 0 is outside [1, inf)"),
        ({"max_iter": 2.5}, InvalidParameterError, "max_iter: expected an integer"),
        ({"tol": -1e-3}, InvalidParameterError, "tol: -0.001 is outside"),
        ({"learning_rate": 0.0}, InvalidParameterError, "learning_rate: 0.0 is outside (0, inf)"),
        ({"fit_intercept": "yes"}, InvalidParameterError, "fit_intercept: expected True or False"),
        ({"penalty": "l1", "solver": "normal"}, IncompatibleSolverError, "'normal' cannot minimise"),
        ({"penalty": "elasticnet", "solver": "qr"}, IncompatibleSolverError, "'qr' cannot minimise"),
    ],
)
def test_invalid_parameters(params: dict[str, Any], error: type[SolverError], message: str) -> None:
    with pytest.raises(error, match=_literal(message)):
        LinearRegressor(**params)
    with pytest.raises(error, match=_literal(message)):
        LinearRegressor().set_params(**params)


def test_rejected_set_params_leaves_model_unchanged() -> None:
    model = LinearRegressor(penalty="l1", alpha=0.5)
    with pytest.raises(IncompatibleSolverError):
        model.set_params(alpha=2.0, solver="normal")
    assert (model.alpha, model.solver) == (0.5, "auto")


def test_unknown_parameter_name() -> None:
    with pytest.raises(InvalidParameterError, match=r"unknown parameter.* lambda_; valid ones are penalty"):
        LinearRegressor().set_params(lambda_=1.0)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (X[:, 0], Y, "X must be 2-D (rows x features), got shape (10,)"),
        (X, Y[:7], "X has 10 rows but y has 7 (X shape (10, 4), y shape (7,))"),
        (X, np.ones((10, 2)), "y must be 1-D (one target per row), got shape (10, 2)"),
        ([["a", "b"]], [1.0], "X must be a numeric 2-D array"),
        (np.ones((10, 0)), Y, "X must have at least one feature, got shape (10, 0)"),
    ],
)
def test_shape_errors(X: Any, y: Any, message: str) -> None:
    with pytest.raises(ShapeMismatchError, match=_literal(message)):
        LinearRegressor().fit(X, y)


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, 2, np.nan, "X contains NaN at row 3, column 2"),
        (9, 0, np.inf, "X contains infinity at row 9, column 0"),
        (0, 3, -np.inf, "X contains infinity at row 0, column 3"),
    ],
)
def test_non_finite_features_are_located(row: int, column: int, value: float, message: str) -> None:
    bad = X.copy()
    bad[row, column] = value
    with pytest.raises(NonFiniteError, match=_literal(message)):
        LinearRegressor().fit(bad, Y)


def test_non_finite_target_and_later_chunk_rows_are_located() -> None:
    bad_y = Y.copy()
    bad_y[6] = np.nan
    with pytest.raises(NonFiniteError, match="y contains NaN at row 6"):
        LinearRegressor().fit(X, bad_y)
    stats = SufficientStatistics(4).update(X, Y)
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(NonFiniteError, match="X contains NaN at row 15, column 1"):
        stats.update(bad, Y)  # row numbers count the rows of earlier chunks


def test_overflow_is_reported() -> None:
    with pytest.raises(NonFiniteError, match="overflows float64"):
        LinearRegressor().fit(X * 1e300, Y)


@pytest.mark.parametrize(("fit_intercept", "rows", "needed"), [(True, 1, 2), (False, 0, 1), (True, 0, 2)])
def test_too_few_rows(fit_intercept: bool, rows: int, needed: int) -> None:
    with pytest.raises(TooFewRowsError, match=f"need at least {needed} rows .* got {rows}"):
        LinearRegressor(fit_intercept=fit_intercept).fit(X[:rows], Y[:rows])
    statistics = SufficientStatistics(4).update(X[:rows], Y[:rows])
    with pytest.raises(TooFewRowsError):
        LinearRegressor(fit_intercept=fit_intercept).fit_statistics(statistics)


def test_predict_errors() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        LinearRegressor().predict(X)
    model = LinearRegressor().fit(X, Y)
    with pytest.raises(ShapeMismatchError, match=_literal("X has 3 features but the fitted model has 4")):
        model.predict(X[:, :3])
    with pytest.raises(NonFiniteError, match="X contains NaN at row 0, column 1"):
        model.predict([[1.0, np.nan, 2.0, 3.0]])
    with pytest.raises(ShapeMismatchError, match="X has 10 rows but y has 9"):
        model.score(X, Y[:9])


def test_statistics_errors() -> None:
    with pytest.raises(ShapeMismatchError, match="X has 3 features but these statistics has 4"):
        SufficientStatistics(4).update(X[:, :3], Y)
    with pytest.raises(ShapeMismatchError, match="cannot merge statistics of 4 features with 2 features"):
        SufficientStatistics(4) + SufficientStatistics(2)
    with pytest.raises(ShapeMismatchError, match="n_features must be a positive integer"):
        SufficientStatistics(0)
    with pytest.raises(IncompatibleSolverError, match="'qr' needs the rows"):
        LinearRegressor(solver="qr").fit_statistics(SufficientStatistics(4).update(X, Y))
    with pytest.raises(InvalidParameterError, match="expected SufficientStatistics, got dict"):
        LinearRegressor().fit_statistics({"n_samples": 3})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other/v9"), "format: expected 'marina.dev/sufficient-statistics/v1'"),
        (lambda d: d.pop("xx"), "xx: missing"),
        (lambda d: d.update(xx=[[1.0]]), "xx: expected shape (4, 4), got (1, 1)"),
        (lambda d: d.update(n_samples=-1), "n_samples: expected an integer ≥ 0, got -1"),
        (lambda d: d.update(xy=["a", 1, 2, 3]), "xy: expected numbers of shape (4,)"),
        (lambda d: d.update(yy=float("inf")), "yy: values must be finite"),
    ],
)
def test_malformed_statistics_documents(change: Any, message: str) -> None:
    document = json.loads(json.dumps(SufficientStatistics(4).update(X, Y).to_dict()))
    change(document)
    with pytest.raises(StatisticsFormatError, match=_literal(message)):
        SufficientStatistics.from_dict(document)
    with pytest.raises(StatisticsFormatError, match="must be a JSON object, got list"):
        SufficientStatistics.from_dict([])


def test_every_error_is_a_value_error() -> None:
    assert issubclass(SolverError, ValueError)
    assert issubclass(IncompatibleSolverError, InvalidParameterError)


def test_gradient_descent_divergence_is_explained() -> None:
    with pytest.raises(DivergenceError, match="learning_rate 100 is above the stable limit 2/L"):
        LinearRegressor(solver="gd", learning_rate=100.0, max_iter=10_000).fit(X, Y)


@pytest.mark.parametrize("solver", ["cd", "gd"])
def test_stopping_at_max_iter_warns(solver: str) -> None:
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        model = LinearRegressor(penalty="l2", solver=solver, max_iter=2, tol=1e-12).fit(X, Y)
    assert model.n_iter_ == 2


def _literal(text: str) -> str:
    import re

    return re.escape(text)
