"""A client that keeps requesting predictions in the background while an e2e test changes the cluster
(a canary, a retrain, an autoscaler's scale-up and scale-down), and keeps every failure it sees; and one
that times single requests to two Services in alternating blocks, with the quantiles of what it timed."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from types import TracebackType
from urllib.parse import urlsplit

import numpy as np
from tests.e2e.test_e2e_pipeline import predict


class Traffic:
    """`workers` threads, each sending one row at a time (drawn at random from `rows`, which the test may
    replace) and waiting `pause` seconds (which the test may change) between requests, until `end()` or
    `limit_seconds`. Every failure counts: start it once the Service answers (`first_answer`)."""

    def __init__(
        self,
        url: str,
        model: str,
        rows: np.ndarray,
        workers: int = 1,
        pause: float = 0.0,
        limit_seconds: float = 600,
    ) -> None:
        self.url, self.model, self.rows, self.pause = url, model, rows, pause
        self.answers = 0
        self.failures: list[str] = []
        self.failed_at: list[float] = []  # when each failure came back (monotonic)
        self._counted = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_seconds
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(10, 10 + workers)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.end()

    def end(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def summary(self) -> str:
        return f"{self.answers} requests, {len(self.failures)} failed"

    def assert_none_failed(self) -> None:
        assert self.failures == [], f"{self.summary()}: {self.failures[:5]}"

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            rows = self.rows
            try:
                predict(self.url, self.model, [rows[rng.integers(len(rows))].tolist()], timeout=10)
                with self._counted:
                    self.answers += 1
            except (urllib.error.URLError, OSError, ValueError) as error:
                with self._counted:
                    self.failures.append(repr(error))
                    self.failed_at.append(time.monotonic())
                continue
            if self.pause:
                self._stop.wait(self.pause)


# ---------------------------------------------------------------- latency

#: The normal's 97.5 % quantile: two-sided 95 % intervals.
Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class Quantile:
    """A sample quantile and the 95 % interval of the population's."""

    value: float
    low: float
    high: float


def quantile(times: Sequence[float], p: float) -> Quantile:
    """The p-quantile of `times` and its distribution-free 95 % interval: the number of samples below the
    population quantile is Binomial(n, p), so the order statistics of ranks n*p -/+ z*sqrt(n*p*(1-p))
    bracket it (independent samples; alternating blocks cancel the machine's drift between Services)."""
    ordered, n = sorted(times), len(times)
    spread = Z95 * math.sqrt(n * p * (1 - p))

    def at(rank: float) -> float:
        return ordered[min(max(math.ceil(rank) - 1, 0), n - 1)]

    return Quantile(at(n * p), at(n * p - spread), at(n * p + spread))


def timed(url: str, model: str, row: Sequence[float]) -> float:
    """Seconds to answer one single-row v2 request, on a new connection (as a client through a Service
    is: kube-proxy spreads connections over the pods)."""
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, len(row)], "datatype": "FP64", "data": list(row)}]}
    )
    where = urlsplit(url)
    began = time.perf_counter()
    connection = http.client.HTTPConnection(where.hostname or "", where.port or 80, timeout=10)
    try:
        connection.request(
            "POST", f"{where.path}/v2/models/{model}/infer", body, {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    elapsed = time.perf_counter() - began
    if response.status != 200:
        raise OSError(f"{url}: {model} answered {response.status}")
    return elapsed


def alternate(
    services: dict[str, tuple[str, str]],
    row: Sequence[float],
    requests: int,
    block: int = 50,
    pause: float = 0.0,
) -> dict[str, list[float]]:
    """`requests` timed requests to each of `services` (name: (url, model)), one after the other in
    alternating blocks of `block`, so that each sees the same machine; `pause` seconds after each answer
    (a client's think time: the load is then below what the machine can answer back to back)."""
    times: dict[str, list[float]] = {name: [] for name in services}
    for start in range(0, requests, block):
        for name, (url, model) in services.items():
            for _ in range(min(block, requests - start)):
                times[name].append(timed(url, model, row))
                if pause:
                    time.sleep(pause)
    return times
