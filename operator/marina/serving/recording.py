"""Answered rows, buffered on the hot path and handed to the monitoring in batches.

Every answered request feeds the running statistics, the drift histograms, the canary's traffic
counters and the extrapolation counts. Done per request, that was a dozen numpy calls and a list entry
each (a fifth of a single-row request's CPU, measured with py-spy under wrk). Here a request costs two
slice copies into preallocated buffers; every `rows` rows (or when someone reads, or when the drift
window the pending rows belong to closes) the buffers go to every sink as one contiguous batch, so
each sink does one vectorised pass over up to `rows` rows. A flush takes about 0.1 ms at 1,024 rows of
10 features: short enough not to show in a p99.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

#: A sink receives (features, predictions, the time the rows arrived) for a batch of answered rows.
Sink = Callable[[np.ndarray, np.ndarray, float], None]
#: Rows buffered at most (fewer for wide models: the buffer stays within BUFFER_CELLS floats).
BUFFER_ROWS = 1024
BUFFER_CELLS = 1 << 16


class Recorder:
    """Rows copied into buffers of `rows` x `width`, delivered to `sinks` when full, when read, or when
    the window they arrived in (of `window_seconds`, aligned to the wall clock) has closed. A request of
    more rows than the buffer holds is delivered as it is, without a copy."""

    def __init__(
        self,
        width: int,
        sinks: Sequence[Sink],
        window_seconds: float = math.inf,
        clock: Callable[[], float] = time.time,
        rows: int | None = None,
    ) -> None:
        capacity = rows or min(BUFFER_ROWS, max(16, BUFFER_CELLS // max(width, 1)))
        self.features = np.empty((capacity, width))
        self.predictions = np.empty(capacity)
        self.sinks = tuple(sinks)
        self.window_seconds, self.clock = window_seconds, clock
        self.pending = 0
        self.arrived = 0.0  # when the pending rows arrived (they all lie in one window)
        self.window_end = -math.inf  # the pending rows must be delivered before this time

    def add(self, features: np.ndarray, predictions: np.ndarray) -> None:
        """One request's answered rows: (rows, width) features and their predictions."""
        now = self.clock()
        if now >= self.window_end:  # a new window: what is pending belongs to the one before
            self.flush()
            self.window_end = self._window_end(now)
        if not self.pending:
            self.arrived = now
        start, count = self.pending, len(predictions)
        stop = start + count
        if stop > len(self.predictions):
            self.flush()
            if count >= len(self.predictions):
                self._deliver(features, predictions, now)
                return
            self.arrived, start, stop = now, 0, count
        self.features[start:stop] = features
        self.predictions[start:stop] = predictions
        self.pending = stop
        if stop == len(self.predictions):
            self.flush()

    def flush(self) -> None:
        if self.pending:
            count, self.pending = self.pending, 0
            self._deliver(self.features[:count], self.predictions[:count], self.arrived)

    def _deliver(self, features: np.ndarray, predictions: np.ndarray, arrived: float) -> None:
        for sink in self.sinks:
            sink(features, predictions, arrived)

    def _window_end(self, now: float) -> float:
        if math.isinf(self.window_seconds):
            return math.inf
        return (math.floor(now / self.window_seconds) + 1) * self.window_seconds
