"""`marina serve` end to end: refusal on a bad artifact, a real uvicorn process, SIGTERM."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from marina.artifact import ModelArtifact
from marina.cli import main

WRONG_SHA = "0" * 64


def test_refuses_to_start_on_sha256_mismatch(
    artifact_file: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, sha256 = artifact_file
    assert main(["serve", "--model", path, "--sha256", WRONG_SHA, "--port", "1"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        f"marina serve: cannot serve {path}: sha256 mismatch for {path}: expected {WRONG_SHA}, got {sha256}; "
        "refusing to use it"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read"), (b"{not json", "artifact is not valid JSON"), (b"{}", "missing required fields")],
    ids=["missing", "not-json", "not-an-artifact"],
)
def test_refuses_to_start_on_unreadable_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, problem: str
) -> None:
    path = tmp_path / "model.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["serve", "--model", str(path), "--port", "1"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"marina serve: cannot serve {path}: ")
    assert problem in error
    assert error.count("\n") == 1  # one line


@pytest.mark.parametrize("flags", [["--sha256", "abc"], ["--name", "a/b"], ["--max-body-bytes", "0"]])
def test_rejects_bad_flags(artifact_file: tuple[str, str], flags: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", artifact_file[0], *flags])
    assert exit_info.value.code == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_metric(url: str, line: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while line not in httpx.get(url).text.splitlines():
        assert time.monotonic() < deadline, f"{line!r} never appeared at {url}"
        time.sleep(0.02)


class ServerProcess:
    """`marina serve` in a child process on a free loopback port, its output read line by line."""

    def __init__(self, path: str, sha256: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "marina.cli",
                "serve",
                "--model",
                path,
                "--sha256",
                sha256,
                "--name",
                "dm",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.output):
            try:
                self.output.append(self.lines.get(timeout=max(deadline - time.monotonic(), 0.001)))
            except queue.Empty:
                raise AssertionError(
                    f"no line with {text!r} in {timeout} s; output:\n{''.join(self.output)}"
                ) from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def server(artifact_file: tuple[str, str]) -> Iterator[ServerProcess]:
    process = ServerProcess(*artifact_file)
    yield process
    process.stop()


def test_serves_over_http_and_logs_the_model(
    server: ServerProcess, artifact_file: tuple[str, str], artifact: ModelArtifact
) -> None:
    server.wait_for_line("Uvicorn running on")
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    response = httpx.post(f"{server.base}/v2/models/dm/infer", json=body)
    assert response.json()["outputs"][0]["data"] == artifact.predict(np.array([[1, 2, 3]])).tolist()
    response = httpx.post(f"{server.base}/v1/models/dm:predict", json={"instances": [[1, 2, 3]]})
    assert response.json() == {"predictions": artifact.predict(np.array([[1, 2, 3]])).tolist()}
    server.wait_for_line(f"serving model 'dm' version {artifact_file[1][:12]}")


def test_sigterm_lets_the_in_flight_request_finish(server: ServerProcess, artifact: ModelArtifact) -> None:
    server.wait_for_line("Uvicorn running on")
    body = json.dumps({"instances": [[1, 2, 3]]}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        head = f"POST /v1/models/dm:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        connection.sendall(head.encode() + body[:5])
        wait_for_metric(f"{server.base}/metrics", "marina_http_requests_in_flight 2")  # ours and the scrape
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_line("Shutting down")
        connection.sendall(body[5:])
        reply = connection.makefile("rb").read()
    status_line, _, payload = reply.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK"
    assert json.loads(payload.partition(b"\r\n\r\n")[2]) == {
        "predictions": artifact.predict(np.array([[1, 2, 3]])).tolist()
    }
    # uvicorn >= 0.29 shuts down gracefully, then re-raises SIGTERM so the exit status says why
    assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)
    server.wait_for_line("Application shutdown complete")


def test_the_server_never_imports_the_operator_stack() -> None:
    code = (
        "import sys; from marina.cli import build_parser; build_parser(['serve']); "
        "print(sorted(m for m in ('kopf', 'kubernetes', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
