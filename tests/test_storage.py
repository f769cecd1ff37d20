"""The storage module: local paths, s3:// URIs, settings from the environment, typed errors.

The s3:// tests run against a real MinIO server started on a free loopback port (tests/minio_server.py).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3 import HTTPResponse
from urllib3.exceptions import MaxRetryError

from marina import storage
from marina.contract import FailureKind
from marina.storage import (
    InvalidLocation,
    StorageAccessDenied,
    StorageError,
    StorageNotConfigured,
    StorageNotFound,
    StorageRejected,
    StorageUnavailable,
)
from minio_server import MinioServer, free_port

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
    with pytest.raises(InvalidLocation, match="expected s3://bucket/key"):
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


def test_local_list_folder(tmp_path: Path) -> None:
    for name in ("b/x", "a/y", "c.csv"):
        storage.write_bytes(str(tmp_path / name), b"")
    assert storage.list_folder(str(tmp_path)) == ["a", "b", "c.csv"]
    with pytest.raises(StorageNotFound, match="cannot list"):
        storage.list_folder(str(tmp_path / "nothing"))


def test_local_errors_say_which_object(tmp_path: Path) -> None:
    with pytest.raises(StorageNotFound, match=r"cannot read .*missing\.json: No such file or directory"):
        storage.read_bytes(str(tmp_path / "missing.json"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidLocation, match=r"cannot write .*file/child"):
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
    with pytest.raises(StorageNotConfigured, match=message):
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


def s3_error(code: str, status: int) -> S3Error:
    return S3Error(HTTPResponse(body=b"", status=status), code, "said the server", "/b/k", "req", "host")


@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (s3_error("NoSuchKey", 404), StorageNotFound, "what: not found (NoSuchKey)"),
        (s3_error("NoSuchBucket", 404), StorageNotFound, "what: not found (NoSuchBucket)"),
        (s3_error("AccessDenied", 403), StorageAccessDenied, "what: access denied (AccessDenied)"),
        (
            s3_error("SignatureDoesNotMatch", 403),
            StorageAccessDenied,
            "access denied (SignatureDoesNotMatch)",
        ),
        (s3_error("InvalidAccessKeyId", 403), StorageAccessDenied, "access denied (InvalidAccessKeyId)"),
        (s3_error("SlowDown", 503), StorageUnavailable, "what: object storage answered SlowDown"),
        (s3_error("XMinioStorageFull", 507), StorageUnavailable, "object storage answered XMinioStorageFull"),
        (s3_error("ServiceUnavailable", 503), StorageUnavailable, "answered ServiceUnavailable"),
        (s3_error("InternalError", 500), StorageUnavailable, "answered InternalError"),
        (s3_error("XMinioSomethingNew", 502), StorageUnavailable, "answered XMinioSomethingNew"),
        (s3_error("InvalidBucketName", 400), StorageRejected, "answered InvalidBucketName"),
        (
            ServerError("server failed with HTTP status code 503", 503),
            StorageUnavailable,
            "answered HTTP 503",
        ),
        (ServerError("server failed with HTTP status code 400", 400), StorageRejected, "answered HTTP 400"),
        (InvalidResponseError(502, "text/html", "<html>"), StorageUnavailable, "answered HTTP 502"),
        (InvalidResponseError(403, "text/html", "<html>"), StorageAccessDenied, "access denied"),
        (MaxRetryError(None, "/b/k", "too many 503 error responses"), StorageUnavailable, "unreachable"),
        (
            ConnectionRefusedError("refused"),
            StorageUnavailable,
            "unreachable (ConnectionRefusedError: refused)",
        ),
        (ValueError("Bucket name does not follow S3 standards"), InvalidLocation, "Bucket name does not"),
    ],
)
def test_sdk_errors_are_typed_by_what_went_wrong(
    error: Exception, expected: type[StorageError], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, "http://127.0.0.1:1")
    described = storage._describe(error, "what")
    assert type(described) is expected and message in str(described)
    assert str(described).count("\n") == 0 and "said the server" not in str(described)


def test_a_bug_is_not_a_storage_error() -> None:
    assert storage._describe(TypeError("unsupported operand"), "what") is None


@pytest.mark.parametrize(
    ("error", "kind", "exit_code"),
    [
        (StorageUnavailable, FailureKind.STORAGE_UNAVAILABLE, 75),
        (StorageAccessDenied, FailureKind.STORAGE_DENIED, 75),
        (StorageNotConfigured, FailureKind.STORAGE_CONFIG, 75),
        (StorageNotFound, FailureKind.STORAGE_NOT_FOUND, 1),
        (StorageRejected, FailureKind.STORAGE_REJECTED, 1),
        (InvalidLocation, FailureKind.SPEC, 1),
    ],
)
def test_each_storage_error_has_its_kind_and_exit_code(
    error: type[StorageError], kind: FailureKind, exit_code: int
) -> None:
    assert error.kind is kind and kind.exit_code == exit_code


def test_network_errors_name_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, "http://127.0.0.1:1")
    described = str(storage._describe(ConnectionRefusedError("refused\nmore"), "cannot read s3://b/k"))
    expected = "object storage at http://127.0.0.1:1 unreachable (ConnectionRefusedError: refused)"
    assert described == f"cannot read s3://b/k: {expected}"


# --- a real MinIO server -------------------------------------------------------------------------------


def test_s3_write_read_exists(s3_env: MinioServer) -> None:
    uri = f"s3://storage-test-{secrets.token_hex(4)}/folder/object.json"
    assert not storage.exists(uri)  # the bucket does not even exist yet
    storage.write_bytes(uri, b'{"a": 1}', "application/json")  # creates the bucket
    assert storage.exists(uri) and storage.read_bytes(uri) == b'{"a": 1}'
    assert not storage.exists(uri + ".other")
    with pytest.raises(StorageNotFound, match=r"cannot read s3://.*/missing: not found \(NoSuchKey\)"):
        storage.read_bytes(storage.join(uri.rsplit("/", 1)[0], "missing"))


def test_s3_list_folder(s3_env: MinioServer) -> None:
    bucket = f"s3://list-test-{secrets.token_hex(4)}"
    for key in ("data/a/x.json", "data/a/y.json", "data/b/z.json", "data/top.csv", "other/w.json"):
        storage.write_bytes(f"{bucket}/{key}", b"{}")
    assert storage.list_folder(f"{bucket}/data") == ["a", "b", "top.csv"]
    assert storage.list_folder(f"{bucket}/data/") == ["a", "b", "top.csv"]
    assert storage.list_folder(bucket) == ["data", "other"]
    assert storage.list_folder(f"{bucket}/nothing") == []


def test_s3_wrong_credentials_are_named_but_not_shown(
    s3_env: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "wrong-secret-value")
    with pytest.raises(StorageAccessDenied) as caught:
        storage.read_bytes("s3://marina/anything")
    message = str(caught.value)
    assert "access denied" in message and "check the credentials Secret" in message
    assert "wrong-secret-value" not in message and s3_env.secret_key not in message


def test_s3_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch, s3_env: MinioServer) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        StorageUnavailable,
        match=r"cannot write s3://marina/x: object storage at http://127\.0\.0\.1:\d+ "
        r"unreachable",
    ):
        storage.write_bytes("s3://marina/x", b"x")


def test_prepare_then_train_round_trip_over_s3(
    s3_env: MinioServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from marina.cli import main
    from marina.data import dataset
    from marina.model import artifact

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
    stored = dataset.load(prepared["uri"])
    csv_copy = f"{bucket}/raw/copy.csv"
    storage.write_bytes(csv_copy, dataset.to_csv(stored.columns, stored.data.train))
    assert main(["prepare", "--source", csv_copy, "--output", f"{bucket}/datasets"]) == 0
    copied = json.loads(capsys.readouterr().out)
    assert copied["rows"] == prepared["trainRows"]


def test_train_reads_the_prefix_prepare_wrote_over_s3(
    s3_env: MinioServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from marina.cli import main

    datasets, models = f"s3://prefix-{secrets.token_hex(4)}/datasets", f"s3://prefix-{secrets.token_hex(4)}/m"
    prepare = ["prepare", "--source", "synthetic:rows=60,features=2", "--output", datasets]
    assert main([*prepare, "--seed", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["train", "--data", datasets, "--output", models]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["datasetVersion"] == first["version"] and captured.err == ""

    assert main([*prepare, "--seed", "2"]) == 0
    second = json.loads(capsys.readouterr().out)
    created = {
        v: json.loads(storage.read_bytes(f"{datasets}/{v}/dataset.json"))["created"]
        for v in (first["version"], second["version"])
    }
    newest = max(created, key=lambda v: (created[v], v))
    assert main(["train", "--data", f"{datasets}/", "--output", models]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["datasetVersion"] == newest
    assert captured.err == (
        f"marina train: {datasets} holds 2 dataset versions; using the newest, {newest} "
        f"(created {created[newest]})\n"
    )


# --- storage identities: one MinIO user per namespace, reaching only its own prefixes ---------------


def test_area_policy_reads_and_writes_own_prefixes_reads_shared_ones_and_deletes_nothing() -> None:
    policy = storage.area_policy(["s3://b/raw/ns/", "s3://b/models/ns/"], ["s3://other/shared/"])
    by_sid = {s.get("Sid", s["Action"][0]): s for s in policy["Statement"]}
    assert by_sid["ReadWriteOwnArea"]["Resource"] == ["arn:aws:s3:::b/raw/ns/*", "arn:aws:s3:::b/models/ns/*"]
    assert by_sid["ReadSharedPrefixes"] == {
        "Sid": "ReadSharedPrefixes",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": ["arn:aws:s3:::other/shared/*"],
    }
    listing = [s for s in policy["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert [(s["Resource"], s["Condition"]["StringLike"]["s3:prefix"]) for s in listing] == [
        (["arn:aws:s3:::b"], ["models/ns/*", "raw/ns/*"]),
        (["arn:aws:s3:::other"], ["shared/*"]),
    ]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation"}


@pytest.mark.parametrize("prefix", ["s3://b/raw/ns", "s3://b/", "/local/raw/ns/", "s3:///raw/"])
def test_area_policy_needs_folder_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidLocation, match="is not an s3://bucket/folder/ prefix"):
        storage.area_policy([prefix])


def admin_error(status: int, code: str) -> Exception:
    from minio.error import MinioAdminException

    return MinioAdminException(str(status), json.dumps({"Code": code, "Message": "said the server"}))


@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (admin_error(404, "XMinioAdminNoSuchUser"), StorageNotFound, "not found (XMinioAdminNoSuchUser)"),
        (admin_error(403, "AccessDenied"), StorageAccessDenied, "access denied (AccessDenied)"),
        (admin_error(403, "XMinioAdminNotAllowed"), StorageAccessDenied, "access denied"),
        (admin_error(503, "XMinioServerNotInitialized"), StorageUnavailable, "XMinioServerNotInitialized"),
        (admin_error(400, "XMinioAdminInvalidArgument"), StorageRejected, "XMinioAdminInvalidArgument"),
    ],
)
def test_admin_errors_are_typed_like_s3_ones(
    error: Exception, expected: type[StorageError], message: str
) -> None:
    described = storage._describe(error, "what")
    assert type(described) is expected and message in str(described)
    assert "said the server" not in str(described)


@dataclass(frozen=True)
class Tenants:
    """Two namespaces' areas in a bucket of their own, and a prefix shared with both."""

    bucket: str
    a: str
    b: str

    def area(self, namespace: str) -> list[str]:
        return [f"s3://{self.bucket}/{purpose}/{namespace}/" for purpose in ("raw", "datasets", "models")]

    @property
    def shared(self) -> str:
        return f"s3://{self.bucket}/shared/"

    def ensure(self, namespace: str, known: storage.Credentials | None = None) -> storage.Credentials:
        return storage.ensure_identity(namespace, self.area(namespace), [self.shared], known)


@pytest.fixture
def tenants(s3_env: MinioServer) -> Tenants:
    suffix = secrets.token_hex(3)
    return Tenants(f"tenants-{suffix}", f"team-a-{suffix}", f"team-b-{suffix}")


@contextmanager
def acting_as(credentials: storage.Credentials) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(storage.ACCESS_KEY_ENV, credentials.access_key)
        patch.setenv(storage.SECRET_KEY_ENV, credentials.secret_key)
        yield


def admin() -> Any:
    return storage._admin(storage.S3Settings.from_environment())


def policy_of(credentials: storage.Credentials) -> str:
    return str(admin().policy_info(credentials.access_key))


def test_identity_reads_and_writes_its_own_area(tenants: Tenants) -> None:
    a = tenants.ensure(tenants.a)
    assert a.access_key == f"marina-{tenants.a}" and len(a.secret_key) == 48
    with acting_as(a):
        for prefix in tenants.area(tenants.a):
            storage.write_bytes(f"{prefix}x/object.json", b"{}")
            assert storage.read_bytes(f"{prefix}x/object.json") == b"{}"
            assert storage.exists(f"{prefix}x/object.json") and not storage.exists(f"{prefix}x/missing")
            assert storage.list_folder(prefix) == ["x"] and storage.list_folder(f"{prefix}x") == [
                "object.json"
            ]


@pytest.mark.parametrize(
    "attempt",
    [
        lambda t: storage.list_folder(f"s3://{t.bucket}/raw/{t.b}/"),
        lambda t: storage.read_bytes(f"s3://{t.bucket}/raw/{t.b}/data.csv"),
        lambda t: storage.exists(f"s3://{t.bucket}/models/{t.b}/data.csv"),
        lambda t: storage.write_bytes(f"s3://{t.bucket}/datasets/{t.b}/planted.csv", b"x"),
        lambda t: storage.list_folder(f"s3://{t.bucket}"),
        lambda t: storage.list_folder(f"s3://{t.bucket}/raw"),
        lambda t: storage.read_bytes(f"s3://{t.bucket}/raw/{t.a}-other/data.csv"),
        lambda t: storage.write_bytes(f"s3://{t.bucket}/shared/planted.csv", b"x"),
        lambda t: storage.write_bytes(f"s3://{t.bucket}/top.csv", b"x"),
    ],
    ids=[
        "list-b",
        "read-b",
        "stat-b",
        "write-b",
        "list-bucket-root",
        "list-raw",
        "read-lookalike-prefix",
        "write-shared",
        "write-bucket-root",
    ],
)
def test_identity_is_denied_everything_else(tenants: Tenants, attempt: Callable[[Tenants], object]) -> None:
    a = tenants.ensure(tenants.a)
    tenants.ensure(tenants.b)
    for key in (
        f"raw/{tenants.b}/data.csv",
        f"models/{tenants.b}/data.csv",
        f"raw/{tenants.a}-other/data.csv",
    ):
        storage.write_bytes(f"s3://{tenants.bucket}/{key}", b"theirs")  # as root
    with acting_as(a), pytest.raises(StorageAccessDenied, match="access denied"):
        attempt(tenants)


def test_shared_prefixes_are_readable_not_writable(tenants: Tenants) -> None:
    storage.write_bytes(f"{tenants.shared}houses.csv", b"rooms,price\n")  # as root
    a = tenants.ensure(tenants.a)
    with acting_as(a):
        assert storage.read_bytes(f"{tenants.shared}houses.csv") == b"rooms,price\n"
        assert storage.list_folder(tenants.shared) == ["houses.csv"]
        with pytest.raises(StorageAccessDenied):
            storage.write_bytes(f"{tenants.shared}houses.csv", b"overwritten")
    assert storage.read_bytes(f"{tenants.shared}houses.csv") == b"rooms,price\n"


def test_ensuring_again_with_the_known_credentials_changes_nothing(tenants: Tenants) -> None:
    a = tenants.ensure(tenants.a)
    before = (admin().user_info(a.access_key), storage.policy_canonical(json.loads(policy_of(a))))
    again = tenants.ensure(tenants.a, known=a)
    assert again.same_as(a)
    assert (admin().user_info(a.access_key), storage.policy_canonical(json.loads(policy_of(a)))) == before
    with acting_as(again):
        storage.write_bytes(f"s3://{tenants.bucket}/raw/{tenants.a}/again.csv", b"x")


def test_a_lost_user_is_recreated_with_the_known_credentials(tenants: Tenants) -> None:
    a = tenants.ensure(tenants.a)
    admin().user_remove(a.access_key)  # e.g. MinIO's volume was reset
    with acting_as(a), pytest.raises(StorageAccessDenied):
        storage.read_bytes(f"s3://{tenants.bucket}/raw/{tenants.a}/x.csv")
    assert tenants.ensure(tenants.a, known=a).same_as(a)
    with acting_as(a):
        storage.write_bytes(f"s3://{tenants.bucket}/raw/{tenants.a}/x.csv", b"x")


@pytest.mark.parametrize(
    "known", [None, storage.Credentials("someone-else", "0" * 48)], ids=["none", "other"]
)
def test_without_usable_known_credentials_the_key_is_rotated(
    tenants: Tenants, known: storage.Credentials | None
) -> None:
    old = tenants.ensure(tenants.a)
    new = tenants.ensure(tenants.a, known=known)
    assert new.access_key == old.access_key and new.secret_key != old.secret_key
    with acting_as(old), pytest.raises(StorageAccessDenied):
        storage.read_bytes(f"s3://{tenants.bucket}/raw/{tenants.a}/x.csv")
    with acting_as(new):
        storage.write_bytes(f"s3://{tenants.bucket}/raw/{tenants.a}/x.csv", b"x")


def test_provisioning_creates_the_bucket_with_the_root_credentials(tenants: Tenants) -> None:
    with pytest.raises(StorageNotFound):
        storage.list_folder(f"s3://{tenants.bucket}")  # no bucket yet
    a = tenants.ensure(tenants.a)
    assert storage.list_folder(f"s3://{tenants.bucket}") == []
    with acting_as(a):
        storage.write_bytes(f"s3://{tenants.bucket}/models/{tenants.a}/m.json", b"{}")  # no NoSuchBucket


def test_refused_root_credentials_are_named_but_not_shown(
    tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "wrong-root-secret")
    with pytest.raises(StorageAccessDenied) as caught:
        tenants.ensure(tenants.a)
    assert f"cannot provision the storage identity marina-{tenants.a}" in str(caught.value)
    assert "wrong-root-secret" not in str(caught.value) and repr(caught.value).count("wrong") == 0


def test_credentials_never_show_their_secret() -> None:
    credentials = storage.Credentials("marina-ns", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(credentials) and "s3cr3t-value" not in str(credentials)
    assert credentials.same_as(storage.Credentials("marina-ns", "s3cr3t-value"))
    assert not credentials.same_as(storage.Credentials("marina-ns", "other"))


def test_a_local_store_holds_s3_uris_as_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`marina run`'s object storage: the same s3:// URIs, names and listings, kept in a folder."""
    monkeypatch.setenv(storage.LOCAL_STORE_ENV, str(tmp_path))
    monkeypatch.delenv(storage.ENDPOINT_ENV, raising=False)
    storage.write_bytes("s3://marina/raw/ns/a.csv", b"x,y\n1,2\n")
    assert (tmp_path / "marina" / "raw" / "ns" / "a.csv").read_bytes() == b"x,y\n1,2\n"
    assert storage.read_bytes("s3://marina/raw/ns/a.csv") == b"x,y\n1,2\n"
    assert storage.exists("s3://marina/raw/ns/a.csv") and not storage.exists("s3://marina/raw/ns/b.csv")
    assert [o.uri for o in storage.list_objects("s3://marina/raw/")] == ["s3://marina/raw/ns/a.csv"]
    assert storage.list_folder("s3://marina/raw/") == ["ns"] and storage.list_folder("s3://marina/no/") == []
    assert storage.size("s3://marina/raw/ns/a.csv") == 8 and storage.is_folder("s3://marina/raw/")
    with storage.open_stream("s3://marina/raw/ns/a.csv") as stream:
        assert stream.read() == b"x,y\n1,2\n"
    with pytest.raises(storage.StorageNotFound, match=r"cannot read s3://marina/raw/ns/b.csv"):
        storage.read_bytes("s3://marina/raw/ns/b.csv")
    with pytest.raises(storage.InvalidLocation):
        storage.read_bytes("s3://marina/raw/../../../etc/passwd")


def test_a_write_without_retrying_tries_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The payload log retries by itself within its shutdown deadline: one call, one connection (the
    SDK's own five retries back off 6.2 s in all)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[int] = []

    def hang_up() -> None:  # accept each connection and close it before any answer
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    monkeypatch.setenv(storage.ENDPOINT_ENV, f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv(storage.ACCESS_KEY_ENV, "nobody")
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "nothing-at-all")
    try:
        with pytest.raises(StorageUnavailable, match="cannot write s3://marina/once"):
            storage.write_bytes("s3://marina/once", b"x", retrying=False)
    finally:
        listener.close()
    assert len(accepted) == 1
