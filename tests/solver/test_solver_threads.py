"""Rows shared among threads: the shares, how many, BLAS held to one thread meanwhile, and errors located."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from marina.solver import NonFiniteError, SufficientStatistics, _threads
from marina.system.cpu import available_cpus


@pytest.mark.parametrize(("rows", "count"), [(10, 1), (10, 3), (7, 7), (1_000_001, 2)])
def test_shares_cover_the_rows_in_order_and_near_equal(rows: int, count: int) -> None:
    parts = _threads.shares(rows, count)
    assert len(parts) == count
    assert [p.start for p in parts[1:]] == [p.stop for p in parts[:-1]]
    assert (parts[0].start, parts[-1].stop) == (0, rows)
    sizes = [p.stop - p.start for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_as_many_shares_as_blas_has_threads_when_the_rows_are_many() -> None:
    many = 100 * _threads.MIN_SHARE_ELEMENTS
    cpus = available_cpus()
    with threadpool_limits(limits=1, user_api="blas"):
        assert _threads.share_count(many, 1) == 1  # a caller holding BLAS to one thread keeps it
    with threadpool_limits(limits=2, user_api="blas"):
        assert _threads.share_count(many, 1) == min(2, cpus)
        assert _threads.share_count(_threads.MIN_SHARE_ELEMENTS - 1, 1) == 1  # too few to pay


def test_without_threadpoolctl_the_calling_thread_does_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_threads, "_controller", lambda: None)
    assert _threads.share_count(100 * _threads.MIN_SHARE_ELEMENTS, 1) == 1


def test_each_share_runs_on_one_blas_thread_and_the_count_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_threads, "share_count", lambda rows, width: 3)
    with threadpool_limits(limits=2, user_api="blas"):
        seen = _threads.map_shares(lambda rows: (rows, _threads.blas_threads()), 9, 1)
        assert _threads.blas_threads() == 2
    assert seen == [(slice(0, 3), 1), (slice(3, 6), 1), (slice(6, 9), 1)]


def test_a_non_finite_value_in_a_later_share_is_located(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_threads, "share_count", lambda rows, width: 3)
    X, y = np.ones((30, 4)), np.ones(30)
    X[25, 2] = np.inf
    stats = SufficientStatistics(4).update(X[:5], y[:5])
    with pytest.raises(NonFiniteError, match="X contains infinity at row 30, column 2"):
        stats.update(X, y)
