"""Reference distributions: quantile edges, one binning convention, a validated JSON form."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from marina.data import distribution
from marina.data.distribution import FORMAT, Histogram, Reference, bin_counts, bin_index, quantile_edges

EPS = float(np.finfo(np.float64).eps)


def test_edges_are_the_inner_quantiles_and_bins_hold_equal_shares() -> None:
    values = np.arange(1000, dtype=np.float64)
    edges = quantile_edges(values, bins=10)
    np.testing.assert_array_equal(edges, np.quantile(values, np.arange(1, 10) / 10, method="inverted_cdf"))
    counts = bin_counts(edges, values)
    assert counts.sum() == 1000 and counts.min() >= 99 and counts.max() <= 101


def test_a_value_on_an_edge_goes_to_the_bin_above_and_outliers_are_kept() -> None:
    edges = np.array([1.0, 2.0])
    np.testing.assert_array_equal(
        bin_index(edges, np.array([-1e300, 0.999, 1.0, 1.5, 2.0, 1e300])), [0, 0, 1, 1, 2, 2]
    )


def test_ties_collapse_edges_so_a_binary_feature_gets_two_used_bins() -> None:
    values = np.array([0.0] * 70 + [1.0] * 30)
    edges = quantile_edges(values)
    np.testing.assert_array_equal(edges, [0.0, 1.0])
    np.testing.assert_array_equal(bin_counts(edges, values), [0, 70, 30])


def test_non_finite_values_are_ignored_for_edges_and_an_empty_column_has_one_bin() -> None:
    assert quantile_edges(np.array([np.nan, np.inf])).size == 0
    np.testing.assert_array_equal(quantile_edges(np.array([np.nan, 1.0, 2.0, 3.0]), bins=2), [2.0])


def test_reference_round_trips_through_json_form() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 3))
    reference = Reference.of(x, x @ np.array([1.0, -2.0, 0.5]), bins=8)
    document = reference.to_dict(["a", "b", "c"])
    assert document["format"] == FORMAT and sum(document["features"]["b"]["counts"]) == 500
    assert Reference.from_dict(document, ["a", "b", "c"]) == reference


def broken(change: dict[str, Any]) -> dict[str, Any]:
    document = Reference.of(np.arange(20.0).reshape(10, 2), np.arange(10.0), bins=4).to_dict(["a", "b"])
    for path, value in change.items():
        target = document
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "v0"}, "reference.format"),
        ({"features.b": None}, "reference.features.b: expected an object"),
        ({"features.a.counts": [1, 2]}, "reference.features.a: expected edges and counts"),
        ({"features.a.edges": [3.0, 2.0, 4.0]}, "reference.features.a.edges: must increase strictly"),
        ({"features.a.counts": [1, -1, 2, 3]}, "reference.features.a.counts"),
        ({"prediction": []}, "reference: expected a prediction histogram"),
    ],
)
def test_a_malformed_reference_is_refused_naming_the_part(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        Reference.from_dict(broken(change), ["a", "b"])


def test_histogram_of_counts_every_row() -> None:
    histogram = Histogram.of(np.linspace(-5, 5, 1001), bins=5)
    assert len(histogram.counts) == len(histogram.edges) + 1 == 5 and sum(histogram.counts) == 1001


# -- comparing histograms ---------------------------------------------------------------------------


@pytest.mark.parametrize("degrees", [1, 2, 3, 9, 10, 29])
def test_chi_square_survival_equals_scipy(degrees: int) -> None:
    from scipy.stats import chi2

    for x in (1e-3, 0.5, 1.0, 7.0, 30.0, 120.0):
        expected = float(chi2.sf(x, degrees))
        # a handful of rounded terms, each within a few ulps: relative error a small multiple of eps
        assert distribution.chi_square_survival(x, degrees) == pytest.approx(expected, rel=64 * EPS * degrees)


def test_psi_by_its_definition_with_the_empty_bin_correction() -> None:
    reference, serving = [50, 30, 20], [20, 30, 0]
    r = np.array([0.5, 0.3, 0.2])
    s = np.array([20, 30, 0.5]) / 50.5
    expected = float(np.sum((s - r) * np.log(s / r)))
    # three non-negative terms (no cancellation), each a quotient, a log and a product: a few ulps each
    assert distribution.population_stability_index(reference, serving) == pytest.approx(
        expected, rel=16 * EPS
    )
    assert distribution.population_stability_index(reference, reference) == 0.0


def test_jensen_shannon_distance_is_zero_for_equal_shares_and_one_for_disjoint_ones() -> None:
    assert distribution.jensen_shannon_distance([10, 20, 30], [20, 40, 60]) == 0.0
    # two terms of ½·log2(2) and a square root: each rounds by at most an ulp
    assert distribution.jensen_shannon_distance([10, 0], [0, 10]) == pytest.approx(1.0, rel=4 * EPS)


def test_psi_p_values_are_calibrated_without_drift_and_tiny_with_it() -> None:
    """Fresh reference and serving samples of one distribution: about 5% of p-values fall below 0.05.
    400 seeded trials; the binomial 99.9% interval of the count for p = 0.05 is [7, 37]."""
    rng = np.random.default_rng(2024)
    below = 0
    for _ in range(400):
        histogram = Histogram.of(rng.normal(size=353))
        serving = distribution.bin_counts(histogram.edge_array, rng.normal(size=20_000))
        below += distribution.psi_p_value(histogram.counts, serving) < 0.05
    assert 7 <= below <= 37
    histogram = Histogram.of(rng.normal(size=353))
    shifted = distribution.bin_counts(histogram.edge_array, rng.normal(size=20_000) + 1.0)  # one std
    assert distribution.population_stability_index(histogram.counts, shifted) > 0.25
    assert distribution.psi_p_value(histogram.counts, shifted) < 1e-12


def test_quantile_edges_of_columns_are_each_columns_quantile_edges() -> None:
    """One sort of the table gives what numpy's inverted-CDF quantiles give column by column, for every
    row count (n·p rounding included) and with missing cells."""
    rng = np.random.default_rng(0)
    for rows in [*range(1, 120), 997, 1000, 4096]:
        values = rng.standard_normal((rows, 3))
        values[rng.random(values.shape) < 0.1] = np.nan
        for j, edges in enumerate(distribution.quantile_edges_of_columns(values)):
            assert edges.tolist() == quantile_edges(values[:, j]).tolist(), (rows, j)
