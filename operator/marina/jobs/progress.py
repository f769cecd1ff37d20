"""Progress of a long command: rows so far, their rate, the total and an ETA when known, on stderr and
(with a URI) as a small JSON object the operator copies into the resource's `status.progress`.

The object is rewritten at most every `INTERVAL` seconds; writing it never fails the command (a storage
hiccup only skips one report). Format `marina.dev/progress/v1`:
  rows, rowsPerSecond, elapsedSeconds, updated (RFC 3339), and with a known total: total, percent,
  etaSeconds; done: true in the last report.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from marina import storage
from marina.system.clock import utc_now

FORMAT = "marina.dev/progress/v1"
INTERVAL = 5.0


class Progress:
    def __init__(
        self, command: str, total: int | None = None, uri: str | None = None, interval: float = INTERVAL
    ) -> None:
        self.command, self.total, self.uri, self.interval = command, total, uri, interval
        self.started = self.last = time.monotonic()
        self.count = 0

    def rows(self, count: int) -> None:
        self.count = count
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._report(now, done=False)

    def done(self) -> None:
        if self.last > self.started:  # only long runs reported progress; close them with the total
            self._report(time.monotonic(), done=True)

    def document(self, now: float, done: bool) -> dict[str, Any]:
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        report: dict[str, Any] = {
            "format": FORMAT,
            "rows": self.count,
            "rowsPerSecond": round(rate, 1),
            "elapsedSeconds": round(elapsed, 1),
            "updated": utc_now(),
        }
        if self.total:
            report.update(
                total=self.total,
                percent=round(min(100.0, 100.0 * self.count / self.total), 1),
                etaSeconds=round(max(self.total - self.count, 0) / rate, 1) if rate > 0 else None,
            )
        if done:
            report["done"] = True
        return report

    def _report(self, now: float, done: bool) -> None:
        report = self.document(now, done)
        share = f" of {self.total} ({report['percent']}%)" if self.total else ""
        suffix = " (done)" if done else ""
        print(
            f"{self.command}: {self.count} rows{share} in {report['elapsedSeconds']:.0f} s "
            f"({report['rowsPerSecond']:,.0f} rows/s){suffix}",
            file=sys.stderr,
            flush=True,
        )
        if self.uri is None:
            return
        try:
            storage.write_bytes(self.uri, json.dumps(report).encode(), "application/json")
        except storage.StorageError as exc:  # a skipped report, never a failed command
            print(f"{self.command}: progress not written ({exc})", file=sys.stderr, flush=True)


def read(uri: str) -> dict[str, Any] | None:
    """The last report at `uri`, or None when there is none (yet) or it cannot be read."""
    try:
        document = json.loads(storage.read_bytes(uri))
    except (storage.StorageError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return None
    return {key: value for key, value in document.items() if key != "format"}


def shard_uri(uri: str, index: int) -> str:
    """Where shard `index` of a sharded pass reports, beside the Job's own progress object."""
    return f"{uri.removesuffix('.json')}-shard-{index}.json"


def merged(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The shards' reports as one: rows and rates add up, the total when every shard knows its own, the
    ETA of the slowest shard; None when no shard has reported yet."""
    if not reports:
        return None
    rows = sum(int(r.get("rows", 0)) for r in reports)
    report: dict[str, Any] = {
        "rows": rows,
        "rowsPerSecond": round(sum(float(r.get("rowsPerSecond", 0.0)) for r in reports), 1),
        "elapsedSeconds": max(float(r.get("elapsedSeconds", 0.0)) for r in reports),
        "updated": max(str(r.get("updated", "")) for r in reports),
        "shardsReporting": len(reports),
    }
    totals = [r.get("total") for r in reports]
    if all(isinstance(t, int) and t > 0 for t in totals):
        total = sum(int(t) for t in totals if t is not None)
        report.update(total=total, percent=round(min(100.0, 100.0 * rows / total), 1))
        etas = [r.get("etaSeconds") for r in reports]
        if all(isinstance(e, int | float) for e in etas):
            report["etaSeconds"] = max(float(e) for e in etas if e is not None)
    return report
