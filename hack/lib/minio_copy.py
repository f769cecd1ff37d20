"""Copies every bucket and object of one MinIO into another and checks the copy (hack/minio-migrate.sh: the
single volume of earlier versions into the four drives). Each object keeps its bytes, content type and
user metadata; one the target already holds with the same bytes is left alone, so a run cut short is
simply run again. The latest version of each object is copied (Marina turns no bucket versioning on);
identities are not: the operator re-creates each namespace's from its Secret.

Both MinIOs take the root credentials of the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).

    python3 hack/lib/minio_copy.py SOURCE_URL TARGET_URL

Prints what it copied; exits 1 naming every object that does not read back from the target with the
source's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

PART_BYTES = 64 << 20  # a large object goes up in parts of this size, never whole in memory


def client(url: str) -> Any:
    from minio import Minio

    parts = urlsplit(url)
    return Minio(
        parts.netloc,
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        secure=parts.scheme == "https",
    )


class Hashing:
    """A response read through, hashing what passes (the source's sha256 while it is copied)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.response.read(size)
        self.digest.update(data)
        return data


def sha256_of(minio: Any, bucket: str, key: str) -> str | None:
    """The sha256 of an object's bytes; None when there is no such object."""
    from minio.error import S3Error

    try:
        response = minio.get_object(bucket, key)
    except S3Error as error:
        if error.code in ("NoSuchKey", "NoSuchBucket"):
            return None
        raise
    try:
        digest = hashlib.sha256()
        for chunk in response.stream(PART_BYTES):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        response.close()
        response.release_conn()


def user_metadata(headers: Any) -> dict[str, str]:
    """The x-amz-meta-* headers of a stat, by their names without the prefix."""
    prefix = "x-amz-meta-"
    return {name[len(prefix) :]: value for name, value in headers.items() if name.lower().startswith(prefix)}


def objects(minio: Any) -> Iterator[tuple[str, str]]:
    for bucket in minio.list_buckets():
        for item in minio.list_objects(bucket.name, recursive=True):
            yield bucket.name, item.object_name


def copy(source: Any, target: Any, bucket: str, key: str) -> str:
    """One object, unless the target has its bytes already; returns the source's sha256."""
    stat = source.stat_object(bucket, key)
    response = source.get_object(bucket, key)
    try:
        reader = Hashing(response)
        target.put_object(
            bucket,
            key,
            reader,
            stat.size,
            content_type=stat.content_type or "application/octet-stream",
            metadata=user_metadata(stat.metadata),
            part_size=PART_BYTES,
            num_parallel_uploads=1,
        )
    finally:
        response.close()
        response.release_conn()
    return reader.digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source")
    parser.add_argument("target")
    args = parser.parse_args()
    source, target = client(args.source), client(args.target)
    copied = kept = 0
    differ: list[str] = []
    for bucket, key in objects(source):
        if not target.bucket_exists(bucket):
            target.make_bucket(bucket)
        there = sha256_of(target, bucket, key)
        if there is not None and there == sha256_of(source, bucket, key):
            kept += 1
            continue
        wanted = copy(source, target, bucket, key)
        copied += 1
        if sha256_of(target, bucket, key) != wanted:
            differ.append(f"{bucket}/{key}")
    print(f"copied {copied} objects, {kept} already there")
    if differ:
        print(f"these do not read back with the source's bytes: {', '.join(differ)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
