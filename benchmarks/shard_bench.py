"""Sharded training against one process, side by side in one run, on one prepared dataset.

    python benchmarks/shard_bench.py                          # 10,000,000 x 100 (8 GB of float64), 2 shards
    python benchmarks/shard_bench.py --rows 2000000 --features 50 --shards 2

It prepares a seeded synthetic dataset once into --workdir (Parquet parts), then times `marina train`
in one process (the streaming pass) and the same training as N shard processes running at once
followed by the reduce, as the Indexed Job and the reduce Job run them. It prints both times, the
speed-up (the issue's target: at least 1.6x with 2 shards on 2 cores) and the largest coefficient
difference relative to the largest coefficient (target: 1e-10).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "operator")}


def marina(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "marina.cli", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"marina failed ({process.returncode}): {err[-2000:]}")
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def coefficients(result: dict[str, object]) -> list[float]:
    document = json.loads(Path(str(result["uri"])).read_text())
    return [float(c) for c in document["coefficients"]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/marina-shard-bench"))
    args = parser.parse_args()
    data = args.workdir / f"data-{args.rows}x{args.features}"
    if not any(p.name != "parts" for p in data.glob("*")):
        started = time.perf_counter()
        source = f"synthetic:rows={args.rows},features={args.features},noise=0.5,seed=5"
        finished(marina("prepare", "--source", source, "--output", str(data)))
        print(f"prepared {args.rows} x {args.features} in {time.perf_counter() - started:.0f} s")
    print(f"{args.rows} rows x {args.features} features, {args.shards} shards, {os.cpu_count()} CPUs")

    started = time.perf_counter()
    one = finished(marina("train", "--data", str(data), "--output", str(args.workdir / "one")))
    single = time.perf_counter() - started

    run = str(time.time_ns())
    common = ["--data", str(data), "--output", str(args.workdir / "many"), "--shards", str(args.shards)]
    common += ["--partials", str(args.workdir / "partials" / run)]
    started = time.perf_counter()
    shards = [
        marina("train", *common, "--phase", "shard", "--shard-index", str(i)) for i in range(args.shards)
    ]
    for process in shards:
        finished(process)
    gathered = time.perf_counter() - started
    many = finished(marina("train", *common, "--phase", "reduce"))
    sharded = time.perf_counter() - started

    a, b = coefficients(one), coefficients(many)
    scale = max(abs(c) for c in a)
    difference = max(abs(x - y) for x, y in zip(a, b, strict=True)) / scale
    print(f"  one process                      {single:8.1f} s")
    print(f"  {args.shards} shards at once, then reduce   {sharded:8.1f} s  (shards {gathered:.1f} s)")
    print(f"  speed-up: {single / sharded:.2f}x (target >= 1.6 with 2 shards)")
    print(f"  largest coefficient difference / largest coefficient: {difference:.1e} (target <= 1e-10)")


if __name__ == "__main__":
    main()
