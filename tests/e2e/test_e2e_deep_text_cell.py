"""A text cell deep in a large CSV on the real cluster (issue 8): 1,600,000 rows of numbers whose data row
1,500,000 has `x2` = `oops`. Types are decided on the first batch (`x2` is a number column there), so the
cell is bad data: the prepare Job streams to it and fails once, by its exit code (podFailurePolicy, no
retry), and the Dataset says which column and row, counting data rows from 1."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from minio import Minio

from marina import storage

# Runs alone (serial): a 1.6-million-row CSV made in the test process and streamed by a pod, CPU that every
# other test waits on.
pytestmark = pytest.mark.serial

NAME = "deep-text"
ROWS = 1_600_000
BAD_ROW = 1_500_000  # data rows counted from 1, as the message counts them
BLOCK = 200_000


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "marina.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def block_csv(rng: np.random.Generator, rows: int) -> bytes:
    """`rows` lines of x1,x2,y (three decimals keep the file about 35 MB), without a header."""
    x1, x2 = np.round(rng.normal(0, 1, rows), 3), np.round(rng.normal(0, 1, rows), 3)
    y = np.round(1.5 * x1 - 2.0 * x2 + rng.normal(0, 0.1, rows), 3)
    sink = io.BytesIO()
    table = pa.table({"x1": x1, "x2": x2, "y": y})
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue()


def write_deep_text(path: Path) -> None:
    """The CSV, block by block; the line of data row BAD_ROW reads `<x1>,oops,<y>`."""
    rng = np.random.default_rng(11)
    with path.open("wb") as out:
        out.write(b"x1,x2,y\n")
        written = 0
        while written < ROWS:
            rows = min(BLOCK, ROWS - written)
            first, last = written + 1, written + rows  # data row numbers of this block
            if first <= BAD_ROW <= last:
                before = BAD_ROW - first
                out.write(block_csv(rng, before) if before else b"")
                out.write(b"0.5,oops,1.25\n")
                after = last - BAD_ROW
                out.write(block_csv(rng, after) if after else b"")
            else:
                out.write(block_csv(rng, rows))
            written += rows


def test_a_text_cell_at_row_1500000_is_named_by_column_and_row(
    marina: Any, minio: Any, tmp_path: Path
) -> None:
    started = time.monotonic()
    path = tmp_path / "deep.csv"
    write_deep_text(path)
    lines = path.read_bytes().splitlines()
    assert len(lines) == ROWS + 1 and lines[BAD_ROW] == b"0.5,oops,1.25", lines[BAD_ROW]
    assert b"oops" not in b"".join(lines[:BAD_ROW]) + b"".join(lines[BAD_ROW + 1 :])
    del lines
    generated = time.monotonic() - started

    uri = f"s3://marina/raw/{marina.namespace}/deep.csv"
    location = storage.parse_s3(uri)
    endpoint = minio.url.split("://", 1)[1]
    client = Minio(endpoint, minio.access_key, minio.secret_key, secure=minio.url.startswith("https"))
    client.fput_object(location.bucket, location.key, str(path), content_type="text/csv")
    uploaded = time.monotonic() - started

    marina.apply(resource("Dataset", NAME, {"source": {"csv": {"uri": uri}}, "target": "y"}))
    ready = marina.wait_reason("dataset", NAME, "PrepareFailed", timeout=150)
    failed = time.monotonic() - started
    print(
        f"\n{ROWS:,} x 3 CSV ({path.stat().st_size / 1e6:.0f} MB): generated in {generated:.1f} s, "
        f"uploaded in {uploaded - generated:.1f} s, PrepareFailed {failed - uploaded:.1f} s after apply: "
        f"{ready['message']}"
    )
    assert ready["status"] == "False"
    assert f"column 'x2' row {BAD_ROW}" in ready["message"], ready["message"]
    assert "'oops' is not a number" in ready["message"], ready["message"]
    assert marina.condition("dataset", NAME, "Stalled")["status"] == "True"

    jobs = json.loads(marina.kubectl("get", "jobs", "-l", f"marina.dev/dataset={NAME}", "-o", "json"))[
        "items"
    ]
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    job = jobs[0]
    conditions = [c for c in job["status"].get("conditions", []) if c["type"] == "Failed"]
    assert conditions and conditions[0]["reason"] == "PodFailurePolicy", job["status"]
    assert job["status"].get("failed") == 1, job["status"]  # one pod, not retried
    pods = json.loads(
        marina.kubectl("get", "pods", "-l", f"job-name={job['metadata']['name']}", "-o", "json")
    )["items"]
    exit_codes = [
        s["state"]["terminated"]["exitCode"]
        for pod in pods
        for s in pod["status"].get("containerStatuses", [])
        if "terminated" in s["state"]
    ]
    assert exit_codes == [1], exit_codes
