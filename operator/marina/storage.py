"""The one module that touches object storage: local paths and `s3://bucket/key` URIs.

S3 access goes through the MinIO SDK. The endpoint and credentials come only from the
environment (filled from a Kubernetes Secret), and never appear in an error message.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ENDPOINT_ENV = "MARINA_S3_ENDPOINT"
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
REGION_ENV = "AWS_REGION"


class StorageError(Exception):
    """An object could not be read or written; the message says which and why."""


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
            raise StorageError(f"{ENDPOINT_ENV} is not set: cannot reach object storage for s3:// URIs")
        parsed = urlparse(raw if "://" in raw else f"http://{raw}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise StorageError(f"{ENDPOINT_ENV} must look like http://host:port, got {raw!r}")
        access, secret = os.environ.get(ACCESS_KEY_ENV), os.environ.get(SECRET_KEY_ENV)
        if not access or not secret:
            raise StorageError(f"{ACCESS_KEY_ENV} and {SECRET_KEY_ENV} must be set to use {raw}")
        return cls(parsed.netloc, access, secret, parsed.scheme == "https", os.environ.get(REGION_ENV))

    def __repr__(self) -> str:  # never print credentials
        return f"S3Settings(endpoint={self.endpoint!r}, secure={self.secure})"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3(uri: str) -> S3Location:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise StorageError(f"{uri!r} is not a valid object URI: expected s3://bucket/key")
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


def _describe(exc: Exception, what: str) -> StorageError:
    """Turn SDK and network errors into one clear message without credentials."""
    code = getattr(exc, "code", None)
    if code in ("NoSuchKey", "NoSuchBucket"):
        return StorageError(f"{what}: not found ({code})")
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return StorageError(f"{what}: access denied ({code}); check the credentials Secret")
    if code:
        return StorageError(f"{what}: object storage answered {code}")
    endpoint = os.environ.get(ENDPOINT_ENV, "?")
    reason = type(exc).__name__
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return StorageError(f"{what}: object storage at {endpoint} unreachable ({reason}: {detail})")


def read_bytes(uri: str) -> bytes:
    if not is_s3(uri):
        try:
            return Path(uri).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from exc
    location = parse_s3(uri)
    try:
        response = _client().get_object(location.bucket, location.key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()
    except StorageError:
        raise
    except Exception as exc:  # the SDK raises many unrelated types
        raise _describe(exc, f"cannot read {uri}") from exc


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
            raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from exc
        return
    location = parse_s3(uri)
    try:
        client = _client()
        _ensure_bucket(client, location.bucket)
        body = io.BytesIO(data)
        client.put_object(location.bucket, location.key, body, len(data), content_type=content_type)
    except StorageError:
        raise
    except Exception as exc:  # the SDK raises many unrelated types
        raise _describe(exc, f"cannot write {uri}") from exc


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
        _client().stat_object(location.bucket, location.key)
        return True
    except StorageError:
        raise
    except Exception as exc:  # the SDK raises many unrelated types
        if getattr(exc, "code", None) in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
            return False
        raise _describe(exc, f"cannot check {uri}") from exc
