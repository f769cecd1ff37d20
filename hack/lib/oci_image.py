"""Writes a one-layer OCI image archive from a few files, for `ctr images import` — no Docker, no registry.

Used for images that are a single static binary (pause, CoreDNS, MinIO). The layer is built
deterministically (fixed mtimes, sorted entries), so the same inputs give the same digest and
re-importing an unchanged image is a no-op for containerd. The layer is left uncompressed: the archive
only travels to the local containerd, and gzip would cost more time than it saves.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
    tar.addfile(info)


def build_layer(files: list[tuple[Path, str]]) -> bytes:
    """An uncompressed tar with /etc/passwd, /etc/group, a sticky /tmp and the given files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "etc")
        _add(tar, "etc/group", GROUP.encode(), 0o644)
        _add(tar, "etc/passwd", PASSWD.encode(), 0o644)
        _add_dir(tar, "tmp", 0o1777)
        for source, target in sorted(files, key=lambda pair: pair[1]):
            parts = target.strip("/").split("/")
            for depth in range(1, len(parts)):
                _add_dir(tar, "/".join(parts[:depth]))
            _add(tar, "/".join(parts), source.read_bytes(), 0o755)
    return raw.getvalue()


def _blob(out: tarfile.TarFile, data: bytes, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    _add(out, f"blobs/sha256/{digest}", data, 0o644)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def write_image(
    name: str, files: list[tuple[Path, str]], entrypoint: list[str], user: str, output: Path
) -> None:
    layer = build_layer(files)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": user, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
    }
    tmp = output.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as out:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _blob(
                out, json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json"
            ),
            "layers": [_blob(out, layer, "application/vnd.oci.image.layer.v1.tar")],
        }
        descriptor = _blob(out, json.dumps(manifest, sort_keys=True).encode(), manifest["mediaType"])
        descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
        descriptor["annotations"] = {
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name,
        }
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [descriptor],
        }
        _add(out, "index.json", json.dumps(index).encode(), 0o644)
        _add(out, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}', 0o644)
    os.replace(tmp, output)


def up_to_date(output: Path, name: str, files: list[tuple[Path, str]]) -> bool:
    """True when `output` already holds image `name` and is newer than its inputs and this script."""
    if not output.exists():
        return False
    newest_input = max(path.stat().st_mtime for path in [Path(__file__), *(source for source, _ in files)])
    if output.stat().st_mtime < newest_input:
        return False
    with tarfile.open(output) as archive:
        member = archive.extractfile("index.json")
        index = json.load(member) if member else {}
    return any(
        m.get("annotations", {}).get("io.containerd.image.name") == name for m in index.get("manifests", [])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="full image reference, e.g. marina.local/minio:dev")
    parser.add_argument(
        "--file", action="append", required=True, metavar="SRC:DEST", help="file to put in the image"
    )
    parser.add_argument("--entrypoint", required=True, nargs="+")
    parser.add_argument("--user", default="65532:65532")
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args()
    files = [(Path(spec.split(":", 1)[0]), spec.split(":", 1)[1]) for spec in args.file]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not up_to_date(args.output, args.name, files):
        write_image(args.name, files, args.entrypoint, args.user, args.output)


if __name__ == "__main__":
    main()
