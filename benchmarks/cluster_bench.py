"""A large Parquet source through Marina on a running cluster: Dataset Ready, then TrainingJob Ready,
with every pod limited to 512Mi; each stage's time and each pod's peak memory.

    python benchmarks/cluster_bench.py                       # 10,000,000 x 100 (8 GB of float64)
    python benchmarks/cluster_bench.py --rows 2000000 --features 50 --parallelism 1 2

It writes the seeded synthetic table once as Parquet parts of 1,000,000 rows into the cluster's MinIO
under s3://marina/raw/<namespace>/ (kept for later runs), then applies a Dataset reading that folder and
one TrainingJob per --parallelism, all with `resources.limits.memory: 512Mi`, and waits for each to be
Ready. Each pod's peak memory is its container's cgroup peak, as the pod's result reports it
(`peakMemoryBytes`). The issue's target: the whole run within 5 minutes, every pod at most 512Mi.
It needs the cluster and Marina deployed (`make cluster-up images deploy`) and kubectl's context on it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator")]
LIMIT = "512Mi"
RESOURCES = {"limits": {"memory": LIMIT}, "requests": {"memory": LIMIT, "cpu": "100m"}}
PART_ROWS = 1_000_000
ROW_GROUP_ROWS = 65_536  # row groups as a writer flushing every 64k rows makes them (~50 MB here)


def kubectl(*args: str, stdin: str | None = None) -> str:
    completed = subprocess.run(
        ["bash", str(REPO / "hack/kubectl.sh"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {completed.stderr.strip()}")
    return completed.stdout


def minio_environment() -> dict[str, str]:
    """Root credentials and the ClusterIP, which this host reaches on the local cluster."""
    secret = json.loads(
        kubectl("-n", "marina-system", "get", "secret", "marina-s3-credentials", "-o", "json")
    )
    keys = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    ip = kubectl("-n", "marina-system", "get", "service", "minio", "-o", "jsonpath={.spec.clusterIP}")
    return {
        "MARINA_S3_ENDPOINT": f"http://{ip}:9000",
        "AWS_ACCESS_KEY_ID": keys["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": keys["AWS_SECRET_ACCESS_KEY"],
    }


def write_source(uri: str, rows: int, features: int) -> None:
    """The synthetic source's rows as Parquet parts of PART_ROWS rows, skipped when already stored."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from marina import storage
    from marina.data.sources import SyntheticSpec

    spec = SyntheticSpec(rows=rows, features=features, noise=0.5, seed=11)
    names = [*(f"x{j}" for j in range(1, features + 1)), "target"]
    schema = pa.schema([(name, pa.float64()) for name in names])
    for part, first in enumerate(range(0, rows, PART_ROWS)):
        part_uri = storage.join(uri, f"part-{part:05d}.parquet")
        if storage.exists(part_uri):
            continue
        started = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=".parquet") as local:
            with pq.ParquetWriter(local.name, schema, compression="snappy") as writer:
                pending: list[np.ndarray] = []
                for block in range(
                    first // spec.block_rows, -(-min(first + PART_ROWS, rows) // spec.block_rows)
                ):
                    values = spec.block(block)
                    low = max(first, block * spec.block_rows) - block * spec.block_rows
                    high = (
                        min(first + PART_ROWS, rows, (block + 1) * spec.block_rows) - block * spec.block_rows
                    )
                    pending.append(values[low:high])
                    if sum(len(p) for p in pending) >= ROW_GROUP_ROWS:
                        write_group(writer, pending, names, schema)
                        pending = []
                if pending:
                    write_group(writer, pending, names, schema)
            storage.write_bytes(part_uri, Path(local.name).read_bytes(), "application/vnd.apache.parquet")
        print(f"  wrote {part_uri} in {time.perf_counter() - started:.0f} s", flush=True)


def write_group(writer: Any, blocks: list[Any], names: list[str], schema: Any) -> None:
    import numpy as np
    import pyarrow as pa

    columns = np.ascontiguousarray(np.vstack(blocks).T)
    writer.write_table(pa.table(dict(zip(names, columns, strict=True)), schema=schema))


def apply(namespace: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    document = {"apiVersion": "marina.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(document))


def wait_ready(namespace: str, kind: str, name: str, timeout: float) -> dict[str, Any]:
    """The status once Ready is True; exits when the resource is Stalled (failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = json.loads(kubectl("-n", namespace, "get", kind, name, "-o", "json"))
        status = body.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions", [])}
        if conditions.get("Ready", {}).get("status") == "True":
            return dict(status)
        stalled = conditions.get("Stalled", {})
        if stalled.get("status") == "True":  # kstatus: failed, and not retrying by itself
            raise SystemExit(f"{kind} {name}: {stalled.get('reason')}: {stalled.get('message')}")
        subprocess.run(  # returns when Ready turns True, or after 10 s to look at the reason again
            [
                "bash",
                str(REPO / "hack/kubectl.sh"),
                "-n",
                namespace,
                "wait",
                f"{kind}/{name}",
                "--for=condition=Ready",
                "--timeout=10s",
            ],
            capture_output=True,
            check=False,
        )
    raise SystemExit(f"{kind} {name} not Ready within {timeout:.0f} s")


def pod_peaks(namespace: str, owner_label: str, name: str) -> list[tuple[str, int | None]]:
    """(pod, peakMemoryBytes) of every finished pod of the owner, from its termination message."""
    pods = json.loads(kubectl("-n", namespace, "get", "pods", "-l", f"{owner_label}={name}", "-o", "json"))
    peaks = []
    for pod in pods["items"]:
        for container in pod["status"].get("containerStatuses", []):
            message = ((container.get("state") or {}).get("terminated") or {}).get("message") or "{}"
            try:
                peak = json.loads(message).get("peakMemoryBytes")
            except ValueError:
                peak = None
            peaks.append((pod["metadata"]["name"], peak))
    return peaks


def report(stage: str, seconds: float, peaks: list[tuple[str, int | None]]) -> None:
    print(f"{stage:<34} {seconds:7.1f} s")
    for pod, peak in peaks:
        shown = f"{peak / 2**20:6.0f} MiB" if peak is not None else "   unknown"
        print(f"    {pod:<58} peak {shown} (limit {LIMIT})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1])
    parser.add_argument("--namespace", default="marina-bench")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    os.environ.update(minio_environment())
    if args.namespace not in kubectl("get", "namespaces", "-o", "name"):
        kubectl("create", "namespace", args.namespace)
    source = f"s3://marina/raw/{args.namespace}/table-{args.rows}x{args.features}/"
    started = time.perf_counter()
    write_source(source, args.rows, args.features)
    print(
        f"source {source}: {args.rows} x {args.features} as Parquet ({time.perf_counter() - started:.0f} s)"
    )

    run = f"r{int(time.time()) % 100000}"
    total = time.perf_counter()
    apply(args.namespace, "Dataset", run, {"source": {"parquet": {"uri": source}}, "resources": RESOURCES})
    prepared = wait_ready(args.namespace, "dataset", run, args.timeout)
    prepare_seconds = time.perf_counter() - total
    report(
        f"Dataset Ready ({prepared['rows']} rows)",
        prepare_seconds,
        pod_peaks(args.namespace, "marina.dev/dataset", run),
    )
    for parallelism in args.parallelism:
        started = time.perf_counter()
        name = f"{run}-p{parallelism}"
        spec = {"dataset": {"name": run}, "resources": RESOURCES, "parallelism": parallelism}
        apply(args.namespace, "TrainingJob", name, spec)
        trained = wait_ready(args.namespace, "trainingjob", name, args.timeout)
        report(
            f"TrainingJob Ready (parallelism {parallelism}, r2 {trained['metrics']['r2']:.4f})",
            time.perf_counter() - started,
            pod_peaks(args.namespace, "marina.dev/trainingjob", name),
        )
    print(f"apply to the last TrainingJob Ready: {time.perf_counter() - total:.1f} s (target <= 300 s)")


if __name__ == "__main__":
    main()
