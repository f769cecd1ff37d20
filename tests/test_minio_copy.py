"""hack/lib/minio_copy.py, the copy hack/minio-migrate.sh makes of the single volume of earlier versions into
MinIO's four drives: between two real MinIOs (one drive, four drives), every bucket and object arrives
with its bytes, content type and user metadata, a multipart one too, and a second run copies nothing."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from minio_server import MinioServer, free_port, serving

REPO = Path(__file__).resolve().parents[1]
COPY = REPO / "hack" / "lib" / "minio_copy.py"
OBJECTS = {
    ("marina", "datasets/team/diabetes/0123/dataset.json"): (b'{"rows": 442}', "application/json"),
    ("marina", "models/team/model-ab.json"): (os.urandom(3000), "application/json"),
    ("marina", "raw/team/.hidden"): (b"x", "application/octet-stream"),
    ("other", "big.bin"): (os.urandom(11 << 20), "application/octet-stream"),  # three parts of 5 MiB
}


def client(server: MinioServer) -> Any:
    from minio import Minio

    return Minio(server.endpoint.removeprefix("http://"), server.access_key, server.secret_key, secure=False)


def copy(source: MinioServer, target: MinioServer) -> str:
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": source.access_key,
        "AWS_SECRET_ACCESS_KEY": source.secret_key,
    }
    done = subprocess.run(
        [sys.executable, str(COPY), source.endpoint, target.endpoint],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_every_object_is_copied_with_its_bytes_type_and_metadata_once(
    minio_binary: Path, tmp_path: Path
) -> None:
    key = secrets.token_hex(16)
    source = MinioServer(f"http://127.0.0.1:{free_port()}", "marina-test", key)
    target = MinioServer(f"http://127.0.0.1:{free_port()}", "marina-test", key)
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()
    with (
        serving(minio_binary, tmp_path / "source", source),
        serving(minio_binary, tmp_path / "target", target, 4),
    ):
        old = client(source)
        for bucket in sorted({bucket for bucket, _ in OBJECTS}):
            old.make_bucket(bucket)
        for (bucket, name), (data, kind) in OBJECTS.items():
            old.put_object(
                bucket,
                name,
                io.BytesIO(data),
                len(data),
                content_type=kind,
                metadata={"origin": name},
                part_size=5 << 20,
            )
        assert copy(source, target) == f"copied {len(OBJECTS)} objects, 0 already there"
        new = client(target)
        for (bucket, name), (data, kind) in OBJECTS.items():
            response = new.get_object(bucket, name)
            try:
                assert hashlib.sha256(response.read()).hexdigest() == hashlib.sha256(data).hexdigest()
            finally:
                response.close()
                response.release_conn()
            stat = new.stat_object(bucket, name)
            assert (stat.content_type, stat.metadata["x-amz-meta-origin"]) == (kind, name)
        assert copy(source, target) == f"copied 0 objects, {len(OBJECTS)} already there"
