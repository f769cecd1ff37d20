"""Whether the operator is still doing its work, for the liveness probe.

kopf's probe endpoint only shows that the event loop answers HTTP. The reconcilers run in kopf's pool
of worker threads, and a pool whose threads all hang (a call that never returns) would still look
alive while nothing is reconciled. So the background loop proves every few seconds that a worker
thread is free (`pulse`), every reconcile says when it starts and ends (`working`), and `problem`
names what has been stuck for longer than `stall_seconds`: then the probe fails and the kubelet
restarts the container.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Health:
    """The last pulse of the worker pool and the reconciles under way; `problem()` says what is stuck."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._pulse = clock()  # a fresh operator has had no chance to pulse yet
        self._busy: dict[int, tuple[str, float]] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()

    def pulse(self) -> None:
        """A worker thread was free to run this."""
        self._pulse = self._clock()

    @contextmanager
    def working(self, what: str) -> Iterator[None]:
        """Marks `what` (a reconcile, a drift check) as under way while the block runs."""
        with self._lock:
            token = next(self._tokens)
            self._busy[token] = (what, self._clock())
        try:
            yield
        finally:
            with self._lock:
                del self._busy[token]

    def busy(self) -> int:
        with self._lock:
            return len(self._busy)

    def problem(self) -> str | None:
        """What has been stuck longer than stall_seconds, or None while work goes on."""
        now = self._clock()
        with self._lock:
            oldest = min(self._busy.values(), key=lambda item: item[1], default=None)
            busy = len(self._busy)
        if oldest is not None and now - oldest[1] > self.stall_seconds:
            return f"{oldest[0]} has been running for {now - oldest[1]:.0f}s"
        if now - self._pulse > self.stall_seconds:
            return f"no worker thread was free for {now - self._pulse:.0f}s ({busy} reconciles under way)"
        return None
