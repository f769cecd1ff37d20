"""Work on the next items of a stream in a thread while the consumer handles the current one.

Reading from storage, gunzipping, parsing CSV with polars, encoding Parquet and hashing release the GIL,
so on two cores a reader thread and the consumer overlap; the queue's depth bounds the memory held.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
_POLL_SECONDS = 0.1  # how soon a stopped consumer releases a producer blocked on a full queue


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class _End:
    pass


@dataclass
class _Channel(Generic[Result]):
    slots: queue.Queue[Result | _Failure | _End]
    stopped: threading.Event

    def put(self, value: Result | _Failure | _End) -> bool:
        """False once the consumer has stopped: the producer then ends."""
        while not self.stopped.is_set():
            try:
                self.slots.put(value, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False


def ahead(items: Iterable[Item], work: Callable[[Item], Result], depth: int = 2) -> Iterator[Result]:
    """`work(item)` for each item in order, computed by one thread up to `depth` results ahead. An error
    in the thread (from the items or the work) is raised here at its place in the order; closing the
    iterator stops the thread before it returns, so the items' resources can then be released."""
    channel: _Channel[Result] = _Channel(queue.Queue(maxsize=depth), threading.Event())

    def produce() -> None:
        try:
            for item in items:
                if not channel.put(work(item)):
                    return
            channel.put(_End())
        except BaseException as error:  # handed to the consumer, which raises it
            channel.put(_Failure(error))

    thread = threading.Thread(target=produce, name="marina-readahead", daemon=True)
    thread.start()
    try:
        while True:
            value = channel.slots.get()
            if isinstance(value, _End):
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value
    finally:
        channel.stopped.set()
        thread.join()
