"""The read-ahead thread: order, errors at their place, bounded look-ahead, and a clean stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from marina.data.readahead import ahead


def test_results_come_in_order() -> None:
    assert list(ahead(range(100), lambda i: i * i)) == [i * i for i in range(100)]


def test_an_error_is_raised_after_the_results_before_it() -> None:
    def work(i: int) -> int:
        if i == 3:
            raise ValueError("item 3")
        return i

    seen: list[int] = []
    with pytest.raises(ValueError, match="item 3"):
        for value in ahead(range(10), work):
            seen.append(value)
    assert seen == [0, 1, 2]


def test_the_thread_reads_at_most_depth_ahead_and_stops_when_closed() -> None:
    produced: list[int] = []
    released = threading.Event()

    def items() -> Iterator[int]:
        try:
            for i in range(1_000):
                produced.append(i)
                yield i
        finally:
            released.set()

    results = ahead(items(), lambda i: i, depth=2)
    assert next(results) == 0
    results.close()  # joins the thread: nothing runs on after this returns
    assert released.is_set() or len(produced) <= 4
    assert len(produced) <= 4  # the one handed out, two queued and one waiting for a slot
