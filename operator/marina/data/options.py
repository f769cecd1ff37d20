"""What a preparation keeps, cleans and splits (`PrepareOptions`, as a Dataset's fields), the feature
columns it selects and the seeded permutation that splits a small table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marina import contract
from marina.data.table import DataError


def _dataset_default(path: str) -> Any:
    return contract.DATASET.default(f"spec.{path}")


@dataclass(frozen=True)
class PrepareOptions:
    """What to keep, how to clean and how to split; validated on construction, as the Dataset's fields."""

    target: str = _dataset_default("target")
    features: tuple[str, ...] | None = None
    test_fraction: float = _dataset_default("split.testFraction")
    seed: int = _dataset_default("split.seed")
    missing: str = _dataset_default("cleaning.missing")
    max_categories: int = _dataset_default("cleaning.maxCategories")

    def __post_init__(self) -> None:
        for where, path, value in (
            ("target", "target", self.target),
            ("test fraction", "split.testFraction", self.test_fraction),
            ("seed", "split.seed", self.seed),
            ("missing", "cleaning.missing", self.missing),
            ("max categories", "cleaning.maxCategories", self.max_categories),
        ):
            contract.DATASET.at(f"spec.{path}").check(where, value)
        if self.features is not None:
            if not self.features:
                raise contract.SpecError("features: the list of feature columns is empty")
            duplicated = sorted({f for f in self.features if self.features.count(f) > 1})
            if duplicated:
                raise contract.SpecError(
                    f"features: {', '.join(map(repr, duplicated))} listed more than once"
                )
            if self.target in self.features:
                raise contract.SpecError(
                    f"features: the target column {self.target!r} cannot also be a feature"
                )


def select_features(columns: Sequence[str], options: PrepareOptions) -> tuple[str, ...]:
    """The feature columns, in the requested order (all but the target when none are named)."""
    if options.target not in columns:
        raise DataError(f"target column {options.target!r} not found; columns are: {_listing(columns)}")
    if options.features is None:
        features = tuple(c for c in columns if c != options.target)
    else:
        unknown = [f for f in options.features if f not in columns]
        if unknown:
            raise DataError(f"feature column {unknown[0]!r} not found; columns are: {_listing(columns)}")
        features = options.features
    if not features:
        raise DataError(f"no feature columns: the data has only the target column {options.target!r}")
    return features


def _listing(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def split_indices(rows: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded permutation: the first ceil(rows * fraction) go to test; both kept in input order."""
    n_test = min(max(math.ceil(rows * test_fraction), 1), rows - 1)
    permutation = np.random.default_rng(seed).permutation(rows)
    return np.sort(permutation[n_test:]), np.sort(permutation[:n_test])
