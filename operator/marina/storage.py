"""The one module that touches object storage: local paths and `s3://bucket/key` URIs.

S3 access goes through the MinIO SDK. The endpoint and credentials come only from the
environment (filled from a Kubernetes Secret), and never appear in an error message.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from marina.contract import FailureKind, JobError

ENDPOINT_ENV = "MARINA_S3_ENDPOINT"
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
REGION_ENV = "AWS_REGION"

# S3 error codes by what they mean for the caller (AWS's documented codes and MinIO's own).
NOT_FOUND_CODES = frozenset(
    {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "NoSuchVersion", "ResourceNotFound"}
)
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
        "AccountProblem",
        "ExpiredToken",
        "InvalidToken",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "SlowDown",
        "SlowDownRead",
        "SlowDownWrite",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "OperationTimedOut",
        "XMinioStorageFull",
        "XMinioServerNotInitialized",
        "XMinioReadQuorum",
        "XMinioWriteQuorum",
    }
)


class StorageError(JobError):
    """An object could not be read, written or listed; the subclass says why, the message which and how."""


class StorageUnavailable(StorageError):
    """Unreachable, overloaded, full or failing (5xx): worth retrying later."""

    kind = FailureKind.STORAGE_UNAVAILABLE


class StorageAccessDenied(StorageError):
    """The credentials were refused."""

    kind = FailureKind.STORAGE_DENIED


class StorageNotFound(StorageError):
    """The object, folder or bucket does not exist."""

    kind = FailureKind.STORAGE_NOT_FOUND


class StorageRejected(StorageError):
    """Object storage refused the request itself (a bad bucket name, a too long key, ...)."""

    kind = FailureKind.STORAGE_REJECTED


class StorageNotConfigured(StorageError):
    """The endpoint or the credentials are missing from (or malformed in) the environment."""

    kind = FailureKind.STORAGE_CONFIG


class InvalidLocation(StorageError):
    """A URI given in the request is not a usable location."""

    kind = FailureKind.SPEC


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True, repr=False)
class S3Settings:
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool
    region: str | None

    @classmethod
    def from_environment(cls) -> S3Settings:
        raw = os.environ.get(ENDPOINT_ENV, "").strip()
        if not raw:
            raise StorageNotConfigured(
                f"{ENDPOINT_ENV} is not set: cannot reach object storage for s3:// URIs"
            )
        parsed = urlparse(raw if "://" in raw else f"http://{raw}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise StorageNotConfigured(f"{ENDPOINT_ENV} must look like http://host:port, got {raw!r}")
        access, secret = os.environ.get(ACCESS_KEY_ENV), os.environ.get(SECRET_KEY_ENV)
        if not access or not secret:
            raise StorageNotConfigured(f"{ACCESS_KEY_ENV} and {SECRET_KEY_ENV} must be set to use {raw}")
        return cls(parsed.netloc, access, secret, parsed.scheme == "https", os.environ.get(REGION_ENV))

    def __repr__(self) -> str:  # never print credentials
        return f"S3Settings(endpoint={self.endpoint!r}, secure={self.secure})"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3(uri: str) -> S3Location:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise InvalidLocation(f"{uri!r} is not a valid object URI: expected s3://bucket/key")
    return S3Location(parsed.netloc, key)


def join(base: str, *names: str) -> str:
    """Join path parts for either a local folder or an s3:// prefix."""
    if is_s3(base):
        return "/".join([base.rstrip("/"), *(n.strip("/") for n in names)])
    return str(Path(base).joinpath(*names))


def _client(settings: S3Settings | None = None):  # type: ignore[no-untyped-def]
    from minio import Minio

    s = settings or S3Settings.from_environment()
    return Minio(
        s.endpoint, access_key=s.access_key, secret_key=s.secret_key, secure=s.secure, region=s.region
    )


def _error_class(exc: Exception) -> type[StorageError] | None:
    """Which StorageError an SDK or network exception is, from its type and S3 error code; None when it
    is none of them (a bug, left to surface as one)."""
    import urllib3
    from minio.error import InvalidResponseError, S3Error, ServerError

    if isinstance(exc, S3Error):
        return _class_for_code(exc.code, exc.response.status if exc.response is not None else None)
    if isinstance(exc, ServerError):
        return _class_for_status(exc.status_code)
    if isinstance(exc, InvalidResponseError):  # not an S3 answer at all: a proxy, a wrong endpoint
        return StorageAccessDenied if getattr(exc, "_code", None) == 403 else StorageUnavailable
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):  # refused, reset, timed out, DNS
        return StorageUnavailable
    if isinstance(exc, ValueError):  # the SDK's own checks of bucket and object names
        return InvalidLocation
    return None


def _class_for_code(code: str | None, status: int | None) -> type[StorageError]:
    if code in NOT_FOUND_CODES:
        return StorageNotFound
    if code in DENIED_CODES:
        return StorageAccessDenied
    if code in UNAVAILABLE_CODES:
        return StorageUnavailable
    return _class_for_status(status)


def _class_for_status(status: int | None) -> type[StorageError]:
    if status is not None and (status >= 500 or status == 429):
        return StorageUnavailable
    return StorageRejected


def _describe(exc: Exception, what: str) -> StorageError | None:
    """The typed error for an SDK or network failure, in one line without credentials."""
    error_class = _error_class(exc)
    if error_class is None:
        return None
    code = getattr(exc, "code", None)
    if error_class is StorageNotFound:
        return StorageNotFound(f"{what}: not found ({code})")
    if error_class is StorageAccessDenied:
        return StorageAccessDenied(f"{what}: access denied ({code}); check the credentials Secret")
    if isinstance(code, str):
        return error_class(f"{what}: object storage answered {code}")
    status = getattr(exc, "status_code", None) or getattr(exc, "_code", None)
    endpoint = os.environ.get(ENDPOINT_ENV, "?")
    if isinstance(status, int):
        return error_class(f"{what}: object storage at {endpoint} answered HTTP {status}")
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return error_class(f"{what}: object storage at {endpoint} unreachable ({type(exc).__name__}: {detail})")


@contextmanager
def _s3_call(what: str) -> Iterator[None]:
    """Turn whatever the SDK raises into a typed StorageError (anything else is a bug and propagates)."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # the SDK raises many unrelated types; _describe sorts them
        described = _describe(exc, what)
        if described is None:
            raise
        raise described from exc


def _local_error(exc: OSError, what: str) -> StorageError:
    message = f"{what}: {exc.strerror or exc}"
    if isinstance(exc, FileNotFoundError):
        return StorageNotFound(message)
    if isinstance(exc, FileExistsError | NotADirectoryError | IsADirectoryError):  # a file, not a folder
        return InvalidLocation(message)
    if isinstance(exc, PermissionError):
        return StorageAccessDenied(message)
    return StorageUnavailable(message)


def read_bytes(uri: str) -> bytes:
    if not is_s3(uri):
        try:
            return Path(uri).read_bytes()
        except OSError as exc:
            raise _local_error(exc, f"cannot read {uri}") from exc
    location = parse_s3(uri)
    with _s3_call(f"cannot read {uri}"):
        response = _client().get_object(location.bucket, location.key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    """Write an object, creating the bucket or folder when missing."""
    if not is_s3(uri):
        path = Path(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)  # readers never see a half-written file
        except OSError as exc:
            raise _local_error(exc, f"cannot write {uri}") from exc
        return
    location = parse_s3(uri)
    with _s3_call(f"cannot write {uri}"):
        client = _client()
        _ensure_bucket(client, location.bucket)
        body = io.BytesIO(data)
        client.put_object(location.bucket, location.key, body, len(data), content_type=content_type)


def _ensure_bucket(client: Any, bucket: str) -> None:
    """Create the bucket when missing; another writer creating it at the same moment is fine."""
    if client.bucket_exists(bucket):
        return
    try:
        client.make_bucket(bucket)
    except Exception as exc:
        if getattr(exc, "code", None) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def exists(uri: str) -> bool:
    if not is_s3(uri):
        return Path(uri).exists()
    location = parse_s3(uri)
    try:
        with _s3_call(f"cannot check {uri}"):
            _client().stat_object(location.bucket, location.key)
        return True
    except StorageNotFound:
        return False


def list_folder(uri: str) -> list[str]:
    """The names directly inside a folder or s3:// prefix (sub-folders without a trailing slash), sorted.

    An s3:// prefix with nothing under it is an empty list, as object storage has no empty folders.
    """
    if not is_s3(uri):
        try:
            return sorted(entry.name for entry in Path(uri).iterdir())
        except OSError as exc:
            raise _local_error(exc, f"cannot list {uri}") from exc
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    parse_s3(f"s3://{bucket}/{key or '-'}")  # the bucket part must be valid; the prefix may be empty
    prefix = f"{key.strip('/')}/" if key.strip("/") else ""
    with _s3_call(f"cannot list {uri}"):
        names = {
            str(item.object_name)[len(prefix) :].rstrip("/")
            for item in _client().list_objects(bucket, prefix=prefix, recursive=False)
        }
    return sorted(name for name in names if name)
