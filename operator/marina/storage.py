"""The one module that touches object storage: local paths and `s3://bucket/key` URIs.

S3 access goes through the MinIO SDK. The endpoint and credentials come only from the
environment (filled from a Kubernetes Secret), and never appear in an error message.

With `MARINA_LOCAL_STORE` set to a folder (`marina run`, no cluster and no MinIO), `s3://bucket/key`
is that folder's `bucket/key`: the same URIs, the same content-addressed names and the same messages as
on a cluster, only kept on the local disk.

It also provisions storage identities (`ensure_identity`): the operator, holding MinIO's root
credentials, gives each namespace a MinIO user whose policy reaches only that namespace's prefixes,
so a namespace's Jobs and model servers can neither read nor change another team's data.
"""

from __future__ import annotations

import functools
import hmac
import io
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from marina.contract import FailureKind, JobError

ENDPOINT_ENV = "MARINA_S3_ENDPOINT"
LOCAL_STORE_ENV = "MARINA_LOCAL_STORE"
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
# The admin API's own codes: a missing user or policy, and a change that is already in effect.
ADMIN_NOT_FOUND_CODES = frozenset({"XMinioAdminNoSuchUser", "XMinioAdminNoSuchPolicy"})
ALREADY_APPLIED = "XMinioAdminPolicyChangeAlreadyApplied"
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


def local_store() -> Path | None:
    """The folder s3:// URIs live in when there is no object storage (`marina run`), else None."""
    root = os.environ.get(LOCAL_STORE_ENV, "").strip()
    return Path(root) if root else None


def _local(uri: str) -> str:
    """Where `uri` lives on this machine's disk: itself, or an s3:// URI's place in the local store."""
    root = local_store()
    if root is None or not is_s3(uri):
        return uri
    parts = [part for part in uri.removeprefix("s3://").split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise InvalidLocation(f"{uri!r} is not a valid object URI: expected s3://bucket/key")
    return str(root.joinpath(*parts))


def _as_uri(path: Path, uri: str, local: str) -> str:
    """A file found under `local` (the place of `uri`) named as `uri` names it."""
    return uri.rstrip("/") + "/" + path.relative_to(local).as_posix() if local != uri else str(path)


def _on_disk(uri: str) -> bool:
    return not is_s3(uri) or local_store() is not None


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


def _client(settings: S3Settings | None = None, retrying: bool = True):  # type: ignore[no-untyped-def]
    return _client_for(settings or S3Settings.from_environment(), retrying)


#: An impatient client's connect and read timeouts (seconds): one try, for a caller with its own retries
IMPATIENT_TIMEOUT = (2.0, 30.0)


@functools.lru_cache(maxsize=4)
def _client_for(settings: S3Settings, retrying: bool = True):  # type: ignore[no-untyped-def]
    """One client (and connection pool) per endpoint and credentials: a client per call left a pool, its
    buffers and reference cycles behind each time, garbage that piled up between collections. Without
    `retrying`, a call tries once: the SDK's own retries (five, backing off 6.2 s in all on a refused
    connection) and five-minute timeouts would outlast the deadline of a caller that retries by itself."""
    from minio import Minio

    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=settings.secure,
        region=settings.region,
        http_client=None if retrying else _pool(IMPATIENT_TIMEOUT, retries=False),
    )


def _pool(timeout: tuple[float, float], retries: Any) -> Any:
    """A connection pool with our timeouts (connect, read) and retries, checking certificates as the SDK's
    own pool does."""
    import certifi
    import urllib3

    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        retries=retries,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )


def _error_class(exc: Exception) -> type[StorageError] | None:
    """Which StorageError an SDK or network exception is, from its type and S3 error code; None when it
    is none of them (a bug, left to surface as one)."""
    import urllib3
    from minio.error import InvalidResponseError, MinioAdminException, S3Error, ServerError

    if isinstance(exc, S3Error):
        return _class_for_code(exc.code, exc.response.status if exc.response is not None else None)
    if isinstance(exc, MinioAdminException):
        return _class_for_code(*_admin_answer(exc))
    if isinstance(exc, ServerError):
        return _class_for_status(exc.status_code)
    if isinstance(exc, InvalidResponseError):  # not an S3 answer at all: a proxy, a wrong endpoint
        return StorageAccessDenied if getattr(exc, "_code", None) == 403 else StorageUnavailable
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):  # refused, reset, timed out, DNS
        return StorageUnavailable
    if isinstance(exc, ValueError):  # the SDK's own checks of bucket and object names
        return InvalidLocation
    return None


def _admin_answer(exc: Exception) -> tuple[str | None, int | None]:
    """(error code, HTTP status) of a failed admin API call, read from the JSON body MinIO answers."""
    status = str(getattr(exc, "_code", ""))
    try:
        body = json.loads(str(getattr(exc, "_body", "")))
    except ValueError:
        body = None
    code = body.get("Code") if isinstance(body, dict) else None
    return (str(code) if code else None), (int(status) if status.isdigit() else None)


def _class_for_code(code: str | None, status: int | None) -> type[StorageError]:
    if code in NOT_FOUND_CODES or code in ADMIN_NOT_FOUND_CODES:
        return StorageNotFound
    if code in DENIED_CODES or status == 403:
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
    code = getattr(exc, "code", None) or _admin_answer(exc)[0]
    if error_class is StorageNotFound:
        return StorageNotFound(f"{what}: not found ({code})")
    if error_class is StorageAccessDenied:
        return StorageAccessDenied(f"{what}: access denied ({code}); check the credentials Secret")
    if isinstance(code, str):
        return error_class(f"{what}: object storage answered {code}")
    status = getattr(exc, "status_code", None) or _admin_answer(exc)[1] or getattr(exc, "_code", None)
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
    if _on_disk(uri):
        try:
            return Path(_local(uri)).read_bytes()
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


def write_bytes(
    uri: str, data: bytes, content_type: str = "application/octet-stream", retrying: bool = True
) -> None:
    """Write an object, creating the folder when missing, and the bucket when the credentials may.

    The object is written first and the bucket created only when that fails with NoSuchBucket: a
    namespace's identity may write under its prefixes but not look at the bucket itself (HeadBucket is
    a listing of its root), and its bucket is created beforehand by `ensure_identity`. Without
    `retrying`, one try (`_client_for`)."""
    if _on_disk(uri):
        path = Path(_local(uri))
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
        client = _client(retrying=retrying)
        try:
            _put(client, location, data, content_type)
        except Exception as exc:
            if getattr(exc, "code", None) != "NoSuchBucket":
                raise
            _ensure_bucket(client, location.bucket)
            _put(client, location, data, content_type)


#: S3's smallest multipart part; a single PUT takes up to 5 GiB.
_MIN_PART_BYTES = 5 << 20


def _put(client: Any, location: S3Location, data: bytes, content_type: str) -> None:
    """One PUT of bytes already in memory: the SDK's default multipart upload runs parallel threads, each
    copying parts (and each a malloc arena), which costs more memory than the object itself."""
    client.put_object(
        location.bucket,
        location.key,
        io.BytesIO(data),
        len(data),
        content_type=content_type,
        part_size=max(_MIN_PART_BYTES, len(data)),
        num_parallel_uploads=1,
    )


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
    if _on_disk(uri):
        return Path(_local(uri)).exists()
    location = parse_s3(uri)
    try:
        with _s3_call(f"cannot check {uri}"):
            _client().stat_object(location.bucket, location.key)
        return True
    except StorageNotFound as missing:
        _forget(missing)
        return False


def _forget(error: BaseException) -> None:
    """Drop the tracebacks of a handled error and of its causes. Their frames form reference cycles, and a
    frame in a cycle keeps its callers' frames, with their arrays, alive until a full garbage collection:
    a prepare asking whether each part exists held hundreds of MiB that way."""
    seen: BaseException | None = error
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__


def list_folder(uri: str) -> list[str]:
    """The names directly inside a folder or s3:// prefix (sub-folders without a trailing slash), sorted.

    An s3:// prefix with nothing under it is an empty list, as object storage has no empty folders.
    """
    if _on_disk(uri):
        try:
            found = Path(_local(uri))
            return sorted(entry.name for entry in found.iterdir()) if found.exists() or not is_s3(uri) else []
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


# --- streaming (objects larger than memory) ---------------------------------------------------------

#: Bytes per ranged GET when a reader seeks (Parquet): large enough that a column chunk is a few requests.
RANGE_READ_BYTES = 8 << 20


@dataclass(frozen=True)
class StoredObject:
    uri: str
    size: int
    modified: datetime | None = None  # when it was last written (retention keeps the newest)


def list_objects(uri: str) -> list[StoredObject]:
    """Every object (file) under a folder or s3:// prefix, recursively, sorted by URI: the parts of a
    source given as a folder. Names starting with '.' or '_' (markers such as _SUCCESS) are left out."""
    if _on_disk(uri):
        local = _local(uri)
        root = Path(local)
        try:
            found = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]
        except OSError as exc:
            raise _local_error(exc, f"cannot list {uri}") from exc
        return sorted(
            (
                _local_object(p, _as_uri(p, uri, local))
                for p in found
                if not _hidden(p.relative_to(root).parts)
            ),
            key=lambda o: o.uri,
        )
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    parse_s3(f"s3://{bucket}/{key or '-'}")
    prefix = f"{key.strip('/')}/" if key.strip("/") else ""
    with _s3_call(f"cannot list {uri}"):
        items = list(_client().list_objects(bucket, prefix=prefix, recursive=True))
    objects = [
        StoredObject(f"s3://{bucket}/{item.object_name}", int(item.size or 0), item.last_modified)
        for item in items
        if not _hidden(str(item.object_name)[len(prefix) :].split("/"))
    ]
    return sorted(objects, key=lambda o: o.uri)


def _local_object(path: Path, uri: str) -> StoredObject:
    stat = path.stat()
    return StoredObject(uri, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


def _hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith((".", "_")) for part in parts)


def size(uri: str) -> int:
    """An object's or file's size in bytes."""
    if _on_disk(uri):
        try:
            return Path(_local(uri)).stat().st_size
        except OSError as exc:
            raise _local_error(exc, f"cannot read {uri}") from exc
    location = parse_s3(uri)
    with _s3_call(f"cannot read {uri}"):
        return int(_client().stat_object(location.bucket, location.key).size)


def is_folder(uri: str) -> bool:
    """A local directory, or an s3:// URI ending in '/' (object storage has no folders otherwise)."""
    return uri.endswith("/") if is_s3(uri) else Path(_local(uri)).is_dir()


class _StreamingObject(io.RawIOBase):
    """An S3 object read front to back over one GET; errors surface as StorageError while reading."""

    def __init__(self, uri: str, offset: int = 0) -> None:
        super().__init__()
        self.uri = uri
        location = parse_s3(uri)
        with _s3_call(f"cannot read {uri}"):
            self._response = _client().get_object(location.bucket, location.key, offset=offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _s3_call(f"cannot read {self.uri}"):
            data = self._response.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


class _RangedObject(io.RawIOBase):
    """A seekable S3 object: every read is a ranged GET, so a Parquet footer or one column chunk is read
    without downloading the object."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri
        self._location = parse_s3(uri)
        self._client = _client()
        with _s3_call(f"cannot read {uri}"):
            self._size = int(self._client.stat_object(self._location.bucket, self._location.key).size)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        length = min(len(buffer), self._size - self._position)
        if length <= 0:
            return 0
        with _s3_call(f"cannot read {self.uri}"):
            response = self._client.get_object(
                self._location.bucket, self._location.key, offset=self._position, length=length
            )
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_stream(uri: str, offset: int = 0) -> io.BufferedIOBase:
    """A file object reading an object or local file front to back from byte `offset`, never holding it
    whole."""
    if _on_disk(uri):
        try:
            stream = open(_local(uri), "rb")  # noqa: SIM115 (the caller closes it)
        except OSError as exc:
            raise _local_error(exc, f"cannot read {uri}") from exc
        if offset:
            stream.seek(offset)
        return stream
    return io.BufferedReader(_StreamingObject(uri, offset), buffer_size=1 << 20)


def open_seekable(uri: str) -> io.BufferedIOBase:
    """A seekable file object over an object or local file (Parquet reads its footer first)."""
    if _on_disk(uri):
        return open_stream(uri)
    return io.BufferedReader(_RangedObject(uri), buffer_size=RANGE_READ_BYTES)


# --- storage identities (the operator's side, with MinIO's root credentials) ------------------------

IDENTITY_PREFIX = "marina-"
SECRET_KEY_BYTES = 24  # 48 hex digits
ADMIN_TIMEOUT = (5.0, 30.0)  # connect, read: a reconcile waits on it, so not the SDK's five minutes


@dataclass(frozen=True, repr=False)
class Credentials:
    """An access key and its secret key; the secret never appears in a repr, a log or a message."""

    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r})"

    def same_as(self, other: Credentials) -> bool:
        """Equal, compared in constant time (one of them may be the root credentials)."""
        return hmac.compare_digest(self.access_key, other.access_key) and hmac.compare_digest(
            self.secret_key, other.secret_key
        )


def identity_name(namespace: str) -> str:
    """The MinIO user (and policy) of a namespace's workloads."""
    return f"{IDENTITY_PREFIX}{namespace}"


def root_credentials(settings: S3Settings | None = None) -> Credentials:
    """The credentials this process holds (the operator's: MinIO's root user)."""
    s = settings or S3Settings.from_environment()
    return Credentials(s.access_key, s.secret_key)


def _bucket_and_key(prefix: str) -> tuple[str, str]:
    """`s3://bucket/some/folder/` as (bucket, `some/folder/`)."""
    bucket, _, key = prefix.removeprefix("s3://").partition("/")
    if not prefix.startswith("s3://") or not bucket or not key.endswith("/"):
        raise InvalidLocation(f"{prefix!r} is not an s3://bucket/folder/ prefix")
    return bucket, key


def area_policy(read_write: Sequence[str], read_only: Sequence[str] = ()) -> dict[str, Any]:
    """The IAM policy of one namespace: read and write objects under `read_write`, read under
    `read_only`, list only below those prefixes, and ask a bucket's region (the SDK does before its
    first request to a bucket). No delete: Marina never removes or replaces what it stored."""
    own = [_bucket_and_key(prefix) for prefix in read_write]
    shared = [_bucket_and_key(prefix) for prefix in read_only]
    buckets = sorted({bucket for bucket, _ in (*own, *shared)})
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadWriteOwnArea",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/{key}*" for bucket, key in own],
        }
    ]
    if shared:
        statements.append(
            {
                "Sid": "ReadSharedPrefixes",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/{key}*" for bucket, key in shared],
            }
        )
    for bucket in buckets:
        prefixes = sorted({f"{key}*" for b, key in (*own, *shared) if b == bucket})
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": prefixes}},
            }
        )
    statements.append(
        {
            "Sid": "BucketRegion",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{bucket}" for bucket in buckets],
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}


def _admin(settings: S3Settings):  # type: ignore[no-untyped-def]
    import urllib3
    from minio.credentials.providers import StaticProvider
    from minio.minioadmin import MinioAdmin

    http = _pool(
        ADMIN_TIMEOUT, urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504])
    )
    return MinioAdmin(
        endpoint=settings.endpoint,
        credentials=StaticProvider(settings.access_key, settings.secret_key),
        region=settings.region or "",
        secure=settings.secure,
        http_client=http,
    )


def ensure_identity(
    namespace: str,
    read_write: Sequence[str],
    read_only: Sequence[str] = (),
    known: Credentials | None = None,
    settings: S3Settings | None = None,
) -> Credentials:
    """The credentials of `namespace`'s identity, provisioned with the root credentials of `settings`
    (default: this process's environment) so that they reach `area_policy(read_write, read_only)`.

    Also creates the buckets of `read_write` when missing, since the identity itself may not.
    `known` are the credentials handed out before (the namespace's Secret): they are kept, and the user
    is re-created with them when MinIO lost it (a reset volume), so running pods keep working. Without
    them (or when they name another user) the user gets a new random secret key, replacing its old one:
    deleting the Secret is how a namespace's key is rotated. Nothing stored is ever deleted.
    """
    root = settings or S3Settings.from_environment()
    name = identity_name(namespace)
    with _s3_call(f"cannot provision the storage identity {name}"):
        client = _client(root)
        for bucket in sorted({_bucket_and_key(prefix)[0] for prefix in read_write}):
            _ensure_bucket(client, bucket)
        admin = _admin(root)
        _ensure_policy(admin, name, area_policy(read_write, read_only))
        attached = _attached_policies(admin, name)
        kept = known if known is not None and known.access_key == name else None
        credentials = kept or Credentials(name, secrets.token_hex(SECRET_KEY_BYTES))
        if attached is None or kept is None:
            admin.user_add(name, credentials.secret_key)  # creates, or sets a new key of an existing user
        if name not in (attached or ()):
            _attach(admin, name)
        return credentials


def _ensure_policy(admin: Any, name: str, policy: dict[str, Any]) -> None:
    """Write the policy unless MinIO already holds exactly it (a changed shared prefix rewrites it)."""
    try:
        current = json.loads(admin.policy_info(name))
    except Exception as exc:
        if _error_class(exc) is not StorageNotFound:
            raise
        current = None
    if policy_canonical(current) != policy_canonical(policy):
        admin.policy_add(name, policy=policy)


def policy_canonical(value: Any) -> str:
    """A policy as one string regardless of order: MinIO keeps a statement's lists as sets, so it
    answers them in any order."""

    def canonical(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: canonical(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return sorted((canonical(inner) for inner in item), key=json.dumps)
        return item

    return json.dumps(canonical(value), sort_keys=True)


def _attached_policies(admin: Any, name: str) -> list[str] | None:
    """The policies attached to user `name`; None when MinIO has no such user."""
    try:
        info = json.loads(admin.user_info(name))
    except Exception as exc:
        if _error_class(exc) is StorageNotFound:
            return None
        raise
    return [p for p in str(info.get("policyName") or "").split(",") if p]


def _attach(admin: Any, name: str) -> None:
    try:
        admin.attach_policy([name], user=name)
    except Exception as exc:
        if _admin_answer(exc)[0] != ALREADY_APPLIED:
            raise


# --- retention (the operator's side, with MinIO's root credentials) ---------------------------------
# Namespace identities may not delete (area_policy); only the operator removes what spec.retention
# no longer keeps (marina.controller.shared.retention decides which, from list_objects' modification times).


def delete_objects(uris: Sequence[str]) -> None:
    """Delete objects; a StorageError names the first one refused. A missing object is no error (as
    in S3), so a repeated run is harmless."""
    from minio.deleteobjects import DeleteObject

    by_bucket: dict[str, list[str]] = {}
    for uri in uris:
        location = parse_s3(uri)
        by_bucket.setdefault(location.bucket, []).append(location.key)
    for bucket, keys in sorted(by_bucket.items()):
        with _s3_call(f"cannot delete objects under s3://{bucket}/"):
            refused = [
                error
                for error in _client().remove_objects(bucket, [DeleteObject(key) for key in keys])
                if error.code not in NOT_FOUND_CODES
            ]
        if refused:
            first = refused[0]
            error_class = _class_for_code(first.code, None)
            raise error_class(f"cannot delete s3://{bucket}/{first.name}: storage answered {first.code}")
