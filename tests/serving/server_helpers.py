"""Shared by the server tests: the example model's features and an in-process ASGI client."""

from __future__ import annotations

import asyncio
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from marina.serving.app import ServingApp

FEATURES = ["age", "bmi", "bp"]
TRAINING: dict[str, dict[str, Any]] = {  # the training split's statistics, as `marina train` records them
    "age": {"count": 100, "mean": 2.0, "std": 2.0, "min": 0.0, "max": 9.0, "missing": 0},
    "bmi": {"count": 100, "mean": 5.0, "std": 0.0, "min": 5.0, "max": 5.0, "missing": 0},
    "bp": {"count": 100, "mean": 7.5, "std": 3.0, "min": 1.0, "max": 20.0, "missing": 2},
}


@dataclass
class Client:
    """Synchronous calls into an ASGI app through httpx's in-process transport: each on a new event loop,
    or all on `loop` (for an app that keeps connections of its own on the loop, as the shadow's; its
    events are handled while a call runs)."""

    app: ServingApp
    loop: asyncio.AbstractEventLoop | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://marina") as client:
                return await client.request(method, path, **kwargs)

        if self.loop is None:
            return asyncio.run(call())
        return self.loop.run_until_complete(call())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


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

    def __init__(self, path: str, sha256: str, *flags: str) -> None:
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
                *flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

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

    def all_output(self, timeout: float = 20.0) -> list[str]:
        """Every line the process wrote, once it has ended and its output is read to the end."""
        self.process.wait(timeout)
        self.reader.join(timeout)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return self.output

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
