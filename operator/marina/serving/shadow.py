"""Shadow traffic: a share of the answered requests copied to a challenger, and the two models compared
on the same inputs.

On the request's path a mirrored request costs one random draw and one `put_nowait` into a bounded
queue (the body, the champion's predictions and the path: no copy, nothing awaited). `concurrency`
worker threads take from the queue, each with its own keep-alive connection to the challenger, post the
request there as the client sent it (the canonical path of the same model name: a `/versions/<v>` of
the champion's is left out), read the challenger's predictions and fold the paired differences into
`Comparison`. The client's answer was sent before any of this could matter; a slow, hanging or absent
challenger only fills the queue, and a request that finds it full is not mirrored and counts as
`dropped`.

Outcomes of a mirrored request: `compared` (the challenger answered 200 with as many predictions),
`rejected` (it answered another status: a 4xx for inputs it cannot take, a 5xx), `failed` (no answer
within the timeout, a broken connection, or an answer that is not predictions; and for half a second
after such a failure, every copy the worker takes, untried) and `dropped` (the queue
was full, or the server stopped before it was sent).

`GET /v2/models/<m>/shadow` gives the cumulative counters and sums (the operator reads each stable pod
and merges them: `Comparison.document`); `/metrics` exports the same as Prometheus series.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import random
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from marina.serving.model import OUTPUT_NAME

COMPARED, REJECTED, FAILED, DROPPED = "compared", "rejected", "failed", "dropped"
OUTCOMES = (COMPARED, REJECTED, FAILED, DROPPED)
#: The largest challenger answer read (predictions of a full request body are far smaller).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
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
    concurrency: int = 4  # requests in flight to the challenger at once (one worker thread each)
    queue_size: int = 256  # mirrored requests waiting for a worker; more are dropped
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
    document = json.loads(header)
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


class Link:
    """One keep-alive HTTP/1.1 connection to the challenger, written for this one use: a POST with a
    Content-Length, an answer with a Content-Length (as `marina serve` answers). http.client cost about
    190 us of the serving process's CPU per copy, this about a fifth of it. Every step has the timeout;
    anything unexpected raises OSError or ValueError (the caller closes the link)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.address = (host, port)
        self.host = f"{host}:{port}".encode("latin-1")
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        """The answer's status, headers and body. A kept-alive connection the challenger closed meanwhile
        (uvicorn closes idle ones after 5 s) is opened again once for the same copy (a prediction can be
        asked twice)."""
        if self.sock is None:
            return self._post(path, body, headers)
        try:
            return self._post(path, body, headers)
        except ConnectionError:
            self.close()
            return self._post(path, body, headers)

    def _post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        sock = self.sock
        if sock is None:
            sock = self.sock = socket.create_connection(self.address, self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"POST {path} HTTP/1.1\r\nhost: ".encode("latin-1") + self.host
        head += f"\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode("latin-1")
        sock.sendall(head + body)
        received = b""
        while (end := received.find(b"\r\n\r\n")) < 0:
            received += self._receive(sock, len(received))
        lines = received[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        answer_headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            answer_headers[name.strip().lower()] = value.strip()
        length = int(answer_headers["content-length"]) if "content-length" in answer_headers else -1
        if not 0 <= length <= MAX_ANSWER_BYTES:
            raise ValueError("an answer without a usable content-length")
        content = received[end + 4 :]
        while len(content) < length:
            content += self._receive(sock, len(content))
        if answer_headers.get("connection", "").lower() == "close":
            self.close()
        return status, answer_headers, content[:length]

    @staticmethod
    def _receive(sock: socket.socket, held: int) -> bytes:
        if held > MAX_ANSWER_BYTES:
            raise ValueError("the answer is too large")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the challenger closed the connection")
        return chunk


class Shadow(Collector):
    """The mirror to one challenger: the bounded queue, its workers and the comparison."""

    def __init__(self, settings: ShadowSettings, draw: Any = random.random) -> None:
        self.settings = settings
        self.share = settings.percent / 100.0
        self.draw = draw
        self.queue: queue.Queue[Mirrored | None] = queue.Queue(settings.queue_size)
        self.comparison = Comparison()
        self.mirrored = 0  # handed to the queue (only the event loop's thread writes it)
        self.dropped = 0  # found the queue full (idem)
        parts = urlsplit(settings.url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------- the request path

    def put(self, path: str, body: bytes, headers: dict[str, str], predictions: np.ndarray) -> None:
        """Queue a request the app drew (`draw() < share`); dropped (and counted) when the queue is full."""
        try:
            self.queue.put_nowait((path, body, headers, predictions))
        except queue.Full:
            self.dropped += 1
            return
        self.mirrored += 1

    # ---------------------------------------------------------------- the workers

    def start(self) -> None:
        for index in range(self.settings.concurrency):
            thread = threading.Thread(target=self._work, name=f"marina-shadow-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, seconds: float = 1.0) -> None:
        """Stop the workers (what is still queued is dropped, and counted)."""
        while True:
            try:
                entry = self.queue.get_nowait()
            except queue.Empty:
                break
            if entry is not None:
                self.comparison.count_outcome(DROPPED)
        for _ in self._threads:
            try:
                self.queue.put_nowait(None)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(seconds / max(len(self._threads), 1))
        self._threads = []

    def _work(self) -> None:
        link = Link(self.host, self.port, self.settings.timeout_seconds)
        resume = 0.0  # after a failure, copies fail at once until then (no connect per copy)
        while True:
            entry = self.queue.get()
            if entry is None:
                link.close()
                return
            path, body, headers, champion = entry
            if resume and time.monotonic() < resume:
                self.comparison.count_outcome(FAILED)
                continue
            try:
                status, answer_headers, answer = link.post(path, body, headers)
            except (OSError, ValueError):
                link.close()  # reconnects on the next copy after the pause
                resume = time.monotonic() + RETRY_SECONDS
                self.comparison.count_outcome(FAILED)
                continue
            resume = 0.0
            self._compare(status, answer, answer_headers, champion)

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
            "queued": self.queue.qsize(),
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
