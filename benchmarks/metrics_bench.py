"""Serving throughput with three ways of exporting Prometheus metrics, side by side in one run.

- `handwritten`: the text format written by hand (benchmarks/handwritten_exporter.py, what the server
  did before prometheus_client);
- `collectors`: today's server: the hot path keeps plain dicts and counters, and prometheus_client's
  custom collectors turn them into metric families when `/metrics` is scraped;
- `native`: prometheus_client's own Counter and Histogram with labels, updated on every request.

Each variant is one `marina serve` process on 127.0.0.1 serving the same 10-feature model with a
reference distribution (so the scrape carries the bin counters). `wrk` (2 threads, 16 connections)
sends single-row Open Inference v2 requests to one server at a time, in rounds whose order alternates,
while this script scrapes that server's `/metrics` every `--scrape-interval` seconds (1 s: fifteen
times Prometheus' default rate, so the exposition's cost shows). Reported: the median over rounds of
requests per second, each variant's ratio to `handwritten`, and the median time and size of one
scrape. The server switches to prometheus_client only if it costs at most MAX_COST of throughput.

    python benchmarks/metrics_bench.py [--rounds 5] [--seconds 6] [--warmup 3] [--scrape-interval 1]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marina.data.distribution import Reference
from marina.model.artifact import ModelArtifact, save
from server_bench import (
    HOST,
    MODEL,
    N_FEATURES,
    WrkResult,
    fit_model,
    free_port,
    infer_body,
    median_round,
    run_wrk,
    running,
)

VARIANTS = ("handwritten", "collectors", "native")
MAX_COST = 0.05  # the largest share of throughput prometheus_client may cost
SCRAPES = 200  # scrapes timed per variant after the load


# ------------------------------------------------------------------------ the servers (subprocesses)


def serve(variant: str, argv: list[str]) -> int:
    """Run `marina serve argv` with the named exporter in place of the server's own."""
    from marina import cli
    from marina.serving import metrics

    if variant == "handwritten":
        import handwritten_exporter

        metrics.render = handwritten_exporter.render  # type: ignore[assignment]
    elif variant == "native":
        metrics.RequestMetrics = NativeRequestMetrics  # type: ignore[misc]
    return int(cli.main(["serve", *argv]) or 0)


class NativeRequestMetrics:
    """RequestMetrics' interface on prometheus_client's instruments: labels() and observe() (each
    taking the instrument's lock) on every request."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        from marina.serving.metrics import LATENCY_BUCKETS

        self.registry = CollectorRegistry(auto_describe=False)
        self._in_flight = Gauge(
            "marina_http_requests_in_flight", "Requests being answered now.", registry=self.registry
        )
        self._requests = Counter(
            "marina_http_requests",
            "HTTP requests answered, by endpoint and status.",
            ("endpoint", "status"),
            registry=self.registry,
        )
        self._refused = Counter(
            "marina_http_connections_refused",
            "Connections closed by the limits, by status.",
            ("status",),
            registry=self.registry,
        )
        self._duration = Histogram(
            "marina_http_request_duration_seconds",
            "Time from request start to response sent, by endpoint and status.",
            ("endpoint", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._counts: dict[tuple[str, int], int] = {}

    @property
    def in_flight(self) -> int:
        return int(self._in_flight._value.get())

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self._in_flight.set(value)

    def refuse(self, status: int) -> None:
        self._refused.labels(str(status)).inc()

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self._requests.labels(endpoint, str(status)).inc()
        self._duration.labels(endpoint, str(status)).observe(seconds)

    def count(self, endpoint: str, status: int) -> int:
        return int(self._requests.labels(endpoint, str(status))._value.get())

    def collect(self) -> Iterator[object]:
        yield from self.registry.collect()


# ---------------------------------------------------------------------------------------- the load


@dataclass(frozen=True)
class Outcome:
    variant: str
    load: WrkResult
    scrape_ms: float
    scrape_bytes: int
    scrapes_during_load: int


def get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path} on port {port} answered {response.status}")
        return body
    finally:
        connection.close()


@contextlib.contextmanager
def scraping(port: int, interval: float) -> Iterator[list[int]]:
    """Scrape /metrics every `interval` seconds while the block runs; yields the list of sizes seen."""
    sizes: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            sizes.append(len(get(port, "/metrics")))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield sizes
    finally:
        stop.set()
        thread.join()


def scrape_median_ms(port: int) -> tuple[float, int]:
    timings, size = [], 0
    for _ in range(SCRAPES):
        started = time.perf_counter()
        size = len(get(port, "/metrics"))
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000, size


def measure(ports: dict[str, int], args: argparse.Namespace, directory: Path, body: bytes) -> list[Outcome]:
    for port in ports.values():
        run_wrk(port, body, args.warmup, directory)
    rounds: dict[str, list[WrkResult]] = {variant: [] for variant in ports}
    scrapes = dict.fromkeys(ports, 0)
    for number in range(args.rounds):
        order = list(ports) if number % 2 == 0 else list(ports)[::-1]
        for variant in order:
            with scraping(ports[variant], args.scrape_interval) as sizes:
                result = run_wrk(ports[variant], body, args.seconds, directory)
            rounds[variant].append(result)
            scrapes[variant] += len(sizes)
            print(f"round {number + 1} {variant:12} {result.requests_per_second:9,.0f} req/s", flush=True)
    outcomes = []
    for variant, port in ports.items():
        scrape_ms, size = scrape_median_ms(port)
        outcomes.append(Outcome(variant, median_round(rounds[variant]), scrape_ms, size, scrapes[variant]))
    return outcomes


def model_artifact(directory: Path) -> tuple[str, str]:
    """The benchmark's linear model with a reference distribution of its own training rows."""
    model = fit_model()
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(2000, N_FEATURES))
    reference = Reference.of(rows, rows @ model.coefficients + model.intercept)
    artifact = ModelArtifact(
        model.coefficients.tolist(),
        model.intercept,
        model.feature_names,
        reference=reference.to_dict(model.feature_names),
    )
    return save(artifact, str(directory / "model"))


def report(outcomes: list[Outcome], scrape_interval: float) -> None:
    handwritten = next(o for o in outcomes if o.variant == "handwritten")
    baseline = handwritten.load.requests_per_second
    print()
    print(f"{'':12}{'req/s':>10}{'ratio':>8}{'p99 ms':>9}{'errors':>8}{'scrape ms':>11}{'scrape KB':>11}")
    for o in outcomes:
        ratio = o.load.requests_per_second / baseline
        print(
            f"{o.variant:12}{o.load.requests_per_second:10,.0f}{ratio:8.3f}{o.load.p99_ms:9.2f}"
            f"{o.load.errors:8d}{o.scrape_ms:11.2f}{o.scrape_bytes / 1024:11.1f}"
        )
    chosen = next(o for o in outcomes if o.variant == "collectors")
    cost = 1 - chosen.load.requests_per_second / baseline
    verdict = "within" if cost <= MAX_COST else "BEYOND"
    print(
        f"\nprometheus_client with custom collectors costs {cost:+.1%} of throughput against the "
        f"hand-written exporter ({verdict} the {MAX_COST:.0%} limit)"
    )
    # Its hot path is the hand-written one's; only the scrape differs: the extra event-loop time per
    # scrape, once per interval, bounds what it can take from serving.
    bound = (chosen.scrape_ms - handwritten.scrape_ms) / 1000 / scrape_interval
    print(
        f"bound from the scrape alone: {bound:.1%} of the event loop, one scrape every {scrape_interval:g} s "
        f"({bound * scrape_interval / 15:.2%} at Prometheus' default 15 s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=6, help="seconds of load per variant per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.serve:
        return serve(args.serve, rest)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    body = infer_body(np.random.default_rng(1).normal(size=(1, N_FEATURES)))
    with (
        tempfile.TemporaryDirectory(prefix="marina-metrics-bench-") as temporary,
        contextlib.ExitStack() as stack,
    ):
        directory = Path(temporary)
        uri, sha256 = model_artifact(directory)
        ports = {variant: free_port() for variant in VARIANTS}
        for variant, port in ports.items():
            command = [sys.executable, __file__, "--serve", variant, "--model", uri, "--sha256", sha256]
            command += ["--name", MODEL, "--host", HOST, "--port", str(port), "--log-level", "warning"]
            stack.enter_context(running(command, directory, port, variant))
        outcomes = measure(ports, args, directory, body)
    report(outcomes, args.scrape_interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
