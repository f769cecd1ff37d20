"""Data for the solver tests: scikit-learn's diabetes set and seeded synthetic designs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_diabetes

Array = NDArray[np.float64]
Dataset = tuple[Array, Array]


def synthetic(n: int = 600, d: int = 8, offset: float = 3.0, seed: int = 0) -> Dataset:
    """Correlated features with offsets and unequal scales, a sparse-ish truth and noise."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(d) + 0.3 * rng.standard_normal((d, d))
    X = rng.standard_normal((n, d)) @ mixing * rng.uniform(0.5, 4.0, d) + offset * rng.standard_normal(d)
    truth = np.where(rng.random(d) < 0.6, rng.normal(0, 3, d), 0.0)
    y = X @ truth + 2.0 + rng.normal(0, 1.0, n)
    return X, y


def diabetes() -> Dataset:
    X, y = load_diabetes(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)


DATASETS: dict[str, Callable[[], Dataset]] = {"diabetes": diabetes, "synthetic": synthetic}
