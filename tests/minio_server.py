"""A real MinIO server on a free loopback port, for the tests that talk S3 (a pytest plugin of conftest.py).

Its binary is the one `hack/build-binaries.sh minio` builds into the cache (the same pinned build the
cluster uses); the fixture builds it when missing and FAILS, never skips, when it cannot.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from marina import storage

REPO = Path(__file__).resolve().parents[1]


def minio_binary_path() -> Path:
    versions = (REPO / "hack" / "lib" / "versions.sh").read_text()
    match = re.search(r"^MINIO_VERSION=(\S+)", versions, re.MULTILINE)
    assert match, "hack/lib/versions.sh does not pin MINIO_VERSION"
    cache = Path(
        os.environ.get("MARINA_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "marina"
    )
    return cache / f"minio-{match.group(1)}" / "minio"


@pytest.fixture(scope="session")
def minio_binary() -> Path:
    """The pinned MinIO server, built by hack/build-binaries.sh when not cached yet."""
    path = minio_binary_path()
    if not (path.parent / ".complete").exists():
        build = subprocess.run(
            ["bash", str(REPO / "hack" / "build-binaries.sh"), "minio"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if build.returncode != 0 or not path.exists():
            pytest.fail(
                f"no MinIO server binary at {path} and `bash hack/build-binaries.sh minio` failed "
                f"(exit {build.returncode}): {build.stderr[-2000:]}"
            )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class MinioServer:
    endpoint: str
    access_key: str
    secret_key: str

    def environment(self) -> dict[str, str]:
        return {
            storage.ENDPOINT_ENV: self.endpoint,
            storage.ACCESS_KEY_ENV: self.access_key,
            storage.SECRET_KEY_ENV: self.secret_key,
        }


def drive_paths(root: Path, drives: int) -> list[Path]:
    """The folders a MinIO of `drives` drives keeps its data in: `root/data` for one, else
    `root/drive0` ... (erasure-coded over them, as the cluster's MinIO is)."""
    return [root / "data"] if drives == 1 else [root / f"drive{index}" for index in range(drives)]


def start(
    binary: Path,
    root: Path,
    server: MinioServer,
    port: int,
    output: Any,
    drives: int = 1,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[Any]:
    """The pinned MinIO on loopback `port` with the server's root credentials, data under `root/data`, or
    erasure-coded over `drives` folders (also what benchmarks/data_bench.py and minio_bench.py run)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root),
        "MINIO_ROOT_USER": server.access_key,
        "MINIO_ROOT_PASSWORD": server.secret_key,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        # Erasure mode refuses drives on the host's root file system (they would not be separate disks);
        # a test's or benchmark's folders are all there. In the cluster each drive is its own mount.
        "MINIO_ROOTDRIVE_THRESHOLD_SIZE": "1",
        **(extra_env or {}),
    }
    command = [str(binary), "server", "--quiet", "--address", f"127.0.0.1:{port}"]
    command += ["--console-address", f"127.0.0.1:{free_port()}"]
    command += [str(path) for path in drive_paths(root, drives)]
    return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)


def wait_until_ready(process: subprocess.Popen[Any], url: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"MinIO exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)  # poll again until the deadline
    pytest.fail(f"MinIO did not become ready within {timeout:.0f}s: {log.read_text()[-2000:]}")


@contextmanager
def serving(
    binary: Path, root: Path, server: MinioServer, drives: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[None]:
    """`server` (its endpoint a free loopback port) answering over `drives` folders under `root` while
    in the block; stopped afterwards."""
    port = int(server.endpoint.rsplit(":", 1)[1])
    log = root / "minio.log"
    with log.open("wb") as output:
        process = start(binary, root, server, port, output, drives, extra_env)
    try:
        wait_until_ready(process, f"{server.endpoint}/minio/health/ready", log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def minio_server(minio_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A throw-away MinIO on a free loopback port with random credentials; stopped afterwards."""
    server = MinioServer(f"http://127.0.0.1:{free_port()}", "marina-test", secrets.token_hex(16))
    with serving(minio_binary, tmp_path_factory.mktemp("minio"), server):
        yield server


@pytest.fixture
def s3_env(minio_server: MinioServer, monkeypatch: pytest.MonkeyPatch) -> MinioServer:
    for name, value in minio_server.environment().items():
        monkeypatch.setenv(name, value)
    return minio_server
