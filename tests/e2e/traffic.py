"""A client that keeps requesting predictions in the background while an e2e test changes the cluster
(a canary, a retrain, an autoscaler's scale-up and scale-down), and keeps every failure it sees."""

from __future__ import annotations

import threading
import time
import urllib.error
from types import TracebackType

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
