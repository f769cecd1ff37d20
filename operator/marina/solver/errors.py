"""Typed errors of the solver: one base class, one subclass per kind of bad input.

Every error is a ``ValueError`` (via ``SolverError``) so callers that only know Python's
conventions still catch it, and every message names what is wrong and where.
"""

from __future__ import annotations


class SolverError(ValueError):
    """Base class of everything the solver raises on bad input or a failed fit."""


class ShapeMismatchError(SolverError):
    """Arrays have the wrong number of dimensions, rows or features."""


class NonFiniteError(SolverError):
    """The data holds NaN or infinity (or overflows when squared)."""


class TooFewRowsError(SolverError):
    """Not enough rows to fit the requested model."""


class InvalidParameterError(SolverError):
    """A hyper-parameter is unknown, of the wrong type or out of range."""


class IncompatibleSolverError(InvalidParameterError):
    """The chosen solver cannot minimise the chosen penalty (e.g. ``normal`` with ``l1``)."""


class NotFittedError(SolverError):
    """``predict`` or ``score`` was called before ``fit``."""


class DivergenceError(SolverError):
    """Gradient descent blew up: the learning rate is too large for the data's scale."""


class StatisticsFormatError(SolverError):
    """A serialised ``SufficientStatistics`` document is malformed."""


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at ``max_iter`` before meeting ``tol``."""
