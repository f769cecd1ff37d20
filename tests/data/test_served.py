"""Served rows (`marina.data.served`): the one join of logged answers with the truth that live accuracy and a
Dataset's servedLogs source share. Each (id, row) joins once with its latest truth, the rows come out in
one order whatever the order they were read in, the window leaves out what is outside it, and truth
uploaded as CSV or Parquet files joins exactly as the endpoint's does; a malformed file is named with its
column and row, and the rest still counts. Parts are written by the serving pods' own writer into a real
MinIO."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marina import storage
from marina.data import served
from marina.data.table import DataError
from marina.model.artifact import ModelArtifact
from marina.serving.model import ServedModel
from marina.serving.payloads import Feedback, LogSettings, PayloadLog
from minio_server import MinioServer

HOUR = 3600.0


def stamps(seconds: list[float]) -> pa.Array:
    return pa.array((np.array(seconds) * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC"))


def answers(ids: list[str], values: list[float], at: list[float], x: list[float] | None = None) -> Any:
    columns = {
        "id": pa.array(ids, pa.string()),
        "row": pa.array([0] * len(ids), pa.int32()),
        "time": stamps(at),
        "model": pa.array(["m"] * len(ids), pa.string()),
        "prediction": pa.array(values, pa.float64()),
    }
    if x is not None:
        columns["x"] = pa.array(x, pa.float64())
    return pa.table(columns)


def truths(ids: list[str], targets: list[float], at: list[float]) -> Any:
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "row": pa.array([0] * len(ids), pa.int32()),
            "time": stamps(at),
            "target": pa.array(targets, pa.float64()),
        }
    )


def joined_values(joined: served.Joined) -> dict[str, tuple[float, float]]:
    table = joined.table
    pairs = zip(table.column("prediction").to_pylist(), table.column(served.TRUTH).to_pylist(), strict=True)
    return dict(zip(table.column("id").to_pylist(), pairs, strict=True))


# -- the join -----------------------------------------------------------------------------------------


def test_each_key_joins_once_with_its_latest_truth_and_its_latest_answer() -> None:
    logged = answers(["a", "b", "b", "c"], [1.0, 2.0, 20.0, 3.0], [1.0, 1.0, 2.0, 1.0], [0.1, 0.2, 0.3, 0.4])
    told = truths(["a", "a", "b", "ghost", "a"], [5.0, 7.0, 8.0, 0.0, 6.0], [10.0, 30.0, 10.0, 10.0, 20.0])
    joined = served.join(logged, told)
    assert joined.table.column("id").to_pylist() == ["a", "b"]  # once each, c has no truth
    assert joined_values(joined) == {"a": (1.0, 7.0), "b": (20.0, 8.0)}  # latest truth, latest answer
    assert joined.table.column("x").to_pylist() == [0.1, 0.3]  # the latest answer's inputs
    assert (joined.feedback_rows, joined.unmatched) == (3, 1)


def test_equal_times_are_settled_by_the_later_part_whatever_the_order_read() -> None:
    first = (served.Part("s3://b/f/1.parquet", "x", 1, served.FEEDBACK), truths(["a"], [1.0], [5.0]))
    second = (served.Part("s3://b/f/2.parquet", "y", 1, served.FEEDBACK), truths(["a"], [2.0], [5.0]))
    logged = answers(["a"], [0.0], [1.0])
    for order in ([first, second], [second, first]):
        feedback = served._ranked(order, served.FEEDBACK_COLUMNS)
        assert joined_values(served.join(logged, feedback)) == {"a": (0.0, 2.0)}


def test_the_joined_rows_come_out_in_one_order_whatever_the_order_of_the_input() -> None:
    rng = np.random.default_rng(4)
    n = 500
    ids = [f"r{i}" for i in range(n)]
    logged = answers(ids, rng.normal(size=n).tolist(), rng.integers(0, 50, n).astype(float).tolist())
    told = truths(ids, rng.normal(size=n).tolist(), [60.0] * n)
    shuffled = rng.permutation(n)
    one = served.join(logged, told).table
    other = served.join(logged.take(pa.array(shuffled)), told.take(pa.array(shuffled[::-1]))).table
    assert one.equals(other)
    times = one.column("time").cast("int64").to_numpy()
    assert (np.diff(times) >= 0).all()


# -- reading the window from storage ------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def model() -> ServedModel:
    artifact = ModelArtifact(coefficients=[2.0, -1.0], intercept=0.5, feature_names=["a", "b"])
    return ServedModel.from_artifact(artifact, "md", "memory")


def serve(prefix: str, clock: Clock, ids: list[str], rows: np.ndarray, at: float) -> PayloadLog:
    """Each id one request of one row, answered at `at` and written as one part."""
    log = PayloadLog(
        LogSettings(prefix, flush_rows=1_000_000, flush_seconds=HOUR, pod="p1"), model(), clock=clock
    )
    clock.now = at
    for request_id, row in zip(ids, rows, strict=True):
        log.add(request_id, row[None, :], log.model.predict(row[None, :]))
    log.flush()
    return log


def send(log: PayloadLog, ids: list[str], targets: np.ndarray, at: float) -> None:
    log.add_feedback(Feedback(ids, np.zeros(len(ids), np.int32), targets, at))
    log.flush()


def test_rows_outside_the_window_are_left_out(s3_env: MinioServer) -> None:
    prefix = "s3://marina-served/logs/team/window/"
    now = time.time()
    clock = Clock(now)
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(30, 2))
    ids = [f"q{i}" for i in range(30)]
    log = serve(prefix, clock, ids[:10], rows[:10], now - 30 * HOUR)  # before predictions_from
    serve(prefix, clock, ids[10:], rows[10:], now - 3 * HOUR)
    send(log, ids[20:25], np.ones(5), now - 8 * HOUR)  # received before the window's start
    send(log, [*ids[:10], *ids[10:20], *ids[25:]], np.arange(25.0), now - HOUR)
    window = served.Window.of(now, window_hours=6, label_delay_hours=12)
    read = served.read(prefix, window, max_rows=1_000_000, inputs=True)
    joined = served.join(read.predictions, read.feedback)
    assert sorted(joined.table.column("id").to_pylist()) == sorted([*ids[10:20], *ids[25:]])
    assert (joined.feedback_rows, joined.unmatched) == (25, 10)  # the old answers' truth matches nothing
    assert joined.table.column_names == [*served.PREDICTION_COLUMNS, "a", "b", served.TRUTH]
    assert {part.stream for part in read.parts} == {served.PREDICTIONS, served.FEEDBACK}
    assert all(len(part.sha256) == 64 for part in read.parts)


def upload_csv(ids: list[str], targets: np.ndarray, rows: list[int] | None = None) -> bytes:
    header = "id,target" + (",row" if rows is not None else "") + ",note\n"
    lines = [
        f"{request_id},{float(target)!r}" + (f",{rows[i]}" if rows is not None else "") + ",any text"
        for i, (request_id, target) in enumerate(zip(ids, targets, strict=True))
    ]
    return (header + "\n".join(lines) + "\n").encode()


def upload_parquet(ids: list[str], targets: np.ndarray) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": ids, "target": targets}), sink)
    return sink.getvalue()


def test_uploaded_truth_files_join_exactly_as_the_endpoints_feedback(s3_env: MinioServer) -> None:
    now = time.time()
    rng = np.random.default_rng(2)
    rows, targets = rng.normal(size=(40, 2)), rng.normal(size=40) * 10
    ids = [f"u{i}" for i in range(40)]
    window = served.Window.of(now + 60, window_hours=2, label_delay_hours=2)

    def joined(name: str, uploads: dict[str, bytes]) -> served.Joined:
        prefix, uploaded = (
            f"s3://marina-served/logs/team/{name}/",
            f"s3://marina-served/raw/team/feedback/{name}/",
        )
        log = serve(prefix, Clock(now), ids, rows, now - 10)
        if not uploads:
            send(log, ids, targets, now)
        for path, data in uploads.items():
            storage.write_bytes(f"{uploaded}{path}", data)
        read = served.read(prefix, window, 1_000_000, uploaded, inputs=True)
        assert not read.unreadable
        return served.join(read.predictions, read.feedback)

    endpoint = joined("endpoint", {})
    as_csv = joined(
        "csv",
        {
            "day1/a.csv": upload_csv(ids[:25], targets[:25]),
            "b.csv": upload_csv(ids[25:], targets[25:], [0] * 15),
        },
    )
    as_parquet = joined("parquet", {"all.parquet": upload_parquet(ids, targets), "README.txt": b"ignored"})
    assert endpoint.rows == 40
    for other in (as_csv, as_parquet):
        assert other.table.drop_columns(["time"]).equals(endpoint.table.drop_columns(["time"]))


def test_a_malformed_upload_is_named_with_its_column_and_row_and_the_rest_still_counts(
    s3_env: MinioServer,
) -> None:
    now = time.time()
    prefix, uploaded = "s3://marina-served/logs/team/bad/", "s3://marina-served/raw/team/feedback/bad/"
    serve(prefix, Clock(now), ["a", "b"], np.ones((2, 2)), now - 10)
    storage.write_bytes(f"{uploaded}good.csv", b"id,target\na,1.5\n")
    storage.write_bytes(f"{uploaded}bad.csv", b"id,target\nb,2\nc,lots\n")
    read = served.read(prefix, served.Window.of(now + 60, 1, 1), 1_000_000, uploaded)
    assert read.unreadable == (f"{uploaded}bad.csv: column 'target' row 2: 'lots' is not a finite number",)
    assert joined_values(served.join(read.predictions, read.feedback)) == {"a": (1.5, 1.5)}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"id,value\na,1\n", "no column 'target'; an uploaded truth file needs columns id and target"),
        (b"id,target\n,1\n", "column 'id' row 1: empty is not a request id"),
        (b"id,target\na,\n", "column 'target' row 1: empty is not a finite number"),
        (b"id,target,row\na,1,-1\n", "column 'row' row 1: '-1' is not a row within the request"),
        (b"id,target\na,inf\n", "column 'target' row 1: 'inf' is not a finite number"),
        (b"PAR1 cut short", "not a readable CSV or Parquet file"),
    ],
)
def test_each_malformed_upload_names_the_file_and_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(DataError) as raised:
        served.upload_table("s3://b/raw/ns/feedback/m/x.csv", data, 0.0)
    assert str(raised.value).startswith("s3://b/raw/ns/feedback/m/x.csv: ") and message in str(raised.value)


def test_the_digest_names_the_parts_whatever_their_order() -> None:
    parts = [served.Part(f"s3://b/p/{i}", f"{i:064x}", i, served.FEEDBACK) for i in range(3)]
    assert served.digest(parts) == served.digest(parts[::-1]) != served.digest(parts[:2])
