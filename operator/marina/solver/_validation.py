"""Input checks shared by the estimator and the sufficient statistics.

Checks are cheap on the happy path: finiteness of a large ``X`` is inferred from the
statistics computed anyway, and only when those are not finite is the data scanned to say
where the first bad value is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from marina.contract import Bound
from marina.solver.errors import InvalidParameterError, NonFiniteError, ShapeMismatchError

Array = NDArray[np.float64]


def as_matrix(X: ArrayLike, name: str = "X") -> Array:
    """``X`` as a 2-D float64 array, without copying when it already is one."""
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeMismatchError(f"{name} must be a numeric 2-D array: {exc}") from exc
    if array.ndim != 2:
        raise ShapeMismatchError(f"{name} must be 2-D (rows x features), got shape {array.shape}")
    return array


def as_vector(y: ArrayLike, name: str = "y") -> Array:
    """``y`` as a 1-D float64 array; a single-column 2-D array is accepted and flattened."""
    try:
        array = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeMismatchError(f"{name} must be a numeric 1-D array: {exc}") from exc
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ShapeMismatchError(f"{name} must be 1-D (one target per row), got shape {array.shape}")
    return array


def check_rows_match(X: Array, y: Array) -> None:
    if X.shape[0] != y.shape[0]:
        raise ShapeMismatchError(
            f"X has {X.shape[0]} rows but y has {y.shape[0]} (X shape {X.shape}, y shape {y.shape})"
        )


def check_n_features(X: Array, expected: int, what: str) -> None:
    if X.shape[1] != expected:
        raise ShapeMismatchError(f"X has {X.shape[1]} features but {what} has {expected} (X shape {X.shape})")


def raise_non_finite(X: Array, y: Array | None, row_offset: int = 0) -> None:
    """Raise a ``NonFiniteError`` naming the first bad entry; called once statistics went non-finite."""
    bad_rows = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad_rows.size:
        row = int(bad_rows[0])
        column = int(np.flatnonzero(~np.isfinite(X[row]))[0])
        value = X[row, column]
        raise NonFiniteError(f"X contains {_describe(value)} at row {row + row_offset}, column {column}")
    if y is not None:
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            row = int(bad[0])
            raise NonFiniteError(f"y contains {_describe(y[row])} at row {row + row_offset}")
    raise NonFiniteError(
        "the data overflows float64 when squared (values beyond about 1e154); rescale the features"
    )


def _describe(value: float) -> str:
    return "NaN" if math.isnan(value) else "infinity"


@dataclass(frozen=True)
class OneOf:
    """The parameter must be one of a fixed set of strings."""

    options: tuple[str, ...]

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or value not in self.options:
            valid = ", ".join(repr(option) for option in self.options)
            raise InvalidParameterError(f"{name}: unknown value {value!r}; valid values are {valid}")


@dataclass(frozen=True)
class Interval:
    """A finite real number (or an int when ``integer``) in [low, high] or (low, high]."""

    low: float
    high: float = math.inf
    low_inclusive: bool = True
    integer: bool = False
    allow_none: bool = False

    @classmethod
    def of(cls, bound: Bound, integer: bool = False) -> Interval:
        """The interval a contract field's range states (a TrainingJob's spec.model field)."""
        if bound.exclusive_maximum:
            raise ValueError("an exclusive maximum has no Interval")
        low = -math.inf if bound.minimum is None else float(bound.minimum)
        high = math.inf if bound.maximum is None else float(bound.maximum)
        return cls(low, high, low_inclusive=not bound.exclusive_minimum, integer=integer)

    def check(self, name: str, value: Any) -> None:
        if value is None and self.allow_none:
            return
        kinds: tuple[type, ...] = (int, np.integer) if self.integer else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, kinds):
            expected = "an integer" if self.integer else "a real number"
            raise InvalidParameterError(f"{name}: expected {expected}, got {value!r}")
        number = float(value)  # type: ignore[arg-type]  # checked numeric above
        above_low = number >= self.low if self.low_inclusive else number > self.low
        if not (math.isfinite(number) and above_low and number <= self.high):
            raise InvalidParameterError(f"{name}: {value!r} is outside {self._describe()}")

    def _describe(self) -> str:
        left = "[" if self.low_inclusive else "("
        right = ")" if math.isinf(self.high) else "]"
        high = "inf" if math.isinf(self.high) else f"{self.high:g}"
        return f"{left}{self.low:g}, {high}{right}"


@dataclass(frozen=True)
class Boolean:
    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, bool | np.bool_):
            raise InvalidParameterError(f"{name}: expected True or False, got {value!r}")


Constraint = OneOf | Interval | Boolean


def check_parameters(constraints: Mapping[str, Constraint], values: Mapping[str, Any]) -> None:
    """Validate every parameter against its declared constraint (scikit-learn's style)."""
    for name, constraint in constraints.items():
        constraint.check(name, values[name])
