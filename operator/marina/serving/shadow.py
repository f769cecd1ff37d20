"""Shadow traffic: a share of the answered requests copied to a challenger, and the two models compared
on the same inputs.

On the request's path a mirrored request costs one random draw and one `call_soon`: after its answer is
written, the copy (the body, the champion's predictions and the path: no copy of the bytes) goes out on
an idle keep-alive connection to the challenger, or waits in a bounded queue for one. Up to
`concurrency` connections live on the server's own event loop: sending is one non-blocking write, and the
challenger's answer is read and folded into `Comparison` as the loop's other events are. No thread:
worker threads took the GIL from the loop at every wake-up (a copy cost the process 266 µs of CPU with
them, 182-206 µs without; benchmarks/shadow_bench.py). A copy is posted as the client sent it (the
canonical path of the same model name: a `/versions/<v>` of the champion's is left out). The client's
answer was written before any of this happens; a slow, hanging or absent challenger only fills the
queue, and a request that finds it full is not mirrored and counts as `dropped`.

Outcomes of a mirrored request: `compared` (the challenger answered 200 with as many predictions),
`rejected` (it answered another status: a 4xx for inputs it cannot take, a 5xx), `failed` (no answer
within the timeout, a broken connection, or an answer that is not predictions; and for half a second
after such a failure, every copy taken, untried) and `dropped` (the queue was full, or the server
stopped before it was sent).

`GET /v2/models/<m>/shadow` gives the cumulative counters and sums (the operator reads each stable pod
and merges them: `Comparison.document`); `/metrics` exports the same as Prometheus series.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from marina.serving import jsoncodec
from marina.serving.model import OUTPUT_NAME

COMPARED, REJECTED, FAILED, DROPPED = "compared", "rejected", "failed", "dropped"
OUTCOMES = (COMPARED, REJECTED, FAILED, DROPPED)
#: The largest challenger answer read (predictions of a full request body are far smaller).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: The largest answer head (status line and headers) read.
MAX_HEAD_BYTES = 64 * 1024
BINARY_HEADER_LENGTH = "inference-header-content-length"
#: After a copy failed (refused, timed out, broken), a worker fails the copies it takes for this long
#: without trying: a stopped challenger costs no connect per copy.
RETRY_SECONDS = 0.5
log = logging.getLogger("marina.serving.shadow")


@dataclass(frozen=True)
class ShadowSettings:
    """Where and how much to mirror (the server's `--shadow-*` flags)."""

    url: str  # the challenger's base URL, http://host[:port]
    percent: float = 100.0
    challenger: str = ""  # the challenger's model version as the operator expects it (reported back)
    concurrency: int = 4  # requests in flight to the challenger at once (one connection each)
    queue_size: int = 256  # mirrored requests waiting for a connection; more are dropped
    timeout_seconds: float = 2.0  # per mirrored request (connect, send, answer)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the shadow URL must be http://host[:port], got {self.url!r}")
        if not 0.0 <= self.percent <= 100.0:
            raise ValueError(f"the shadow percent must be in [0, 100], got {self.percent}")
        if self.concurrency < 1 or self.queue_size < 1 or not self.timeout_seconds > 0:
            raise ValueError("shadow concurrency, queue size and timeout must be positive")


#: One mirrored request as the request path hands it over: (canonical path, body, headers to forward,
#: the champion's predictions). A plain tuple, as in `payloads`.
Mirrored = tuple[str, bytes, dict[str, str], np.ndarray]


class Comparison:
    """Paired differences of challenger and champion since start-up, and the champion's predictions'
    mean and sum of squared deviations (Welford's update, one batch at a time as Chan et al. merge)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.rows = 0
        self.abs_sum = 0.0
        self.abs_squares = 0.0
        self.abs_max = 0.0
        self.count = 0  # champion predictions seen (= rows)
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, champion: np.ndarray, challenger: np.ndarray) -> None:
        n = len(champion)
        if n == 1:  # the common single-row request: plain floats cost a third of numpy's calls
            mine = float(champion[0])
            distance = abs(float(challenger[0]) - mine)
            batch_mean, batch_m2, total_abs, squares, largest = (
                mine,
                0.0,
                distance,
                distance * distance,
                distance,
            )
        else:
            difference = np.abs(challenger - champion)
            batch_mean = float(champion.mean())
            centred = champion - batch_mean
            batch_m2 = float(np.dot(centred, centred))
            total_abs, squares = float(difference.sum()), float(np.dot(difference, difference))
            largest = float(difference.max())
        with self.lock:
            self.counts[COMPARED] += 1
            self.rows += n
            self.abs_sum += total_abs
            self.abs_squares += squares
            self.abs_max = max(self.abs_max, largest)
            total = self.count + n
            delta = batch_mean - self.mean
            self.mean += delta * n / total
            self.m2 += batch_m2 + delta * delta * self.count * n / total
            self.count = total

    def count_outcome(self, outcome: str) -> None:
        with self.lock:
            self.counts[outcome] += 1

    @property
    def champion_std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    @property
    def mean_difference(self) -> float:
        """Mean |challenger - champion| in the champion's standard deviations (inf if it never varied)."""
        if not self.rows:
            return 0.0
        mean = self.abs_sum / self.rows
        std = self.champion_std
        return mean / std if std > 0 else (0.0 if mean == 0 else math.inf)

    def document(self) -> dict[str, Any]:
        with self.lock:
            return {
                **{outcome: count for outcome, count in self.counts.items()},
                "rows": self.rows,
                "absDifference": {"sum": self.abs_sum, "sumSquares": self.abs_squares, "max": self.abs_max},
                "champion": {"count": self.count, "mean": self.mean, "m2": self.m2},
            }


def predictions_of(body: bytes, headers: Mapping[str, str]) -> np.ndarray:
    """The predictions in a v1 or v2 answer (JSON, or v2 with the binary tensor extension); ValueError
    (or KeyError, TypeError) when there are none."""
    header_length = headers.get(BINARY_HEADER_LENGTH)
    header = body if header_length is None else body[: int(header_length)]
    document = jsoncodec.loads(header)  # orjson: a fifth of json.loads' time; NaN is a ValueError
    if "predictions" in document:
        return np.asarray(document["predictions"], dtype=np.float64).ravel()
    outputs = document["outputs"]
    offset = 0 if header_length is None else int(header_length)
    for output in outputs:
        size = int((output.get("parameters") or {}).get("binary_data_size", 0))
        if output["name"] == OUTPUT_NAME:
            if "data" in output:
                return np.asarray(output["data"], dtype=np.float64).ravel()
            return np.frombuffer(body[offset : offset + size], dtype="<f8").astype(np.float64)
        offset += size
    raise ValueError(f"no output named {OUTPUT_NAME!r}")


class Link(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to the challenger on the server's event loop, one copy at a
    time: a POST with a Content-Length, an answer with a Content-Length (as `marina serve` answers).
    Anything unexpected (bytes nobody asked for, an answer without a usable length, one too large, no
    answer within the timeout) aborts the connection and fails the copy."""

    def __init__(self, mirror: Shadow) -> None:
        self.mirror = mirror
        self.transport: asyncio.Transport | None = None
        self.copy: Mirrored | None = None
        self.received = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.reused = False  # has answered before: the challenger may have closed it meanwhile

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.mirror.connected(self)

    def send(self, copy: Mirrored) -> None:
        assert self.transport is not None
        path, body, headers, _ = copy
        self.copy = copy
        self.received.clear()
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"POST {path} HTTP/1.1\r\nhost: {self.mirror.host}:{self.mirror.port}\r\n"
        head += f"content-length: {len(body)}\r\n{extra}\r\n"
        self.transport.write(head.encode("latin-1") + body)
        self.timer = self.mirror.loop.call_later(self.mirror.settings.timeout_seconds, self.abort)

    def data_received(self, data: bytes) -> None:
        if self.copy is None:  # nothing was asked
            self.abort()
            return
        self.received += data
        try:
            answer = self._answer()
        except (ValueError, IndexError):
            self.abort()
            return
        if answer is None:
            return
        copy, self.copy = self.copy, None
        self.stop_timer()
        self.reused = True
        status, headers, body = answer
        if headers.get("connection", "").lower() == "close" and self.transport is not None:
            self.transport.close()  # connection_lost takes the link out
        else:
            self.mirror.idle.append(self)
        self.mirror.answered(copy, status, headers, body)

    def _answer(self) -> tuple[int, dict[str, str], bytes] | None:
        """The answer once it is whole (None until then); ValueError when it cannot be one."""
        end = self.received.find(b"\r\n\r\n")
        if end < 0:
            if len(self.received) > MAX_HEAD_BYTES:
                raise ValueError("an answer's head is too large")
            return None
        lines = self.received[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        if not 0 <= length <= MAX_ANSWER_BYTES:
            raise ValueError("an answer without a usable content-length")
        if len(self.received) < end + 4 + length:
            return None
        return int(lines[0].split(" ", 2)[1]), headers, bytes(self.received[end + 4 : end + 4 + length])

    def abort(self) -> None:
        """Fail the copy in flight now (timed out or unreadable) and drop the connection."""
        copy, self.copy = self.copy, None
        self.stop_timer()
        if self.transport is not None:
            self.transport.abort()
        if copy is not None:
            self.mirror.failed()

    def connection_lost(self, exc: Exception | None) -> None:
        copy, self.copy = self.copy, None
        self.stop_timer()
        self.mirror.lost(self)
        if copy is None:
            return
        if self.reused and not self.received:  # closed while idle, as the copy went out: once more
            self.mirror.retry(copy)
        else:
            self.mirror.failed()

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Shadow(Collector):
    """The mirror to one challenger: its waiting copies (bounded), its connections on the server's event
    loop and the comparison. Every method but `document` and `collect` runs on that loop."""

    def __init__(self, settings: ShadowSettings, draw: Any = random.random) -> None:
        self.settings = settings
        self.share = settings.percent / 100.0
        self.draw = draw
        self.waiting: deque[Mirrored] = deque()
        self.comparison = Comparison()
        self.mirrored = 0  # taken to be sent (only the event loop's thread writes it)
        self.dropped = 0  # found the queue full, or no event loop to send from (idem)
        parts = urlsplit(settings.url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.links: set[Link] = set()  # open or opening
        self.idle: list[Link] = []  # open, nothing in flight
        self.resume = 0.0  # after a failure, copies fail at once until then (no connect per copy)
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    # ---------------------------------------------------------------- the request path (after the answer)

    def put(self, path: str, body: bytes, headers: dict[str, str], predictions: np.ndarray) -> None:
        """Send a request the app drew (`draw() < share`) on an idle connection, or let it wait; dropped
        (and counted) when the queue is full or there is no event loop to send from."""
        if self.closed or len(self.waiting) >= self.settings.queue_size:
            self.dropped += 1
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self.dropped += 1
            return
        self.mirrored += 1
        if self.resume and self._loop.time() < self.resume:
            self.comparison.count_outcome(FAILED)
            return
        self.waiting.append((path, body, headers, predictions))
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting and self.idle:
            self.idle.pop().send(self.waiting.popleft())
        if self.waiting and len(self.links) < self.settings.concurrency:
            self._open()

    def _open(self) -> None:
        link = Link(self)
        self.links.add(link)
        connecting = asyncio.wait_for(
            self.loop.create_connection(lambda: link, self.host, self.port), self.settings.timeout_seconds
        )
        self.loop.create_task(connecting).add_done_callback(lambda task: self._opened(link, task))

    def _opened(self, link: Link, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is not None:  # refused, unreachable, timed out
            self.links.discard(link)
            self.failed(in_flight=False)

    # ---------------------------------------------------------------- what the links report

    def connected(self, link: Link) -> None:
        if self.closed:
            link.abort()
            return
        self.idle.append(link)
        self._dispatch()

    def answered(self, copy: Mirrored, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.resume = 0.0
        self._compare(status, body, headers, copy[3])
        self._dispatch()

    def lost(self, link: Link) -> None:
        self.links.discard(link)
        if link in self.idle:
            self.idle.remove(link)

    def retry(self, copy: Mirrored) -> None:
        self.waiting.appendleft(copy)
        self._dispatch()

    def failed(self, in_flight: bool = True) -> None:
        """A copy failed (or a connection could not be opened): count it, then pause, failing what waits."""
        if in_flight:
            self.comparison.count_outcome(FAILED)
        self.resume = self.loop.time() + RETRY_SECONDS
        while self.waiting:
            self.waiting.popleft()
            self.comparison.count_outcome(FAILED)

    def close(self) -> None:
        """Stop mirroring: what waits or is in flight is dropped, and counted. Callable from any thread
        (the server closes its app from an executor at shutdown, or after its loop has ended): the
        connections are closed on their loop, or left to the process's exit once that loop is closed."""
        self.closed = True
        loop = self._loop
        if loop is None or loop.is_closed():
            self._drop_all()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._drop_all()
        else:
            loop.call_soon_threadsafe(self._drop_all)

    def _drop_all(self) -> None:
        while self.waiting:
            self.waiting.popleft()
            self.comparison.count_outcome(DROPPED)
        for link in list(self.links):
            if link.copy is not None:
                link.copy = None
                self.comparison.count_outcome(DROPPED)
            link.stop_timer()
            if link.transport is not None and self._loop is not None and not self._loop.is_closed():
                link.transport.close()
        self.links.clear()
        self.idle.clear()

    def _compare(self, status: int, answer: bytes, headers: Mapping[str, str], champion: np.ndarray) -> None:
        if status != 200:
            self.comparison.count_outcome(REJECTED)
            return
        try:
            challenger = predictions_of(answer, headers)
        except (ValueError, KeyError, TypeError, AttributeError):
            self.comparison.count_outcome(FAILED)
            return
        if challenger.shape != champion.shape or not np.isfinite(challenger).all():
            self.comparison.count_outcome(FAILED)
            return
        self.comparison.add(champion, challenger)

    # ---------------------------------------------------------------- what the operator and Prometheus read

    def document(self, model: str, version: str) -> dict[str, Any]:
        compared = self.comparison.document()
        compared[DROPPED] += self.dropped
        return {
            "name": model,
            "version": version,
            "challenger": self.settings.challenger,
            "url": self.settings.url,
            "percent": self.settings.percent,
            "mirrored": self.mirrored,
            "queued": len(self.waiting),
            **compared,
        }

    def collect(self) -> Iterator[Metric]:
        document = self.comparison.document()
        requests = CounterMetricFamily(
            "marina_shadow_requests_total",
            "Answered requests chosen for the challenger, by outcome: compared, rejected (it answered "
            "another status), failed (no answer in time, or not predictions), dropped (the queue was full).",
            labels=("outcome",),
        )
        for outcome in OUTCOMES:
            extra = self.dropped if outcome == DROPPED else 0
            requests.add_metric([outcome], document[outcome] + extra)
        yield requests
        yield CounterMetricFamily(
            "marina_shadow_rows_total",
            "Prediction rows compared with the challenger's.",
            value=document["rows"],
        )
        yield GaugeMetricFamily(
            "marina_shadow_difference_mean_sd",
            "Mean |challenger - champion| over the compared rows, in the champion's standard deviations.",
            value=self.comparison.mean_difference,
        )
        yield GaugeMetricFamily(
            "marina_shadow_difference_max",
            "Largest |challenger - champion| over the compared rows, in the target's units.",
            value=document["absDifference"]["max"],
        )
        yield GaugeMetricFamily(
            "marina_shadow_champion_std",
            "Standard deviation of the champion's predictions on the compared rows.",
            value=self.comparison.champion_std,
        )
