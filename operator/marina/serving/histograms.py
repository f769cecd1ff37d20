"""Serving rows counted into the training split's quantile bins, per time window.

The operator (or anyone) compares these counts with the reference the model artifact carries to
measure drift. Rows come in batches (`marina.serving.recording` buffers the answered requests), and
each feature of a batch is binned by one vectorised search. Windows are aligned to multiples of
`window_seconds` of the wall clock, so windows of different pods line up and can be added; the last
`keep` complete windows are kept, plus the one being filled.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from marina.data.distribution import Counts, Reference, bin_counts

DEFAULT_WINDOW_SECONDS = 60.0
DEFAULT_WINDOWS_KEPT = 60


@dataclass
class Window:
    """Rows counted from `start` (inclusive) to `end` (exclusive), epoch seconds."""

    start: float
    end: float
    rows: int
    features: list[Counts]
    prediction: Counts

    def to_dict(self, feature_names: Sequence[str], complete: bool) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "complete": complete,
            "rows": self.rows,
            "features": {name: c.tolist() for name, c in zip(feature_names, self.features, strict=True)},
            "prediction": self.prediction.tolist(),
        }


class WindowedHistograms:
    """Per-window and cumulative counts of serving inputs and predictions in the reference bins."""

    def __init__(
        self,
        reference: Reference,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        keep: int = DEFAULT_WINDOWS_KEPT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reference = reference
        self.window_seconds = window_seconds
        self.clock = clock
        self._feature_edges = [h.edge_array for h in reference.features]
        self._prediction_edges = reference.prediction.edge_array
        self.complete: deque[Window] = deque(maxlen=keep)
        self.current = self._empty(self._window_start(clock()))
        self.total = self._empty(self.current.start)  # since start-up: the Prometheus counters

    def add(self, features: np.ndarray, predictions: np.ndarray, at: float | None = None) -> None:
        """Count a batch of rows that arrived at time `at` (default: now) into its window."""
        self._rotate_if_due(self.clock() if at is None else at)
        if not len(predictions):
            return
        counted = [bin_counts(edges, features[:, j]) for j, edges in enumerate(self._feature_edges)]
        counted_predictions = bin_counts(self._prediction_edges, predictions)
        for window in (self.current, self.total):
            window.rows += len(predictions)
            for total, counts in zip(window.features, counted, strict=True):
                total += counts
            window.prediction += counted_predictions

    def windows(self) -> list[Window]:
        """The complete windows, oldest first, then the one being filled."""
        self._rotate_if_due(self.clock())
        return [*self.complete, self.current]

    def _rotate_if_due(self, now: float) -> None:
        if now < self.current.end:
            return
        self.complete.append(self.current)
        self.current = self._empty(self._window_start(now))

    def _window_start(self, now: float) -> float:
        return math.floor(now / self.window_seconds) * self.window_seconds

    def _empty(self, start: float) -> Window:
        return Window(
            start=start,
            end=start + self.window_seconds,
            rows=0,
            features=[np.zeros(len(edges) + 1, dtype=np.int64) for edges in self._feature_edges],
            prediction=np.zeros(len(self._prediction_edges) + 1, dtype=np.int64),
        )
