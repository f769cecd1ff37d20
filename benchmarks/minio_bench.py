"""What erasure coding costs: the pinned MinIO on loopback with one drive, then erasure-coded over four
(MinIO's default parity for four drives, EC:2, and EC:1), the same objects put and read back on each.

- large: `--large` objects of `--large-mib` MiB, each one PUT as Marina writes a dataset part or a model
  (storage.write), then each read back whole;
- small: `--small` objects of `--small-kib` KiB (manifests, model JSONs, payload-log records), one request
  each, sequential, then read back.

Printed per layout: MiB/s and objects/s for put and get, their ratio to one drive, and the disk the
drives use after the puts (erasure coding's parity overhead: EC:2 over four drives stores each byte
twice, EC:1 4/3 times; small objects are stored inline in their metadata file on every drive). Reads
are served from the page cache where the machine's memory holds the data, for every layout alike.
The layouts take turns for `--rounds` rounds and each figure is the best of its rounds, so that other
work on a shared machine weighs on every layout alike and as little as it can.

    python benchmarks/minio_bench.py [--rounds 3] [--large 16 --large-mib 64] [--small 1000 --small-kib 16]
        [--workdir /tmp/marina-minio-bench]
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tests")]
BUCKET = "bench"
MIB = 1 << 20


@dataclass(frozen=True)
class Layout:
    name: str
    drives: int
    parity: str | None  # MINIO_STORAGE_CLASS_STANDARD, e.g. "EC:1"; None: MinIO's default


LAYOUTS = (Layout("1 drive", 1, None), Layout("4 drives EC:2", 4, None), Layout("4 drives EC:1", 4, "EC:1"))


@dataclass
class Figures:
    large_put: float = 0.0  # seconds
    large_get: float = 0.0
    small_put: float = 0.0
    small_get: float = 0.0
    disk_bytes: int = 0

    def best(self, other: Figures | None) -> Figures:
        """The fastest of each figure in two rounds (the disk used is the same in every round)."""
        if other is None:
            return self
        return Figures(
            min(self.large_put, other.large_put),
            min(self.large_get, other.large_get),
            min(self.small_put, other.small_put),
            min(self.small_get, other.small_get),
            self.disk_bytes,
        )


def disk_bytes(folders: list[Path]) -> int:
    """Bytes allocated on disk under the folders (blocks, as du counts them)."""
    return sum(
        (Path(top) / name).lstat().st_blocks * 512
        for folder in folders
        for top, _, names in os.walk(folder)
        for name in names
    )


def put(client: Any, key: str, data: bytes) -> None:
    """One PUT, as marina.storage writes."""
    client.put_object(BUCKET, key, io.BytesIO(data), len(data), part_size=max(5 * MIB, len(data)))


def get(client: Any, key: str) -> int:
    response = client.get_object(BUCKET, key)
    try:
        return len(response.read())
    finally:
        response.close()
        response.release_conn()


def measure(layout: Layout, root: Path, large: list[bytes], small: list[bytes]) -> Figures:
    from minio import Minio

    from minio_server import MinioServer, drive_paths, free_port, minio_binary_path, serving

    binary = minio_binary_path()
    if not binary.exists():
        raise SystemExit(f"no MinIO at {binary}: run `bash hack/build-binaries.sh minio`")
    server = MinioServer(f"http://127.0.0.1:{free_port()}", "bench", secrets.token_hex(16))
    extra = {"MINIO_STORAGE_CLASS_STANDARD": layout.parity} if layout.parity else {}
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    figures = Figures()
    with serving(binary, root, server, layout.drives, extra):
        client = Minio(
            server.endpoint.removeprefix("http://"), server.access_key, server.secret_key, secure=False
        )
        client.make_bucket(BUCKET)
        began = time.perf_counter()
        for index, data in enumerate(large):
            put(client, f"large/{index}", data)
        figures.large_put = time.perf_counter() - began
        began = time.perf_counter()
        for index, data in enumerate(small):
            put(client, f"small/{index}", data)
        figures.small_put = time.perf_counter() - began
        figures.disk_bytes = disk_bytes(drive_paths(root, layout.drives))
        began = time.perf_counter()
        read = sum(get(client, f"large/{index}") for index in range(len(large)))
        figures.large_get = time.perf_counter() - began
        began = time.perf_counter()
        read += sum(get(client, f"small/{index}") for index in range(len(small)))
        figures.small_get = time.perf_counter() - began
        assert read == sum(map(len, large)) + sum(map(len, small)), "a read returned other sizes"
    shutil.rmtree(root, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large", type=int, default=16)
    parser.add_argument("--large-mib", type=int, default=64)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--small-kib", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/marina-minio-bench"))
    args = parser.parse_args()
    # Distinct random contents (nothing compresses or deduplicates), made before any clock starts.
    large = [os.urandom(args.large_mib * MIB) for _ in range(args.large)]
    small = [os.urandom(args.small_kib << 10) for _ in range(args.small)]
    stored = sum(map(len, large)) + sum(map(len, small))
    print(
        f"{args.large} x {args.large_mib} MiB and {args.small} x {args.small_kib} KiB "
        f"({stored / MIB:.0f} MiB), {os.cpu_count()} CPUs"
    )
    results: dict[str, Figures] = {}
    for round_ in range(args.rounds):
        for index, layout in enumerate(LAYOUTS):
            figures = measure(layout, args.workdir / f"layout-{index}", large, small)
            results[layout.name] = figures.best(results.get(layout.name))
        print(f"round {round_ + 1} of {args.rounds} done", flush=True)
    base = results[LAYOUTS[0].name]
    large_mib = len(large) * args.large_mib
    print(
        f"{'layout':<16}{'large put':>17}{'large get':>17}{'small put':>17}{'small get':>17}{'on disk':>18}"
    )
    for name, figures in results.items():
        cells = [
            f"{large_mib / figures.large_put:6.0f} MiB/s {base.large_put / figures.large_put:4.2f}x",
            f"{large_mib / figures.large_get:6.0f} MiB/s {base.large_get / figures.large_get:4.2f}x",
            f"{len(small) / figures.small_put:6.0f} obj/s {base.small_put / figures.small_put:4.2f}x",
            f"{len(small) / figures.small_get:6.0f} obj/s {base.small_get / figures.small_get:4.2f}x",
            f"{figures.disk_bytes / MIB:6.0f} MiB {figures.disk_bytes / stored:4.2f}x",
        ]
        print(f"{name:<16}" + "".join(f"{cell:>17}" for cell in cells))
    print("(x: throughput as a multiple of one drive's; on disk: as a multiple of the bytes stored)")


if __name__ == "__main__":
    main()
