"""Cumulative counters of the inference traffic a pod answered, as one small JSON document for the
operator's canary analysis (`GET /v2/models/<m>/traffic`).

The operator compares a canary's pods with the stable ones over each step of a rollout: it reads these
counters when the step starts and again after its pause and takes the difference per pod (as
Prometheus' `increase` does), so the counters only ever grow. The predictions are kept as a count and
the sums of (prediction - origin) and its square, with the pod's first prediction as origin: sums can
be subtracted, and the shift keeps the squares small whatever the predictions' scale. Kept apart from
the Prometheus exposition (`metrics`), which may change its machinery without touching this contract.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

#: Upper bounds of the latency buckets, seconds (the last bucket, beyond them, has no bound): the 1-2.5-5
#: series from 1 ms to 10 s, maxP99LatencySeconds' largest value.
LATENCY_BOUNDS: tuple[float, ...] = (
    *(round(m * 10.0**e, 4) for e in range(-3, 1) for m in (1.0, 2.5, 5.0)),
    10.0,
)
#: The endpoints that answer predictions: only they count.
INFERENCE_ENDPOINTS = frozenset({"v2_infer", "v1_predict", "v1_explain"})
#: From this status on an answer is the server's failure (a 4xx is the request's).
SERVER_ERROR = 500


@dataclass
class Traffic:
    """Requests, server errors, latency buckets and prediction sums since start-up."""

    requests: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    predictions: int = 0
    origin: float | None = None
    total: float = 0.0
    squares: float = 0.0

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """One answered request (any endpoint; only inference ones count)."""
        if endpoint not in INFERENCE_ENDPOINTS:
            return
        self.requests += 1
        self.errors += status >= SERVER_ERROR
        self.latency[bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def predicted(self, predictions: np.ndarray) -> None:
        """A batch of answered predictions (finite)."""
        if len(predictions) == 0:
            return
        values = np.asarray(predictions, dtype=np.float64).ravel()
        if self.origin is None:
            self.origin = float(values[0])
        shifted = values - self.origin
        self.predictions += len(values)
        self.total += float(shifted.sum())
        self.squares += float(np.dot(shifted, shifted))

    def document(self, model: str, version: str) -> dict[str, object]:
        return {
            "name": model,
            "version": version,
            "requests": self.requests,
            "errors": self.errors,
            "latencyBounds": list(LATENCY_BOUNDS),
            "latency": list(self.latency),
            "predictions": {
                "count": self.predictions,
                "origin": self.origin or 0.0,
                "sum": self.total,
                "sumSquares": self.squares,
            },
        }
