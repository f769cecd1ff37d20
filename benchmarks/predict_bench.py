"""Batch scoring throughput: `marina predict` over a prepared dataset and over CSV files, in rows per second
and peak memory, with the prediction alone and with every output.

A synthetic set (`--rows` x `--features`) is prepared and a model trained on it (streamed, as a large
one is); then each line below runs `marina predict` as a separate process on the train split (or its
CSV export), as a Job's pod runs it, and reports its wall time and the peak memory it states
(`peakMemoryBytes`: VmHWM outside a container). The parts are written to a temporary folder on local
disk, so storage is not what is measured.

    python benchmarks/predict_bench.py [--rows 1000000] [--features 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ALL = "predict,contribution,lower,upper,extrapolation"


def marina(*args: str) -> tuple[dict[str, object], float]:
    environment = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "marina.cli", *args],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result, time.perf_counter() - started


def export_csv(data: str, folder: Path, files: int) -> Path:
    """The train split's feature columns as `files` CSV files (a folder source)."""
    sys.path.insert(0, str(REPO / "operator"))
    from marina.data import dataset

    stored = dataset.open_stored(data)
    folder.mkdir()
    chunks = [chunk[:, :-1] for chunk in stored.chunks("train")]
    rows = np.vstack(chunks)
    header = ",".join(stored.feature_names)
    for index, block in enumerate(np.array_split(rows, files)):
        np.savetxt(
            folder / f"part-{index:03d}.csv", block, delimiter=",", header=header, comments="", fmt="%.17g"
        )
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="marina-predict-bench-") as temporary:
        folder = Path(temporary)
        source = f"synthetic:rows={args.rows},features={args.features},noise=0.5,seed=5"
        prepared, seconds = marina("prepare", "--source", source, "--output", str(folder / "data"))
        print(f"prepared {args.rows:,} x {args.features} in {seconds:.1f} s", flush=True)
        data = str(prepared["uri"])
        trained, seconds = marina("train", "--data", data, "--output", str(folder / "model"))
        print(f"trained in {seconds:.1f} s ({trained['intervals']} intervals)", flush=True)
        model = str(trained["uri"])
        csv = export_csv(data, folder / "csv", files=8)
        lines = [
            ("prepared split, predict", ["--data", data, "--split", "train", "--outputs", "predict"]),
            ("prepared split, all outputs", ["--data", data, "--split", "train", "--outputs", ALL]),
            ("8 CSV files, predict", ["--data", str(csv), "--outputs", "predict"]),
            ("8 CSV files, all outputs", ["--data", str(csv), "--outputs", ALL]),
        ]
        print()
        print(f"{'source, outputs':32}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak MiB':>10}{'parts':>7}")
        for number, (label, options) in enumerate(lines):
            output = folder / f"scores-{number}"
            result, seconds = marina("predict", "--model", model, *options, "--output", str(output))
            rows = int(str(result["rows"]))
            peak = int(str(result.get("peakMemoryBytes", 0))) / 2**20
            rate = rows / seconds
            print(f"{label:32}{rows:>12,}{seconds:>10.1f}{rate:>12,.0f}{peak:>10.0f}{result['parts']:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
