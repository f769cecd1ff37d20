"""Marina's prediction server against MLServer 1.7.1 (scikit-learn runtime) on the same linear model.

Both servers run as subprocesses on 127.0.0.1 at the same time, and `wrk` (a separate process, 2
threads, 16 connections) sends single-row Open Inference v2 requests to one, then the other, in
alternating rounds (the machine is shared, so both must see the same background load). Reported:
the median over rounds of requests per second and p50/p99 latency from `wrk --latency`, and the
median client-side latency of a 1,000-row batch over one keep-alive connection (client time on
loopback: an upper bound on the server's time; Marina's own histogram gives its in-server mean
too). MLServer lives in its own virtual environment under ~/.cache/marina/mlserver-venv,
created from PyPI on first use; its model is a joblib file because that is its format, written to
a temporary directory for this run only. Marina never reads it.

Processes: Marina runs one process (one event loop). MLServer runs its defaults: a front-end
process plus `parallel_workers=1` inference worker. MLServer's `debug` (per-request access log) is
switched off so neither server logs each request.

    python benchmarks/server_bench.py [--duration 15] [--rounds 3] [--warmup 3] [--batch-requests 200]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marina.model.artifact import ModelArtifact, save

MLSERVER_VERSION = "1.7.1"
# MLServer 1.7.1's inference workers call asyncio.get_event_loop() with no loop running, which
# uvloop >= 0.22 refuses ("There is no current event loop"): pin the uvloop it was released with.
MLSERVER_PINS = ("uvloop<0.22",)
VENV = Path.home() / ".cache" / "marina" / "mlserver-venv"
N_FEATURES = 10
BATCH_ROWS = 1000
HOST = "127.0.0.1"
MODEL = "linear"
TARGET_THROUGHPUT_RATIO = 5.0
TARGET_P99_RATIO = 0.25
TARGET_BATCH_MS = 5.0


@dataclass(frozen=True)
class LinearModel:
    coefficients: np.ndarray
    intercept: float

    @property
    def feature_names(self) -> list[str]:
        return [f"x{i}" for i in range(len(self.coefficients))]


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def fit_model(seed: int = 0) -> LinearModel:
    """Ordinary least squares on synthetic data; both servers get exactly these numbers."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(2000, N_FEATURES))
    target = features @ rng.normal(size=N_FEATURES) + 3.0 + rng.normal(scale=0.1, size=2000)
    design = np.column_stack([features, np.ones(len(features))])
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    return LinearModel(solution[:-1], float(solution[-1]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------------ MLServer


def mlserver_python() -> Path:
    """The MLServer virtual environment's interpreter, creating the environment from PyPI if absent."""
    python = VENV / "bin" / "python"
    if (VENV / "bin" / "mlserver").exists():
        return python
    print(f"installing MLServer {MLSERVER_VERSION} into {VENV} (first run only)…", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            f"mlserver=={MLSERVER_VERSION}",
            f"mlserver-sklearn=={MLSERVER_VERSION}",
            *MLSERVER_PINS,
        ],
        check=True,
    )
    return python


def write_mlserver_model(python: Path, model: LinearModel, directory: Path, http_port: int) -> None:
    """MLServer's own format: a fitted LinearRegression in joblib, plus its settings files."""
    model_dir = directory / MODEL
    model_dir.mkdir(parents=True)
    script = textwrap.dedent(
        """
        import json, sys, joblib, numpy as np
        from sklearn.linear_model import LinearRegression
        coefficients, intercept, path = json.loads(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
        model = LinearRegression()
        model.coef_, model.intercept_ = np.array(coefficients), intercept
        model.n_features_in_ = len(coefficients)
        joblib.dump(model, path)
        """
    )
    subprocess.run(
        [
            str(python),
            "-c",
            script,
            json.dumps(model.coefficients.tolist()),
            repr(model.intercept),
            str(model_dir / "model.joblib"),
        ],
        check=True,
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    (directory / "settings.json").write_text(
        json.dumps(
            {
                "host": HOST,
                "http_port": http_port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "debug": False,
            }
        )
    )


# ------------------------------------------------------------------------------------ processes


@contextmanager
def running(
    command: list[str], cwd: Path, port: int, name: str, environment: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own session, wait until its model is ready, stop it (by PID) after."""
    log = (cwd / f"{name}.log").open("wb")
    process = subprocess.Popen(
        command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment
    )
    try:
        wait_ready(port, process, name, cwd / f"{name}.log")
        yield process
    finally:
        stop(process)
        log.close()


def wait_ready(
    port: int, process: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if get_status(port, f"/v2/models/{MODEL}/ready") == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} was not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server we started; its session (only its own workers) is killed if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the session we created: leftover workers only


# --------------------------------------------------------------------------------------- clients


def get_status(port: int, path: str) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def infer_body(rows: np.ndarray) -> bytes:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def infer(port: int, body: bytes) -> np.ndarray:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("POST", f"/v2/models/{MODEL}/infer", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = json.loads(response.read())
        if response.status != 200:
            raise SystemExit(f"infer on port {port} answered {response.status}: {payload}")
        return np.asarray(payload["outputs"][0]["data"], dtype=np.float64).reshape(-1)
    finally:
        connection.close()


def batch_median_ms(port: int, body: bytes, requests: int) -> float:
    """Median wall time of POST + full response over one keep-alive connection."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    timings = []
    try:
        for _ in range(requests + 10):
            started = time.perf_counter()
            connection.request("POST", f"/v2/models/{MODEL}/infer", body, headers)
            response = connection.getresponse()
            response.read()
            timings.append(time.perf_counter() - started)
            if response.status != 200:
                raise SystemExit(f"batch infer on port {port} answered {response.status}")
    finally:
        connection.close()
    return statistics.median(timings[10:]) * 1000  # the first 10 warm up


def marina_infer_seconds(port: int) -> tuple[float, int]:
    """(sum of seconds, count) of Marina's own v2 infer latency histogram: time spent inside the server."""
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    labels = '{endpoint="v2_infer",status="200"}'
    values = {}
    for kind in ("sum", "count"):
        match = re.search(
            rf"^marina_http_request_duration_seconds_{kind}{re.escape(labels)} (\S+)$", text, re.M
        )
        values[kind] = float(match[1]) if match else 0.0
    return values["sum"], int(values["count"])


def run_wrk(port: int, body: bytes, seconds: int, directory: Path) -> WrkResult:
    script = directory / "infer.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    url = f"http://{HOST}:{port}/v2/models/{MODEL}/infer"
    command = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> WrkResult:
    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"no {percent}% latency in wrk output:\n{output}")
        return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None:
        raise SystemExit(f"no Requests/sec in wrk output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    count = int(errors[1]) if errors else 0
    count += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return WrkResult(float(rate[1]), latency("50"), latency("99"), count)


@dataclass(frozen=True)
class Measurement:
    load: WrkResult  # the median round
    batch_ms: float
    batch_server_ms: float | None  # mean time inside the server, where the server reports it


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    own_metrics: bool  # Marina reports its own in-server latency


def median_round(results: list[WrkResult]) -> WrkResult:
    """Per-quantity median over rounds, so one round hit by a neighbour's CPU burst does not decide."""
    return WrkResult(
        statistics.median(r.requests_per_second for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def measure(
    targets: list[Target],
    args: argparse.Namespace,
    directory: Path,
    bodies: dict[str, bytes],
    expected: np.ndarray,
) -> list[Measurement]:
    """Both servers run at once; wrk loads them in alternating rounds so both see the same machine."""
    for target in targets:
        error = np.max(np.abs(infer(target.port, bodies["check"]) - expected))
        print(f"{target.name}: max |prediction - reference| on 5 rows = {error:.3g}", flush=True)
        run_wrk(target.port, bodies["single"], args.warmup, directory)
    seconds = max(args.duration // args.rounds, 1)
    rounds: dict[str, list[WrkResult]] = {target.name: [] for target in targets}
    for number in range(args.rounds):
        order = targets if number % 2 == 0 else targets[::-1]
        for target in order:
            result = run_wrk(target.port, bodies["single"], seconds, directory)
            rounds[target.name].append(result)
            print(
                f"round {number + 1} {target.name}: {result.requests_per_second:,.0f} req/s, "
                f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms",
                flush=True,
            )
    measurements = []
    for target in targets:
        before = marina_infer_seconds(target.port) if target.own_metrics else None
        batch = batch_median_ms(target.port, bodies["batch"], args.batch_requests)
        server_ms = None
        if before is not None:
            after = marina_infer_seconds(target.port)
            server_ms = (after[0] - before[0]) / max(after[1] - before[1], 1) * 1000
        measurements.append(Measurement(median_round(rounds[target.name]), batch, server_ms))
    return measurements


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of measured load per server")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds the duration is split into")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load first")
    parser.add_argument("--batch-requests", type=int, default=200)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    model = fit_model()
    rng = np.random.default_rng(1)
    check_rows = rng.normal(size=(5, N_FEATURES))
    expected = check_rows @ model.coefficients + model.intercept
    bodies = {
        "single": infer_body(rng.normal(size=(1, N_FEATURES))),
        "batch": infer_body(rng.normal(size=(BATCH_ROWS, N_FEATURES))),
        "check": infer_body(check_rows),
    }
    python = mlserver_python()
    with (
        tempfile.TemporaryDirectory(prefix="marina-server-bench-") as temporary,
        contextlib.ExitStack() as stack,
    ):
        directory = Path(temporary)
        mlserver_dir = directory / "mlserver"
        mlserver_port = free_port()
        write_mlserver_model(python, model, mlserver_dir, mlserver_port)
        artifact = ModelArtifact(model.coefficients.tolist(), model.intercept, model.feature_names)
        artifact_uri, sha256 = save(artifact, str(directory / "marina"))
        marina_port = free_port()
        marina_command = [sys.executable, "-m", "marina.cli", "serve", "--model", artifact_uri]
        marina_command += ["--sha256", sha256, "--name", MODEL, "--host", HOST, "--port", str(marina_port)]
        mlserver_command = [str(VENV / "bin" / "mlserver"), "start", str(mlserver_dir)]
        stack.enter_context(running(mlserver_command, directory, mlserver_port, "mlserver"))
        stack.enter_context(running(marina_command, directory, marina_port, "marina"))
        targets = [
            Target(f"MLServer {MLSERVER_VERSION}", mlserver_port, False),
            Target("Marina", marina_port, True),
        ]
        theirs, ours = measure(targets, args, directory, bodies, expected)
    report(ours, theirs)
    return 0


def report(ours: Measurement, theirs: Measurement) -> None:
    throughput = ours.load.requests_per_second / theirs.load.requests_per_second
    p99 = ours.load.p99_ms / theirs.load.p99_ms
    rows = [
        (
            "requests/s (1 row, 16 conn)",
            theirs.load.requests_per_second,
            ours.load.requests_per_second,
            "{:,.0f}",
        ),
        ("p50 latency, ms", theirs.load.p50_ms, ours.load.p50_ms, "{:.2f}"),
        ("p99 latency, ms", theirs.load.p99_ms, ours.load.p99_ms, "{:.2f}"),
        (f"{BATCH_ROWS}-row batch median, ms", theirs.batch_ms, ours.batch_ms, "{:.2f}"),
        ("errors (non-2xx + socket)", theirs.load.errors, ours.load.errors, "{:d}"),
    ]
    print()
    print(f"{'':32}{'MLServer ' + MLSERVER_VERSION:>16}{'Marina':>12}{'ratio':>10}")
    for label, mlserver, marina, form in rows:
        ratio = f"{marina / mlserver:.2f}x" if isinstance(mlserver, float) and mlserver else ""
        print(f"{label:32}{form.format(mlserver):>16}{form.format(marina):>12}{ratio:>10}")
    print()
    verdicts = [
        (
            f"throughput {throughput:.2f}x MLServer",
            throughput >= TARGET_THROUGHPUT_RATIO,
            f">= {TARGET_THROUGHPUT_RATIO}x",
        ),
        (f"p99 {p99:.2f}x MLServer", p99 <= TARGET_P99_RATIO, f"<= {TARGET_P99_RATIO}x"),
        (
            f"{BATCH_ROWS}-row batch {ours.batch_ms:.2f} ms (client-side median, upper bound of server time)",
            ours.batch_ms <= TARGET_BATCH_MS,
            f"<= {TARGET_BATCH_MS} ms",
        ),
    ]
    if ours.batch_server_ms is not None:
        server_ms = ours.batch_server_ms
        text = (
            f"{BATCH_ROWS}-row batch {server_ms:.2f} ms inside the server (mean, Marina's latency histogram)"
        )
        verdicts.append((text, server_ms <= TARGET_BATCH_MS, f"<= {TARGET_BATCH_MS} ms"))
    for text, met, target in verdicts:
        print(f"{'PASS' if met else 'MISS'}  {text} (target {target})")


if __name__ == "__main__":
    sys.exit(main())
