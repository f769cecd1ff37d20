"""The storage module: local paths, s3:// URIs, settings from the environment, clear errors.

The s3:// tests run against a real MinIO server started on a free loopback port. Its binary is the
one `hack/build-binaries.sh minio` builds into the cache (the same pinned build the cluster uses);
the fixture builds it when missing and FAILS, never skips, when it cannot.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from marina import storage
from marina.storage import StorageError

REPO = Path(__file__).resolve().parents[1]
SECRET_NAMES = (storage.ACCESS_KEY_ENV, storage.SECRET_KEY_ENV)

# --- pure helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "names", "expected"),
    [
        ("s3://marina/datasets", ("abc", "train.csv"), "s3://marina/datasets/abc/train.csv"),
        ("s3://marina/datasets/", ("/abc/",), "s3://marina/datasets/abc"),
        ("/tmp/store", ("abc", "train.csv"), "/tmp/store/abc/train.csv"),
    ],
)
def test_join(base: str, names: tuple[str, ...], expected: str) -> None:
    assert storage.join(base, *names) == expected


def test_parse_s3() -> None:
    location = storage.parse_s3("s3://marina/models/m.json")
    assert (location.bucket, location.key, location.uri) == (
        "marina",
        "models/m.json",
        "s3://marina/models/m.json",
    )
    assert storage.is_s3("s3://b/k") and not storage.is_s3("/b/k")


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/", "s3:///key", "http://bucket/key"])
def test_parse_s3_rejects_incomplete_uris(uri: str) -> None:
    with pytest.raises(StorageError, match="expected s3://bucket/key"):
        storage.parse_s3(uri)


# --- local files ------------------------------------------------------------------------------------


def test_local_write_read_exists(tmp_path: Path) -> None:
    uri = str(tmp_path / "deep" / "folder" / "object.bin")
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"\x00payload")
    assert storage.exists(uri) and storage.read_bytes(uri) == b"\x00payload"
    storage.write_bytes(uri, b"second")
    assert storage.read_bytes(uri) == b"second"
    assert [p.name for p in (tmp_path / "deep" / "folder").iterdir()] == ["object.bin"]  # no temp file left


def test_local_errors_say_which_object(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot read .*missing\.json: No such file or directory"):
        storage.read_bytes(str(tmp_path / "missing.json"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match=r"cannot write .*file/child"):
        storage.write_bytes(str(tmp_path / "file" / "child"), b"x")


# --- settings and error descriptions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MARINA_S3_ENDPOINT is not set"),
        ({storage.ENDPOINT_ENV: "ftp://host:9000"}, "must look like http://host:port"),
        (
            {storage.ENDPOINT_ENV: "http://minio:9000"},
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set",
        ),
        ({storage.ENDPOINT_ENV: "http://minio:9000", storage.ACCESS_KEY_ENV: "k"}, "must be set"),
    ],
)
def test_settings_errors(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name in (storage.ENDPOINT_ENV, *SECRET_NAMES):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StorageError, match=message):
        storage.S3Settings.from_environment()


@pytest.mark.parametrize(
    ("endpoint", "netloc", "secure"),
    [
        ("http://minio:9000", "minio:9000", False),
        ("https://s3.local", "s3.local", True),
        ("minio:9000", "minio:9000", False),
    ],
)
def test_settings_from_environment_hide_secrets(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, netloc: str, secure: bool
) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, endpoint)
    monkeypatch.setenv(storage.ACCESS_KEY_ENV, "AKIDEXAMPLE")
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "very-secret-value")
    settings = storage.S3Settings.from_environment()
    assert (settings.endpoint, settings.secure) == (netloc, secure)
    assert "very-secret-value" not in repr(settings) and "AKIDEXAMPLE" not in repr(settings)


@dataclass
class CodedError(Exception):
    code: str


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("NoSuchKey", "what: not found (NoSuchKey)"),
        ("NoSuchBucket", "what: not found (NoSuchBucket)"),
        ("AccessDenied", "what: access denied (AccessDenied); check the credentials Secret"),
        (
            "SignatureDoesNotMatch",
            "what: access denied (SignatureDoesNotMatch); check the credentials Secret",
        ),
        ("SlowDown", "what: object storage answered SlowDown"),
    ],
)
def test_sdk_errors_are_described(code: str, message: str) -> None:
    assert str(storage._describe(CodedError(code), "what")) == message


def test_network_errors_name_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, "http://127.0.0.1:1")
    described = str(storage._describe(ConnectionRefusedError("refused\nmore"), "cannot read s3://b/k"))
    expected = "object storage at http://127.0.0.1:1 unreachable (ConnectionRefusedError: refused)"
    assert described == f"cannot read s3://b/k: {expected}"


# --- a real MinIO server ------------------------------------------------------------------------------


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


@pytest.fixture(scope="session")
def minio_server(minio_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A throw-away MinIO on a free loopback port with random credentials; stopped afterwards."""
    root = tmp_path_factory.mktemp("minio")
    port = free_port()
    server = MinioServer(f"http://127.0.0.1:{port}", "marina-test", secrets.token_hex(16))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root),
        "MINIO_ROOT_USER": server.access_key,
        "MINIO_ROOT_PASSWORD": server.secret_key,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
    }
    log = root / "minio.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(minio_binary),
                "server",
                "--quiet",
                "--address",
                f"127.0.0.1:{port}",
                "--console-address",
                f"127.0.0.1:{free_port()}",
                str(root / "data"),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(process, f"{server.endpoint}/minio/health/ready", log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_env(minio_server: MinioServer, monkeypatch: pytest.MonkeyPatch) -> MinioServer:
    for name, value in minio_server.environment().items():
        monkeypatch.setenv(name, value)
    return minio_server


def test_s3_write_read_exists(s3_env: MinioServer) -> None:
    uri = f"s3://storage-test-{secrets.token_hex(4)}/folder/object.json"
    assert not storage.exists(uri)  # the bucket does not even exist yet
    storage.write_bytes(uri, b'{"a": 1}', "application/json")  # creates the bucket
    assert storage.exists(uri) and storage.read_bytes(uri) == b'{"a": 1}'
    assert not storage.exists(uri + ".other")
    with pytest.raises(StorageError, match=r"cannot read s3://.*/missing: not found \(NoSuchKey\)"):
        storage.read_bytes(storage.join(uri.rsplit("/", 1)[0], "missing"))


def test_s3_wrong_credentials_are_named_but_not_shown(
    s3_env: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "wrong-secret-value")
    with pytest.raises(StorageError) as caught:
        storage.read_bytes("s3://marina/anything")
    message = str(caught.value)
    assert "access denied" in message and "check the credentials Secret" in message
    assert "wrong-secret-value" not in message and s3_env.secret_key not in message


def test_s3_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch, s3_env: MinioServer) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        StorageError,
        match=r"cannot write s3://marina/x: object storage at http://127\.0\.0\.1:\d+ "
        r"unreachable",
    ):
        storage.write_bytes("s3://marina/x", b"x")


def test_prepare_then_train_round_trip_over_s3(
    s3_env: MinioServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from marina import artifact, dataset
    from marina.cli import main

    bucket = f"s3://roundtrip-{secrets.token_hex(4)}"
    prepare = [
        "prepare",
        "--source",
        "synthetic:rows=200,features=3,seed=2",
        "--output",
        f"{bucket}/datasets",
    ]
    assert main(prepare) == 0
    prepared = json.loads(capsys.readouterr().out)
    assert prepared["uri"] == f"{bucket}/datasets/{prepared['version']}" and prepared["reused"] is False
    assert main(prepare) == 0
    assert json.loads(capsys.readouterr().out)["reused"] is True
    assert dataset.load(prepared["uri"]).data.sha256 == prepared["sha256"]

    assert main(["train", "--data", prepared["uri"], "--output", f"{bucket}/models", "--penalty", "l2"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["uri"] == f"{bucket}/models/model-{trained['sha256']}.json"
    model = artifact.load(trained["uri"], trained["sha256"])
    assert model.dataset["uri"] == prepared["uri"] and model.metrics["r2"] > 0.9
    source = prepared["uri"] + "/train.csv"
    csv_copy = f"{bucket}/raw/copy.csv"
    storage.write_bytes(csv_copy, storage.read_bytes(source))
    assert main(["prepare", "--source", csv_copy, "--output", f"{bucket}/datasets"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == prepared["trainRows"]
