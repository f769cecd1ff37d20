"""`marina serve` end to end: refusal on a bad artifact, a real uvicorn process, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_helpers import ServerProcess, wait_for_metric

from marina.cli import main
from marina.model.artifact import ModelArtifact

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


@pytest.mark.parametrize(
    "flags",
    [["--sha256", "abc"], ["--name", "a/b"], ["--max-body-bytes", "0"], ["--extrapolation", "warn"]],
)
def test_rejects_bad_flags(artifact_file: tuple[str, str], flags: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", artifact_file[0], *flags])
    assert exit_info.value.code == 2


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
    server.wait_for_line("rows outside the training data: allow")


def test_reject_is_a_flag_of_serve(artifact_file: tuple[str, str], artifact: ModelArtifact) -> None:
    """The operator maps spec.serving.extrapolation (Allow | Reject) to it; any case is accepted."""
    process = ServerProcess(*artifact_file, "--extrapolation", "Reject")
    try:
        process.wait_for_line("rows outside the training data: reject")
        process.wait_for_line("Uvicorn running on")
        far = [[1.0, 2.0, 3.0e6]]  # bp far beyond its training range
        response = httpx.post(f"{process.base}/v1/models/dm:predict", json={"instances": far})
        assert response.status_code == 422 and response.json()["error"].startswith("row 0 is outside")
    finally:
        process.stop()


def test_sigterm_lets_the_in_flight_request_finish(server: ServerProcess, artifact: ModelArtifact) -> None:
    server.wait_for_line("Uvicorn running on")
    body = json.dumps({"instances": [[1, 2, 3]]}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        head = f"POST /v1/models/dm:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        connection.sendall(head.encode() + body[:5])
        wait_for_metric(f"{server.base}/metrics", "marina_http_requests_in_flight 2.0")  # ours and the scrape
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
