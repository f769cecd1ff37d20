"""Marina's data path against today's numpy path and polars, side by side in one run, on one CSV.

    python benchmarks/data_bench.py                         # 1,000,000 rows x 100 features (a 2 GB CSV)
    python benchmarks/data_bench.py --rows 200000 --features 50 --local

It writes a seeded CSV (x1..xN, target) once into --workdir, starts the pinned MinIO the tests use
(unless --local) and uploads the CSV, then runs each step in its own process so its peak memory
(VmHWM) is its own:

- numpy.loadtxt of the CSV (the parser `marina prepare` used before the columnar path);
- polars.read_csv of the CSV (parse alone, the fastest reader measured here);
- `marina prepare` from the stored CSV (stream, parse, clean, split, statistics, version, Parquet parts
  written back): time and peak RSS;
- `marina train` (OLS) from the prepared dataset: time and peak RSS, against
  `LinearRegressor().fit` on the same arrays already in memory.

It prints each time, the ratios the issue sets as targets and the peak memory against 512 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tests")]
LIMIT_MIB = 512

CHILD = r"""
import json, resource, sys, time
exec(sys.argv[1])
started = time.perf_counter()
exec(sys.argv[2])
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(setup: str, code: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `setup` (imports, untimed), then `code` in a fresh Python: the code's wall time and the process's
    peak RSS (VmHWM)."""
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, setup, code],
        env={**os.environ, "PYTHONPATH": str(REPO / "operator"), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"step failed:\n{code}\n{completed.stderr[-3000:]}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def write_csv(path: Path, rows: int, features: int) -> None:
    """The synthetic source's rows (marina.data.sources, seeded), written by Arrow's CSV writer by blocks."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from marina.data.sources import SyntheticSpec

    spec = SyntheticSpec(rows=rows, features=features, noise=0.5, seed=11)
    names = [*(f"x{j}" for j in range(1, features + 1)), "target"]
    partial = path.with_suffix(".partial")
    with pa_csv.CSVWriter(str(partial), pa.schema([(n, pa.float64()) for n in names])) as writer:
        for block in range((rows + spec.block_rows - 1) // spec.block_rows):
            values = spec.block(block)
            writer.write_table(pa.table({n: values[:, j] for j, n in enumerate(names)}))
    partial.rename(path)


def start_minio(root: Path) -> tuple[subprocess.Popen[Any], dict[str, str]]:
    from minio_server import MinioServer, free_port, minio_binary_path, start

    binary = minio_binary_path()
    if not binary.exists():
        raise SystemExit(f"no MinIO at {binary}: run `bash hack/build-binaries.sh minio` or pass --local")
    port = free_port()
    server = MinioServer(f"http://127.0.0.1:{port}", "bench", secrets.token_hex(16))
    process = start(binary, root, server, port, subprocess.DEVNULL)
    env = server.environment()
    deadline = time.monotonic() + 60
    import urllib.request

    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{env['MARINA_S3_ENDPOINT']}/minio/health/ready", timeout=1):
                return process, env
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("MinIO did not become ready")


def upload(path: Path, uri: str, env: dict[str, str]) -> None:
    from minio import Minio

    client = Minio(
        env["MARINA_S3_ENDPOINT"].removeprefix("http://"),
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        secure=False,
    )
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    client.fput_object(bucket, key, str(path))


def row(label: str, result: dict[str, float], note: str = "") -> None:
    print(f"  {label:<44} {result['seconds']:8.2f} s   peak {result['peak_mib']:7.0f} MiB  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/marina-data-bench"))
    parser.add_argument("--local", action="store_true", help="keep the data in local folders, not MinIO")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    csv = args.workdir / f"table-{args.rows}x{args.features}.csv"
    if not csv.exists():
        started = time.perf_counter()
        write_csv(csv, args.rows, args.features)
        print(f"wrote {csv} in {time.perf_counter() - started:.0f} s")
    size_mb = csv.stat().st_size / 1e6
    print(f"{args.rows} rows x {args.features} features: CSV {size_mb:.0f} MB, {os.cpu_count()} CPUs")

    run_id = secrets.token_hex(3)
    env: dict[str, str] = {}
    minio = None
    if args.local:
        source, output = str(csv), str(args.workdir / f"datasets-{run_id}")
        models = str(args.workdir / f"models-{run_id}")
    else:
        minio, env = start_minio(args.workdir)
        source, output, models = (
            "s3://bench/raw/table.csv",
            f"s3://bench/datasets-{run_id}",
            "s3://bench/models",
        )
        upload(csv, source, env)
    try:
        loadtxt = measure(
            "import numpy as np", f"np.loadtxt({str(csv)!r}, delimiter=',', skiprows=1, ndmin=2)"
        )
        polars = measure("import polars as pl", f"pl.read_csv({str(csv)!r})")
        cli = (
            "from marina.cli import main; import contextlib, io; "
            "import marina.data.sources, marina.jobs.train"
        )
        prepare = measure(
            cli,
            f"out = io.StringIO()\nwith contextlib.redirect_stdout(out): assert main(['prepare', '--source', "
            f"{source!r}, '--output', {output!r}, '--name', 'bench']) == 0\n"
            f"open({str(args.workdir / 'prepared.json')!r}, 'w').write(out.getvalue())",
            env,
        )
        prepared = json.loads((args.workdir / "prepared.json").read_text())
        train = measure(
            cli,
            "with contextlib.redirect_stdout(io.StringIO()): "
            f"assert main(['train', '--data', {prepared['uri']!r}, '--output', {models!r}]) == 0",
            env,
        )
        fit = measure(
            "from marina.data import dataset\nfrom marina.solver import LinearRegressor\n"
            f"data = dataset.load({prepared['uri']!r}).data\nx, y = data.x_train, data.y_train",
            "LinearRegressor().fit(x, y)",
            env,
        )
    finally:
        if minio is not None:
            minio.terminate()
            minio.wait(timeout=15)
    print(f"\nprepare ({'local folders' if args.local else 'MinIO on loopback'}):")
    row("numpy.loadtxt (the old path's parser)", loadtxt)
    row("polars.read_csv (parse alone)", polars)
    row("marina prepare (stream, clean, split, store)", prepare, f"{size_mb / prepare['seconds']:.0f} MB/s")
    print(f"  speed-up over numpy.loadtxt: {loadtxt['seconds'] / prepare['seconds']:.2f}x (target >= 4)")
    print(f"  marina prepare / polars.read_csv: {prepare['seconds'] / polars['seconds']:.2f}x (target <= 3)")
    print(f"  prepare peak memory: {prepare['peak_mib']:.0f} MiB (target <= {LIMIT_MIB})")
    print("\ntrain (OLS):")
    row("LinearRegressor().fit on arrays in memory", fit)
    row("marina train (read, decode, solve, evaluate)", train)
    print(f"  marina train / in-memory fit: {train['seconds'] / fit['seconds']:.2f}x (target <= 6)")
    print(f"  train peak memory: {train['peak_mib']:.0f} MiB (target <= {LIMIT_MIB})")


if __name__ == "__main__":
    main()
