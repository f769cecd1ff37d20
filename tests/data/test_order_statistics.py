"""Exact medians from repeated chunked reads equal numpy.nanmedian bit for bit."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from marina.data import order_statistics


def medians(values: np.ndarray, chunk: int = 333) -> np.ndarray:
    def read() -> Iterator[np.ndarray]:
        for start in range(0, len(values), chunk):
            yield values[start : start + chunk]

    present = ~np.isnan(values)
    return order_statistics.exact_medians(
        read, present.sum(axis=0), np.nanmin(values, 0), np.nanmax(values, 0)
    )


@pytest.mark.parametrize("rows", [1, 2, 3, 10, 1_001, 20_000])
def test_medians_equal_numpy(rows: int) -> None:
    rng = np.random.default_rng(rows)
    values = rng.standard_normal((rows, 3)) * [1.0, 1e-300, 1e300]
    values[:, 2] = np.round(values[:, 2] / 1e300)  # many ties
    values[1:][rng.random((rows - 1, 3)) < 0.2] = np.nan  # row 0 stays, so no column is empty
    # Equal as numbers: among tied zeros numpy may pick -0.0 where the sort picks 0.0.
    np.testing.assert_array_equal(medians(values), np.nanmedian(values, axis=0))


def test_several_narrowing_passes_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny collection limit the intervals narrow many times, through ties and a heavy tail."""
    monkeypatch.setattr(order_statistics, "COLLECT", 8)
    monkeypatch.setattr(order_statistics, "BINS", 4)
    rng = np.random.default_rng(5)
    values = np.column_stack([rng.standard_cauchy(50_000), np.repeat([1.0, 2.0, 2.0, 3.0], 12_500)])
    np.testing.assert_array_equal(medians(values, chunk=4_096), np.median(values, axis=0))
