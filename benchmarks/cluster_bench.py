"""A large Parquet source through Marina on a running cluster: Dataset Ready, then TrainingJob Ready,
then the source scored by BatchPredictions, with every pod limited to 512Mi; each stage's time and each
pod's peak memory.

    python benchmarks/cluster_bench.py                       # 10,000,000 x 100 (8 GB of float64)
    python benchmarks/cluster_bench.py --rows 2000000 --features 50 --parallelism 1 2
    python benchmarks/cluster_bench.py --score 1 2 --oom      # and batch scoring in 1 and 2 pods
    python benchmarks/cluster_bench.py --prepare 1 2 --no-training   # preparation in 1 and 2 pods
    python benchmarks/cluster_bench.py --rows 100000000 --features 10 --csv --prepare 2 --parallelism 2

It writes the seeded synthetic table once as Parquet parts of 1,000,000 rows (with --csv, CSV parts with
six decimals) into the cluster's MinIO under s3://marina/raw/<namespace>/ (kept for later runs), then
applies a Dataset reading that folder and one TrainingJob per --parallelism, all with
`resources.limits.memory: 512Mi`, and waits for each to be Ready. Each pod's peak memory is its
container's cgroup peak, as the pod's result reports it (`peakMemoryBytes`). The issue's target: the
whole run within 5 minutes, every pod at most 512Mi.
With --score, one BatchPrediction per parallelism scores the whole source folder (every file a unit of
work; parallelism N an Indexed Job of N pods and a last Job writing the manifest) with the last model;
the manifests must be one (the same sha256), and the first and last parts' predictions must equal the
model's own on the same source rows to 1e-12 relative. --oom scores with a 64Mi limit, which must end
Stalled with the reason OutOfMemory.
With --prepare, one Dataset per value of its `parallelism` prepares the same folder, one after the
other (each alone on the cluster); they must give one version, sha256 and statistics, and the time of
each against the first is printed (the issue's target: 2 pods at least 1.7x as fast as 1, every pod,
each shard's and the reduce's, at most 512Mi). The TrainingJobs train on the first of them;
--no-training stops after the Datasets.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator")]
LIMIT = "512Mi"
RESOURCES: dict[str, dict[str, str]] = {
    "limits": {"memory": LIMIT},
    "requests": {"memory": LIMIT, "cpu": "100m"},
}
PART_ROWS = 1_000_000
ROW_GROUP_ROWS = 65_536
#: The most rows a Dataset's synthetic source has; larger tables continue its stream block by block.
SYNTHETIC_ROWS = 10_000_000
#: Decimal places of a CSV source's values (17 significant digits would double the file).
CSV_DECIMALS = 6  # row groups as a writer flushing every 64k rows makes them (~50 MB here)


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


def write_source(uri: str, rows: int, features: int, fmt: str = "parquet") -> None:
    """The synthetic source's rows as parts of PART_ROWS rows (Parquet, or CSV with values rounded to
    CSV_DECIMALS decimal places), skipped when already stored."""
    from marina import storage
    from marina.data.sources import SyntheticSpec

    spec = SyntheticSpec(rows=min(rows, SYNTHETIC_ROWS), features=features, noise=0.5, seed=11)
    names = [*(f"x{j}" for j in range(1, features + 1)), "target"]
    for part, first in enumerate(range(0, rows, PART_ROWS)):
        part_uri = storage.join(uri, f"part-{part:05d}.{fmt}")
        if storage.exists(part_uri):
            continue
        started = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as local:
            blocks = part_blocks(spec, first, min(first + PART_ROWS, rows), rows)
            if fmt == "csv":
                write_csv(Path(local.name), blocks, names)
                media = "text/csv"
            else:
                write_parquet(Path(local.name), blocks, names)
                media = "application/vnd.apache.parquet"
            storage.write_bytes(part_uri, Path(local.name).read_bytes(), media)
        print(f"  wrote {part_uri} in {time.perf_counter() - started:.0f} s", flush=True)


def part_blocks(spec: Any, first: int, last: int, rows: int) -> Iterator[Any]:
    """Rows first..last of the synthetic table of ``rows`` rows, as the generator's blocks cut to that
    range (each block drawn whole: its noise follows its inputs in the stream)."""
    size = spec.block_rows
    for block in range(first // size, -(-last // size)):
        start = block * size
        values = spec.block_of(block, min(size, rows - start))
        yield values[max(first, start) - start : min(last, start + size) - start]


def write_parquet(path: Path, blocks: Iterator[Any], names: list[str]) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.float64()) for name in names])
    with pq.ParquetWriter(str(path), schema, compression="snappy") as writer:
        pending: list[np.ndarray] = []
        for values in blocks:
            pending.append(values)
            if sum(len(p) for p in pending) >= ROW_GROUP_ROWS:
                write_group(writer, pending, names, schema)
                pending = []
        if pending:
            write_group(writer, pending, names, schema)


def write_csv(path: Path, blocks: Iterator[Any], names: list[str]) -> None:
    """A header, then the rows with CSV_DECIMALS decimal places (polars writes them)."""
    import polars as pl

    with path.open("wb") as out:
        for index, values in enumerate(blocks):
            frame = pl.DataFrame(values, schema=names, orient="row")
            frame.write_csv(out, include_header=index == 0, float_precision=CSV_DECIMALS)


def write_group(writer: Any, blocks: list[Any], names: list[str], schema: Any) -> None:
    import numpy as np
    import pyarrow as pa

    columns = np.ascontiguousarray(np.vstack(blocks).T)
    writer.write_table(pa.table(dict(zip(names, columns, strict=True)), schema=schema))


def apply(namespace: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    document = {"apiVersion": "marina.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(document))


def wait_ready(
    namespace: str, kind: str, name: str, timeout: float, stalled_reason: str | None = None
) -> dict[str, Any]:
    """The status once Ready is True; exits when the resource is Stalled (failed), unless it is Stalled
    with `stalled_reason`, which is then what is waited for (its status is returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = json.loads(kubectl("-n", namespace, "get", kind, name, "-o", "json"))
        status = body.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions", [])}
        if conditions.get("Ready", {}).get("status") == "True":
            return dict(status)
        stalled = conditions.get("Stalled", {})
        if stalled.get("status") == "True" and stalled.get("reason") == stalled_reason:
            return dict(status)
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
    parser.add_argument("--score", type=int, nargs="*", default=[], help="BatchPrediction parallelisms")
    parser.add_argument("--oom", action="store_true", help="also score with 64Mi: must be OutOfMemory")
    parser.add_argument("--prepare", type=int, nargs="+", default=[1], help="Dataset parallelisms")
    parser.add_argument("--no-training", action="store_true", help="stop once the Datasets are Ready")
    parser.add_argument(
        "--csv", action="store_true", help=f"the source as CSV parts ({CSV_DECIMALS} decimals), not Parquet"
    )
    parser.add_argument(
        "--cpu-limit",
        help="each pod's CPU limit (e.g. 500m): how runs scale when the cores are not all taken by one pod "
        "and MinIO, as on a two-core machine",
    )
    args = parser.parse_args()
    if args.cpu_limit:
        RESOURCES["limits"]["cpu"] = args.cpu_limit
    if args.csv and args.score:
        parser.error("--score reads the Parquet source; leave out --csv")
    args.format = "csv" if args.csv else "parquet"
    os.environ.update(minio_environment())
    if args.namespace not in kubectl("get", "namespaces", "-o", "name"):
        kubectl("create", "namespace", args.namespace)
    folder = f"table-{args.rows}x{args.features}" + ("-csv" if args.csv else "")
    source = f"s3://marina/raw/{args.namespace}/{folder}/"
    started = time.perf_counter()
    write_source(source, args.rows, args.features, args.format)
    took = time.perf_counter() - started
    print(f"source {source}: {args.rows} x {args.features} as {args.format} ({took:.0f} s)")

    run = f"r{int(time.time()) % 100000}"
    total = time.perf_counter()
    prepare(args, source, run)
    if args.no_training:
        return
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
    if args.score:
        score(args, source, f"{run}-p{args.parallelism[-1]}")


def prepare(args: argparse.Namespace, source: str, run: str) -> None:
    """One Dataset per --prepare parallelism (the first named `run`, which training reads), one at a
    time; then the checks that they prepared one dataset."""
    seconds: dict[int, float] = {}
    statuses: dict[int, dict[str, Any]] = {}
    for index, parallelism in enumerate(args.prepare):
        name = run if index == 0 else f"{run}-d{parallelism}"
        spec = {"source": {args.format: {"uri": source}}, "resources": RESOURCES, "parallelism": parallelism}
        started = time.perf_counter()
        apply(args.namespace, "Dataset", name, spec)
        statuses[parallelism] = wait_ready(args.namespace, "dataset", name, args.timeout)
        seconds[parallelism] = time.perf_counter() - started
        report(
            f"Dataset Ready (parallelism {parallelism}, {statuses[parallelism]['rows']} rows)",
            seconds[parallelism],
            pod_peaks(args.namespace, "marina.dev/dataset", name),
        )
    first = args.prepare[0]
    for parallelism in args.prepare[1:]:
        print(f"parallelism {parallelism}: {seconds[first] / seconds[parallelism]:.2f}x parallelism {first}")
    kept = ("version", "sha256", "rows", "trainRows", "testRows", "statistics")
    distinct = {json.dumps({k: s.get(k) for k in kept}, sort_keys=True) for s in statuses.values()}
    print(f"Datasets: {len(distinct)} distinct versions and statistics over {len(statuses)} (must be 1)")
    if len(distinct) != 1:
        raise SystemExit("the Datasets' parallelisms prepared different data")


def score(args: argparse.Namespace, source: str, training: str) -> None:
    """BatchPredictions of the whole source, one per --score parallelism; then the checks."""
    from marina.model import artifact

    manifests: dict[int, dict[str, Any]] = {}
    for parallelism in args.score:
        name = f"{training}-score{parallelism}"
        spec = {
            "model": {"trainingJob": training},
            "source": {"parquet": {"uri": source}},
            "outputs": ["predict"],
            "parallelism": parallelism,
            "resources": RESOURCES,
        }
        started = time.perf_counter()
        apply(args.namespace, "BatchPrediction", name, spec)
        scored = wait_ready(args.namespace, "batchprediction", name, args.timeout)
        report(
            f"BatchPrediction Ready (parallelism {parallelism}, {scored['rows']} rows)",
            time.perf_counter() - started,
            pod_peaks(args.namespace, "marina.dev/batchprediction", name),
        )
        manifests[parallelism] = scored
    digests = {scored["manifest"]["sha256"] for scored in manifests.values()}
    print(f"manifests: {len(digests)} distinct sha256 over {len(manifests)} runs (must be 1)")
    last = next(iter(manifests.values()))
    training_status = json.loads(kubectl("-n", args.namespace, "get", "trainingjob", training, "-o", "json"))[
        "status"
    ]
    model = artifact.load(training_status["model"]["uri"], training_status["model"]["sha256"])
    worst = compare_parts(last["manifest"]["uri"], source, model)
    print(f"largest |scored - model's own| / |model's own| over the first and last parts: {worst:.2e}")
    if len(digests) != 1 or worst > 1e-12:
        raise SystemExit("batch scoring did not give the model's own predictions once")
    if args.oom:
        name = f"{training}-oom"
        spec = {
            "model": {"trainingJob": training},
            "source": {"parquet": {"uri": source}},
            "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi", "cpu": "100m"}},
            "backoffLimit": 0,
        }
        started = time.perf_counter()
        apply(args.namespace, "BatchPrediction", name, spec)
        status = wait_ready(args.namespace, "batchprediction", name, args.timeout, "OutOfMemory")
        stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
        took = time.perf_counter() - started
        print(f"64Mi: Stalled {stalled['reason']} after {took:.0f} s: {stalled['message']}")


def compare_parts(manifest_uri: str, source: str, model: Any) -> float:
    """The largest relative difference between the scored predictions of the manifest's first and last
    parts and the model's own predictions of the same source rows (rows in the source's order)."""
    import io

    import numpy as np
    import pyarrow.parquet as pq

    from marina import storage

    manifest = json.loads(storage.read_bytes(manifest_uri))
    folder = storage.join(manifest_uri.rsplit("/", 1)[0], manifest["partsFolder"])
    files = [name for name in storage.list_folder(source) if name.endswith(".parquet")]
    starts = np.cumsum([0] + [int(part["rows"]) for part in manifest["parts"]])
    total = int(starts[-1])
    worst = 0.0
    for index in (0, len(manifest["parts"]) - 1):
        part = manifest["parts"][index]
        scored = pq.read_table(io.BytesIO(storage.read_bytes(storage.join(folder, part["name"]))))
        first = int(starts[index])
        rows = read_rows(source, files, first, scored.num_rows, total)
        own = model.predict(rows[model.feature_names].to_numpy())
        got = scored.column("predict").to_numpy()
        worst = max(worst, float(np.max(np.abs(got - own)) / np.max(np.abs(own))))
    return worst


def read_rows(source: str, files: list[str], first: int, count: int, total: int) -> Any:
    """Rows [first, first + count) of the source folder's files, in order, as a pandas frame."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from marina import storage

    tables, offset = [], 0
    for name in files:
        table = pq.read_table(io.BytesIO(storage.read_bytes(storage.join(source, name))))
        low, high = max(first - offset, 0), min(first + count - offset, table.num_rows)
        if low < high:
            tables.append(table.slice(low, high - low))
        offset += table.num_rows
        if offset >= first + count or offset >= total:
            break
    return pa.concat_tables(tables).to_pandas()


if __name__ == "__main__":
    main()
