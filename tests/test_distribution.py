"""Reference distributions: quantile edges, one binning convention, a validated JSON form."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from marina.distribution import FORMAT, Histogram, Reference, bin_counts, bin_index, quantile_edges


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
