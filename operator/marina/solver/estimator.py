"""``LinearRegressor``: OLS, ridge, lasso and elastic net with scikit-learn's meaning of alpha.

Penalties (n = rows, w = coefficients, the intercept is never penalised):

- ``none``:       ‖y - Xw‖²                                         (LinearRegression)
- ``l2``:         ‖y - Xw‖² + alpha·‖w‖²                            (Ridge)
- ``l1``:         1/(2n)·‖y - Xw‖² + alpha·‖w‖₁                     (Lasso)
- ``elasticnet``: 1/(2n)·‖y - Xw‖² + alpha·l1_ratio·‖w‖₁
                  + ½·alpha·(1 - l1_ratio)·‖w‖²                     (ElasticNet)

The intercept is handled by centring outside the solvers; ``standardize=True`` fits on
features divided by their (population) standard deviation, like ``StandardScaler`` in front
of the scikit-learn model, and folds the scaling back, so ``coef_`` is always in the original
units.

Gradient descent (``solver="gd"``) is the seed's update θj := θj - rate·(∂J/∂θj + λ2·θj +
λ1·sgn(θj)) with J = 1/(2m)·Σ(h(x) - y)², where λ1 = alpha·l1_ratio (alpha for ``l1``) and
λ2 = alpha·(1 - l1_ratio) for ``elasticnet``, λ2 = alpha/m for ``l2`` (so alpha keeps Ridge's
meaning), and ``learning_rate`` is the seed's step (its alpha; default: 1/L, the largest safe step).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from marina.contract import TRAINING_JOB as MODEL
from marina.contract import Bound
from marina.contract.schema import Integer, Number
from marina.solver import _solvers
from marina.solver._validation import (
    Array,
    Boolean,
    Constraint,
    Interval,
    OneOf,
    as_matrix,
    as_vector,
    check_n_features,
    check_parameters,
    check_rows_match,
    raise_non_finite,
)
from marina.solver.errors import (
    InvalidParameterError,
    NotFittedError,
    TooFewRowsError,
)
from marina.solver.statistics import SufficientStatistics


def _model_range(name: str) -> Bound:
    """The range of a TrainingJob's spec.model field."""
    field = MODEL.at(f"spec.model.{name}")
    assert isinstance(field, Integer | Number) and field.bound is not None
    return field.bound


class LinearRegressor:
    """Linear least squares with an optional L2, L1 or elastic-net penalty.

    Solvers: ``normal`` (Cholesky on the centred Gram matrix, falling back to ``qr`` when it
    is ill-conditioned), ``qr`` (tall-skinny QR of the centred, column-scaled rows, refined
    against the raw rows in double-double arithmetic: ≥ 9 correct digits up to κ ≈ 1e10 after
    centring and scaling; minimum-norm when rank-deficient), ``cd``
    (coordinate descent on the Gram matrix, duality-gap stopping as scikit-learn), ``gd``
    (the seed's batch gradient descent, for teaching). ``auto`` picks ``normal`` for
    ``none``/``l2`` and ``cd`` for ``l1``/``elasticnet``.
    """

    # Ranges and defaults are the TrainingJob's spec.model fields (marina.contract), so a value a resource
    # may hold is one the solver takes; learning_rate is the solver's alone.
    _PARAMETER_CONSTRAINTS: ClassVar[dict[str, Constraint]] = {
        "penalty": OneOf(_solvers.PENALTIES),
        "alpha": Interval.of(_model_range("alpha")),
        "l1_ratio": Interval.of(_model_range("l1Ratio")),
        "solver": OneOf(_solvers.SOLVERS),
        "fit_intercept": Boolean(),
        "standardize": Boolean(),
        "max_iter": Interval.of(_model_range("maxIter"), integer=True),
        "tol": Interval.of(_model_range("tol")),
        "learning_rate": Interval(0.0, low_inclusive=False, allow_none=True),
    }

    coef_: Array
    intercept_: float
    n_iter_: int
    solver_: str
    n_features_in_: int
    statistics_: SufficientStatistics | None = None

    def __init__(
        self,
        penalty: str = MODEL.default("spec.model.penalty"),
        alpha: float = MODEL.default("spec.model.alpha"),
        l1_ratio: float = MODEL.default("spec.model.l1Ratio"),
        solver: str = MODEL.default("spec.model.solver"),
        fit_intercept: bool = MODEL.default("spec.model.fitIntercept"),
        standardize: bool = MODEL.default("spec.model.standardize"),
        max_iter: int = 1000,
        tol: float = 1e-4,
        learning_rate: float | None = None,
    ) -> None:
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self._validated_solver()

    # -- parameters -----------------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._PARAMETER_CONSTRAINTS}

    def set_params(self, **params: Any) -> LinearRegressor:
        unknown = sorted(set(params) - set(self._PARAMETER_CONSTRAINTS))
        if unknown:
            valid = ", ".join(self._PARAMETER_CONSTRAINTS)
            raise InvalidParameterError(f"unknown parameter(s) {', '.join(unknown)}; valid ones are {valid}")
        previous = self.get_params()
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._validated_solver()
        except InvalidParameterError:
            for name, value in previous.items():  # a rejected change leaves the model as it was
                setattr(self, name, value)
            raise
        return self

    def _validated_solver(self) -> str:
        """Check every parameter and return the concrete solver ``auto`` stands for."""
        check_parameters(self._PARAMETER_CONSTRAINTS, self.get_params())
        return _solvers.resolve_solver(self.solver, self.penalty)

    def _penalty(self, n_samples: int) -> _solvers.Penalty:
        """Map alpha/l1_ratio onto the solvers' unscaled objective ½‖r‖² + l1‖w‖₁ + ½·l2‖w‖²."""
        alpha = float(self.alpha)
        if self.penalty == "l2":
            return _solvers.Penalty(l1=0.0, l2=alpha)
        if self.penalty == "l1":
            return _solvers.Penalty(l1=alpha * n_samples, l2=0.0)
        if self.penalty == "elasticnet":
            ratio = float(self.l1_ratio)
            return _solvers.Penalty(l1=alpha * ratio * n_samples, l2=alpha * (1.0 - ratio) * n_samples)
        return _solvers.Penalty(l1=0.0, l2=0.0)

    # -- fitting --------------------------------------------------------------------------

    def fit(self, X: ArrayLike, y: ArrayLike) -> LinearRegressor:
        """Fit on in-memory data; ``X`` is read block by block and never copied whole."""
        solver = self._validated_solver()
        matrix, target = as_matrix(X), as_vector(y)
        check_rows_match(matrix, target)
        self._check_row_count(matrix.shape[0])
        statistics = SufficientStatistics.from_arrays(matrix, target)
        return self._fit(statistics, solver, lambda: [(matrix, target)])

    def fit_statistics(self, statistics: SufficientStatistics) -> LinearRegressor:
        """Fit from accumulated (possibly merged, possibly deserialised) sufficient statistics.

        Only the Gram is at hand, so the error grows like κ²·eps (κ of the centred, column-scaled
        design): about 16 - 2·log10(κ) digits, and directions with κ² beyond 1/(n·eps) are
        dropped as rank-deficient. Use ``fit`` on the rows for ill-conditioned designs.
        """
        solver = self._validated_solver()
        if not isinstance(statistics, SufficientStatistics):
            raise InvalidParameterError(
                f"statistics: expected SufficientStatistics, got {type(statistics).__name__}"
            )
        self._check_row_count(statistics.n_samples)
        return self._fit(statistics, solver, None)

    def fit_chunks(
        self, chunks: _solvers.Chunks, statistics: SufficientStatistics | None = None
    ) -> LinearRegressor:
        """Fit on data read in chunks, any number of times: ``chunks()`` yields ``(X, y)`` pairs from the
        start. One pass gathers the statistics (unless given, gathered from the same rows); the QR path
        (``qr``, or ``normal`` on an ill-conditioned design) reads the rows again to build R and once per
        refinement sweep, holding one block at a time, so a data set larger than memory gets the same
        accuracy as ``fit`` on arrays."""
        solver = self._validated_solver()
        if statistics is None:
            for X, y in chunks():
                matrix = as_matrix(X)
                statistics = statistics or SufficientStatistics(n_features=max(matrix.shape[1], 1))
                statistics.update(matrix, y)
        if statistics is None:
            raise TooFewRowsError("need at least one chunk of rows, got none")
        self._check_row_count(statistics.n_samples)

        def checked() -> Iterable[tuple[Array, Array]]:
            for X, y in chunks():
                yield as_matrix(X), as_vector(y)

        return self._fit(statistics, solver, checked)

    def partial_fit(self, X: ArrayLike, y: ArrayLike) -> LinearRegressor:
        """Add a chunk of rows to ``statistics_`` and refit from all rows seen so far."""
        solver = self._validated_solver()
        matrix = as_matrix(X)
        statistics = self.statistics_ or SufficientStatistics(n_features=max(matrix.shape[1], 1))
        self.statistics_ = statistics.update(matrix, y)
        self._check_row_count(statistics.n_samples)
        return self._fit(statistics, solver, None)

    def _check_row_count(self, n_samples: int) -> None:
        needed = 2 if self.fit_intercept else 1
        if n_samples < needed:
            reason = "with an intercept" if self.fit_intercept else "at all"
            raise TooFewRowsError(f"need at least {needed} rows to fit {reason}, got {n_samples}")

    def _fit(
        self, statistics: SufficientStatistics, solver: str, data: _solvers.Chunks | None
    ) -> LinearRegressor:
        n_features = statistics.n_features
        if self.fit_intercept:
            gram, xty, yty = statistics.xx, statistics.xy, statistics.yy
            x_offset, y_offset = statistics.x_mean, statistics.y_mean
        else:
            gram, xty, yty = statistics.gram, statistics.xty, statistics.yty
            x_offset, y_offset = np.zeros(n_features), 0.0
        scale = np.ones(n_features)
        if self.standardize:
            std = statistics.x_std
            scale = np.where(std > 0, std, 1.0)
        rows = None
        if data is not None:
            rows = _solvers.Rows(data, n_features, x_offset, y_offset, scale, self.fit_intercept)
        problem = _solvers.Problem(
            gram=gram / np.outer(scale, scale),
            xty=xty / scale,
            yty=yty,
            n_samples=statistics.n_samples,
            rows=rows,
        )
        options = _solvers.Options(int(self.max_iter), float(self.tol), self.learning_rate)
        solution = _solvers.solve(problem, self._penalty(statistics.n_samples), solver, options)
        self.coef_ = solution.coef / scale
        self.intercept_ = self._intercept(solution, x_offset, y_offset)
        self.n_iter_ = solution.n_iter
        self.solver_ = solution.solver
        self.n_features_in_ = n_features
        return self

    def _intercept(self, solution: _solvers.Solution, x_offset: Array, y_offset: float) -> float:
        """The solver's own intercept when it refined one; else the centring identity ȳ - x̄·w."""
        if not self.fit_intercept:
            return 0.0
        if solution.intercept is not None:
            return solution.intercept
        return float(y_offset - x_offset @ self.coef_)

    # -- using the fit ----------------------------------------------------------------------

    def predict(self, X: ArrayLike) -> Array:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this LinearRegressor is not fitted yet; call fit or fit_statistics first")
        matrix = as_matrix(X)
        check_n_features(matrix, self.n_features_in_, "the fitted model")
        prediction: Array = matrix @ self.coef_ + self.intercept_
        if not np.isfinite(prediction).all():
            raise_non_finite(matrix, None)
        return prediction

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Coefficient of determination R² of the prediction (1 is perfect, 0 predicts the mean)."""
        matrix, target = as_matrix(X), as_vector(y)
        check_rows_match(matrix, target)
        prediction = self.predict(matrix)
        residual = float(((target - prediction) ** 2).sum())
        total = float(((target - target.mean()) ** 2).sum())
        return 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)

    def __repr__(self) -> str:
        changed = {name: value for name, value in self.get_params().items() if value != _DEFAULTS[name]}
        return f"LinearRegressor({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


_DEFAULTS: dict[str, Any] = {
    name: parameter.default for name, parameter in inspect.signature(LinearRegressor).parameters.items()
}
