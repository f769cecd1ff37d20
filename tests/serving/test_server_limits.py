"""What a client may cost the server: body budget, timeouts, header limits, non-finite predictions.

The in-process tests drive the ASGI app directly; the rest start a real `marina serve` (uvicorn with
Marina's guarded connection) on loopback and attack it with raw sockets, as a misbehaving client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from server_helpers import Client, ServerProcess, wait_for_metric

from marina.serving import limits
from marina.serving.app import ServingApp
from marina.serving.limits import SMALL_BODY_BYTES, BodyBudget, ServerLimits
from marina.serving.metrics import STATISTICS_MAGNITUDE, RunningStatistics
from marina.serving.model import ServedModel

INFER = "/v2/models/diabetes/infer"
PREDICT = "/v1/models/diabetes:predict"
MIB = 1024 * 1024

# -- the budget's arithmetic ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "536870912\n"}, 536870912),  # cgroup v2
        ({"memory.max": "max\n"}, None),
        ({"memory/memory.limit_in_bytes": "268435456\n"}, 268435456),  # cgroup v1
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),  # v1's "no limit"
        ({}, None),
    ],
    ids=["v2", "v2-unlimited", "v1", "v1-unlimited", "none"],
)
def test_memory_limit_is_read_from_the_cgroup(
    tmp_path: Path, files: dict[str, str], expected: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert limits.memory_limit_bytes(tmp_path) == expected


def test_resident_bytes_reads_vmrss(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython3\nVmHWM:\t  90000 kB\nVmRSS:\t   46000 kB\n")
    assert limits.resident_bytes(status) == 46000 * 1024
    assert limits.resident_bytes(tmp_path / "absent") == 0
    assert limits.resident_bytes() > 0  # this process


def test_body_budget_is_half_of_what_the_limit_leaves() -> None:
    spare = 512 * MIB - 46 * MIB - limits.DECODE_EXPANSION * 16 * MIB
    assert limits.body_budget(512 * MIB, 46 * MIB, 16 * MIB) == spare // 2
    # a tight pod can still take one body of the maximum size; no limit: the default budget
    assert limits.body_budget(128 * MIB, 100 * MIB, 16 * MIB) == 16 * MIB
    assert limits.body_budget(None, 46 * MIB, 16 * MIB) == limits.UNLIMITED_BUDGET_BYTES


def test_reservations_share_the_budget_and_small_bodies_always_fit() -> None:
    budget = BodyBudget(total=1 * MIB)
    large = budget.reservation()
    assert large.grow(MIB - 10)
    other = budget.reservation()
    assert not other.grow(SMALL_BODY_BYTES + 1)  # would exceed the total
    assert other.grow(SMALL_BODY_BYTES)  # a small body is always served
    assert not other.grow(1)  # ... but it cannot grow past SMALL_BODY_BYTES while the budget is full
    large.release()
    assert budget.held == SMALL_BODY_BYTES and other.grow(1)
    other.release()
    assert budget.held == 0


@pytest.mark.parametrize(
    "field", ["max_body_bytes", "body_budget_bytes", "header_timeout_seconds", "max_connections"]
)
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServerLimits(**{field: 0})


def test_the_budget_holds_at_least_one_largest_body() -> None:
    with pytest.raises(ValueError, match="must be at least max_body_bytes"):
        ServerLimits(max_body_bytes=2 * MIB, body_budget_bytes=MIB)


# -- the app in process ---------------------------------------------------------------------


class StalledBody:
    """An ASGI `receive` that delivers part of a body, then waits forever (a client that stalls)."""

    def __init__(self, first: bytes) -> None:
        self.messages = [{"type": "http.request", "body": first, "more_body": True}]

    async def __call__(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def call(
    app: ServingApp, path: str, receive: Callable[[], Any], headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, str], Any]:
    """One POST through the ASGI interface; returns status, headers and the JSON body."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body["body"])


def test_a_large_body_that_does_not_fit_the_budget_is_refused_before_it_is_read(served: ServedModel) -> None:
    app = ServingApp(served, ServerLimits(max_body_bytes=4 * MIB, body_budget_bytes=4 * MIB))
    held = app.budget.reservation()
    assert held.grow(3 * MIB)  # another client's body in flight
    status, headers, body = call(app, INFER, StalledBody(b""), [(b"content-length", str(2 * MIB).encode())])
    assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
    assert "does not fit now" in body["error"]
    assert app.budget.held == 3 * MIB  # nothing leaked
    client = Client(app)  # a normal request still gets its answer
    assert client.post(PREDICT, json={"instances": [[1, 2, 3]]}).status_code == 200


def test_a_chunked_body_is_counted_as_it_arrives(served: ServedModel) -> None:
    app = ServingApp(served, ServerLimits(max_body_bytes=MIB, body_budget_bytes=MIB))
    assert app.budget.reservation().grow(MIB)  # the budget is full
    status, _, body = call(app, INFER, StalledBody(b" " * (SMALL_BODY_BYTES + 1)), [])
    assert status == 503 and "does not fit now" in body["error"]


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (PREDICT, {"instances": [[1, 2, 3], [1e308, -1e308, 0]]}),
        (
            INFER,
            {
                "inputs": [
                    {"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 1e308, -1e308, 0]}
                ]
            },
        ),
    ],
    ids=["v1", "v2"],
)
def test_a_non_finite_prediction_is_a_400_naming_the_row(client: Client, path: str, payload: Any) -> None:
    response = client.post(path, json=payload)
    assert response.status_code == 400
    assert response.json()["error"].startswith("row 1: the prediction is inf (inputs not finite or too large")
    assert 'marina_feature_count{feature="age",model="diabetes"} 0.0' in client.get("/metrics").text


@pytest.mark.parametrize("row", [[1e308, -1e308, 0], [1.5e308, 1e308, 0]], ids=["inf", "nan"])
def test_one_non_finite_prediction_is_a_400_too(client: Client, row: list[float]) -> None:
    for payload in (
        {"instances": [row]},
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": row}]},
    ):
        response = client.post(PREDICT if "instances" in payload else INFER, json=payload)
        assert response.status_code == 400
        assert response.json()["error"].startswith("row 0: the prediction is ")


def test_running_statistics_never_become_nan() -> None:
    statistics = RunningStatistics(2)
    statistics.add(np.array([[1.0, 2.0], [3.0, 4.0]]))
    statistics.add(np.array([[1e300, 1.0], [2.0, -STATISTICS_MAGNITUDE * 2]]))
    statistics.add(np.array([[5.0, 6.0]]))
    summary = statistics.summary()
    assert statistics.count == 3 and statistics.out_of_range == 2
    np.testing.assert_array_equal(summary["mean"], [3.0, 4.0])
    assert all(np.isfinite(value).all() for value in summary.values())


# -- a real server under attack --------------------------------------------------------------


@pytest.fixture
def guarded(artifact_file: tuple[str, str]) -> Iterator[ServerProcess]:
    process = ServerProcess(
        *artifact_file,
        "--header-timeout",
        "0.5",
        "--body-timeout",
        "2",
        "--max-body-bytes",
        str(4 * MIB),
        "--body-budget-bytes",
        str(12 * MIB),
    )
    process.wait_for_line("Uvicorn running on")
    yield process
    process.stop()


def read_reply(connection: socket.socket) -> tuple[str, dict[str, Any]]:
    """Status line and JSON body of the one response on a connection the server then closes."""
    reply = connection.makefile("rb").read()
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), json.loads(body)


def test_headers_that_never_finish_get_408(guarded: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as connection:
        connection.sendall(b"POST /v1/models/dm:predict HTTP/1.1\r\nHost: x\r\n")
        status, body = read_reply(connection)
    assert status == "HTTP/1.1 408 Request Timeout"
    assert body == {"error": "the request headers did not arrive within 0.5 s"}
    wait_for_metric(f"{guarded.base}/metrics", 'marina_http_connections_refused_total{status="408"} 1.0')


def test_a_body_that_never_finishes_gets_408(guarded: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as connection:
        connection.sendall(b"POST /v1/models/dm:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        status, body = read_reply(connection)
    assert status == "HTTP/1.1 408 Request Timeout"
    assert body == {"error": "the request body did not arrive within 2 s"}
    wait_for_metric(f"{guarded.base}/metrics", 'marina_http_connections_refused_total{status="408"} 1.0')
    wait_for_metric(
        f"{guarded.base}/metrics", 'marina_http_requests_total{endpoint="v1_predict",status="499"} 1.0'
    )
    wait_for_metric(f"{guarded.base}/metrics", "marina_http_requests_in_flight 1.0")  # only the scrape


def test_oversized_headers_get_431(guarded: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as connection:
        connection.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 70_000 + b"\r\n\r\n")
        status, body = read_reply(connection)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert body == {"error": "request line and headers exceed 65536 bytes"}
    wait_for_metric(f"{guarded.base}/metrics", 'marina_http_connections_refused_total{status="431"} 1.0')


def stall(port: int, declared: int, sent: int) -> socket.socket:
    """A client that declares a body, sends most of it and stalls (a refused one is closed by the server)."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST /v2/models/dm/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n"
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):  # refused with 503 and closed
        connection.sendall(head.encode() + b" " * sent)
    return connection


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_stalled_large_bodies_cannot_exhaust_memory_and_normal_clients_are_served(
    guarded: ServerProcess,
) -> None:
    """Twenty clients each send most of a 4 MiB body and stall: three fit the 12 MiB budget, the rest
    get 503 at once; a normal client is answered throughout; when the stalled ones time out, large
    bodies fit again. The server's peak memory grows by no more than the budget plus buffers."""
    pid, port = guarded.process.pid, guarded.port
    baseline = vm_hwm(pid)
    declared, sent = 4 * MIB, 4 * MIB - 100_000
    stalled = [stall(port, declared, sent) for _ in range(20)]
    try:
        wait_for_metric(
            f"{guarded.base}/metrics", 'marina_http_requests_total{endpoint="v2_infer",status="503"} 17.0'
        )
        row = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
        answers = [httpx.post(f"{guarded.base}/v2/models/dm/infer", json=row).status_code for _ in range(20)]
        assert answers == [200] * 20
        # per connection, uvicorn buffers at most its 64 KiB high-water mark before pausing the socket
        bound = 12 * MIB + 20 * (64 * 1024 + 16 * 1024) + 16 * MIB  # + interpreter and allocator slack
        assert vm_hwm(pid) - baseline <= bound
        wait_for_metric(
            f"{guarded.base}/metrics",
            'marina_http_connections_refused_total{status="408"} 3.0',
            timeout=15,
        )
    finally:
        for connection in stalled:
            connection.close()
    big = {"inputs": [{"name": "x", "shape": [100_000, 3], "datatype": "FP64", "data": [1.0] * 300_000}]}
    assert httpx.post(f"{guarded.base}/v2/models/dm/infer", json=big, timeout=30).status_code == 200
