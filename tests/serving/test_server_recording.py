"""The hot path's buffering: answered rows reach every sink once, in order, in the window they arrived
in; a response's writes leave in one piece."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from server_helpers import ServerProcess

from marina.serving.connection import CorkedTransport
from marina.serving.recording import Recorder


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Collected:
    """A sink that keeps copies of what it was handed (the recorder reuses its buffers)."""

    def __init__(self) -> None:
        self.batches: list[tuple[np.ndarray, np.ndarray, float]] = []

    def __call__(self, features: np.ndarray, predictions: np.ndarray, at: float) -> None:
        self.batches.append((features.copy(), predictions.copy(), at))

    @property
    def features(self) -> np.ndarray:
        return np.vstack([f for f, _, _ in self.batches])


def test_every_row_reaches_every_sink_once_in_order() -> None:
    rng = np.random.default_rng(3)
    requests = [rng.normal(size=(n, 3)) for n in (1, 5, 2, 40, 1, 100, 3)]  # 100 > the buffer
    sinks = [Collected(), Collected()]
    recorder = Recorder(3, sinks, clock=Clock(10.0), rows=16)
    for rows in requests:
        recorder.add(rows, rows.sum(axis=1))
    recorder.flush()
    everything = np.vstack(requests)
    for sink in sinks:
        np.testing.assert_array_equal(sink.features, everything)
        np.testing.assert_array_equal(np.concatenate([p for _, p, _ in sink.batches]), everything.sum(axis=1))
    # 1 + 5 + 2 wait; 40 does not fit what is left: the 8 go, then the 40 as they are; and so on
    assert [len(p) for _, p, _ in sinks[0].batches] == [8, 40, 1, 100, 3]


def test_rows_are_delivered_before_their_window_closes() -> None:
    clock, sink = Clock(119.0), Collected()
    recorder = Recorder(2, [sink], window_seconds=60.0, clock=clock, rows=64)
    recorder.add(np.ones((1, 2)), np.ones(1))
    clock.now = 119.5
    recorder.add(np.ones((2, 2)), np.ones(2))
    assert sink.batches == []  # still pending: nothing is full and the window is open
    clock.now = 120.0
    recorder.add(np.zeros((1, 2)), np.zeros(1))
    assert [(len(p), at) for _, p, at in sink.batches] == [(3, 119.0)]
    recorder.flush()
    assert [(len(p), at) for _, p, at in sink.batches] == [(3, 119.0), (1, 120.0)]


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def test_a_corked_transport_holds_writes_until_released() -> None:
    raw = FakeTransport()
    transport = CorkedTransport(raw)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # not corked: at once
    transport.corked = True
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(memoryview(b"{}"))
    assert raw.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.release()
    assert raw.writes[1:] == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    transport.corked = True
    transport.write(b"bye")
    transport.close()  # nothing held is lost
    assert raw.writes[2:] == [b"bye"] and raw.closed


@pytest.fixture
def server(artifact_file: tuple[str, str]) -> Iterator[ServerProcess]:
    process = ServerProcess(*artifact_file)
    process.wait_for_line("Uvicorn running on")
    yield process
    process.stop()


def test_pipelined_and_expect_continue_requests_are_answered(server: ServerProcess) -> None:
    body = b'{"instances": [[1, 2, 3]]}'
    request = (
        b"POST /v1/models/dm:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request * 3)  # three requests in one segment
        replies = _read_replies(connection, 3)
    assert [status for status, _ in replies] == ["HTTP/1.1 200 OK"] * 3
    assert {payload for _, payload in replies} == {b'{"predictions":[1.25]}'}
    expecting = request.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n", 1).removesuffix(body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(expecting)
        assert connection.recv(1024).startswith(b"HTTP/1.1 100 Continue")  # before the body is sent
        connection.sendall(body)
        assert _read_replies(connection, 1) == [("HTTP/1.1 200 OK", b'{"predictions":[1.25]}')]


def _read_replies(connection: socket.socket, count: int) -> list[tuple[str, bytes]]:
    stream = connection.makefile("rb")
    replies = []
    for _ in range(count):
        status = stream.readline().decode().strip()
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        replies.append((status, stream.read(length)))
    return replies
