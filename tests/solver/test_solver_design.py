"""The design's factor: leverages as exact as the route allows (κ²·eps from the Gram, κ·eps from the
rows), the same from rows read in chunks, rank-deficient designs handled, and a lossless round trip."""

from __future__ import annotations

import json
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
from numpy.typing import NDArray

from bounds import condition, leverage_tolerance
from marina.solver import StatisticsFormatError, SufficientStatistics
from marina.solver.design import DesignFactor, design_factor

Array = NDArray[np.float64]
Design = Callable[[np.random.Generator], tuple[Array, Array]]


def exact_leverages(X: Array, rows: Array, intercept: bool) -> Array:
    """aᵀ(AᵀA)⁻¹a at 50 digits, from the float64 rows as they are."""
    mpmath.mp.dps = 50
    design = np.column_stack([np.ones(len(X)), X]) if intercept else X
    points = np.column_stack([np.ones(len(rows)), rows]) if intercept else rows
    matrix = mpmath.matrix(design.tolist())
    inverse = mpmath.inverse(matrix.T * matrix)
    return np.array(
        [float((mpmath.matrix(p.tolist()).T * inverse * mpmath.matrix(p.tolist()))[0]) for p in points]
    )


def well_conditioned(rng: np.random.Generator) -> tuple[Array, Array]:
    scales, offsets = np.array([1.0, 10.0, 1e3, 0.1, 1.0]), np.array([0.0, 5.0, 1e4, 0.0, -2.0])
    X = rng.normal(size=(300, 5)) * scales + offsets
    return X, X @ rng.normal(size=5) + rng.normal(size=300)


def collinear(rng: np.random.Generator) -> tuple[Array, Array]:
    """x2 = x1 + 1e-7 noise: κ ~ 1e7 after centring and scaling."""
    X = rng.normal(size=(300, 4)) + np.array([5.0, 0.0, -3.0, 1.0])
    X[:, 1] = X[:, 0] + 1e-7 * rng.normal(size=300)
    return X, X @ rng.normal(size=4) + rng.normal(size=300)


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize(
    ("design", "method"), [(well_conditioned, "gram"), (collinear, "qr")], ids=["gram", "qr"]
)
def test_leverages_equal_the_exact_ones(design: Design, method: str, intercept: bool) -> None:
    rng = np.random.default_rng(4)
    X, y = design(rng)
    moves = 0.01 * rng.normal(size=(10, X.shape[1]))
    moves[:, 1] = moves[:, 0]  # new rows keep the training rows' relation between x1 and x2
    rows = X[:10] + moves
    factor = design_factor(SufficientStatistics.from_arrays(X, y), intercept, rows=lambda: [(X, y)])
    assert factor.method == method
    kappa = condition(X, intercept)
    exact = exact_leverages(X, rows, intercept)
    bound = leverage_tolerance(kappa, *X.shape, method)
    assert np.max(np.abs(factor.leverages(rows) / exact - 1)) <= bound


def test_rows_read_in_chunks_give_the_same_factor() -> None:
    rng = np.random.default_rng(5)
    X, y = collinear(rng)
    statistics = SufficientStatistics.from_arrays(X, y)
    whole = design_factor(statistics, True, rows=lambda: [(X, y)])
    chunked = design_factor(
        statistics, True, rows=lambda: [(X[i : i + 37], y[i : i + 37]) for i in range(0, 300, 37)]
    )
    bound = leverage_tolerance(condition(X), *X.shape, "qr")
    assert np.max(np.abs(chunked.leverages(X[:20]) / whole.leverages(X[:20]) - 1)) <= bound


@pytest.mark.parametrize("read_rows", [False, True], ids=["from-statistics", "from-rows"])
def test_a_one_hot_block_beside_an_intercept_is_rank_deficient_and_leaving_its_span_is_huge(
    read_rows: bool,
) -> None:
    """One-hot columns sum to the intercept's: the pseudo-inverse's leverage inside the span, and a row
    with none of the categories (outside the span) gets a leverage no training row comes near."""
    rng = np.random.default_rng(6)
    categories = np.eye(3)[rng.integers(0, 3, 400)]
    X = np.column_stack([rng.normal(size=(400, 2)), categories])
    y = X @ rng.normal(size=5) + rng.normal(size=400)
    factor = design_factor(
        SufficientStatistics.from_arrays(X, y), True, rows=(lambda: [(X, y)]) if read_rows else None
    )
    assert factor.rank == 1 + 4  # the intercept and four independent directions
    design = np.column_stack([np.ones(400), X])
    inside = np.column_stack([rng.normal(size=(3, 2)), np.eye(3)])
    points = np.column_stack([np.ones(3), inside])
    pseudo = np.einsum("ij,jk,ik->i", points, np.linalg.pinv(design.T @ design), points)
    # pinv's own error on this well-scaled rank-deficient Gram is κ²·eps of the kept part
    kept = np.linalg.svd(design - design.mean(axis=0), compute_uv=False)[:4]
    bound = leverage_tolerance(float(kept[0] / kept[-1]), 400, 5, "gram")
    assert np.max(np.abs(factor.leverages(inside) / pseudo - 1)) <= bound
    outside = np.column_stack([rng.normal(size=(1, 2)), np.zeros((1, 3))])
    assert factor.leverages(outside)[0] > 1e6 * factor.leverages(X).max()


def test_the_factor_round_trips_through_json_exactly() -> None:
    rng = np.random.default_rng(7)
    X, y = well_conditioned(rng)
    factor = design_factor(SufficientStatistics.from_arrays(X, y), True)
    document = json.loads(json.dumps(factor.to_dict()))
    again = DesignFactor.from_dict(document, X.shape[1])
    np.testing.assert_array_equal(again.leverages(X), factor.leverages(X))
    assert again.rank == factor.rank == X.shape[1] + 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "lu"}, "design.method"),
        ({"rows": 0}, "design.rows"),
        ({"scale": [1.0, 0.0]}, "every scale must be positive"),
        ({"triangle": [[1.0]]}, "expected 2 rows"),
        ({"offset": [1.0, float("nan")]}, "design.offset"),
    ],
)
def test_a_malformed_factor_is_refused_by_field(change: dict[str, object], message: str) -> None:
    document = {"method": "gram", "rows": 10, "intercept": True, "offset": [0.0, 0.0], "scale": [1.0, 1.0]}
    document["triangle"] = [[1.0, 0.0], [1.0]]
    with pytest.raises(StatisticsFormatError, match=message):
        DesignFactor.from_dict({**document, **change}, 2)
