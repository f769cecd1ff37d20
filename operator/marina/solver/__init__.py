"""Marina's linear-regression solver: numpy only, scikit-learn's meaning of every parameter.

>>> from marina.solver import LinearRegressor
>>> model = LinearRegressor(penalty="l2", alpha=1.0).fit(X, y)   # doctest: +SKIP
"""

from marina.solver._solvers import PENALTIES, SOLVERS, Chunks
from marina.solver.errors import (
    ConvergenceWarning,
    DivergenceError,
    IncompatibleSolverError,
    InvalidParameterError,
    NonFiniteError,
    NotFittedError,
    ShapeMismatchError,
    SolverError,
    StatisticsFormatError,
    TooFewRowsError,
)
from marina.solver.estimator import LinearRegressor
from marina.solver.statistics import SufficientStatistics

__all__ = [
    "PENALTIES",
    "SOLVERS",
    "Chunks",
    "ConvergenceWarning",
    "DivergenceError",
    "IncompatibleSolverError",
    "InvalidParameterError",
    "LinearRegressor",
    "NonFiniteError",
    "NotFittedError",
    "ShapeMismatchError",
    "SolverError",
    "StatisticsFormatError",
    "SufficientStatistics",
    "TooFewRowsError",
]
