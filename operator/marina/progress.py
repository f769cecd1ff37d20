"""Progress of a long command on stderr: rows so far and their rate, at most every `INTERVAL` seconds."""

from __future__ import annotations

import sys
import time

INTERVAL = 5.0


class Progress:
    def __init__(self, command: str, interval: float = INTERVAL) -> None:
        self.command, self.interval = command, interval
        self.started = self.last = time.monotonic()
        self.count = 0

    def rows(self, count: int) -> None:
        self.count = count
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._say(now, "")

    def done(self) -> None:
        if self.last > self.started:  # only long runs reported progress; close them with the total
            self._say(time.monotonic(), " (done)")

    def _say(self, now: float, suffix: str) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        print(
            f"{self.command}: {self.count} rows in {elapsed:.0f} s ({rate:,.0f} rows/s){suffix}",
            file=sys.stderr,
        )
