"""A Dataset's servedLogs source (`marina.data.served_source`) through the real `marina prepare` and `marina
train`: the labelled rows become the dataset, in one order, so the same logs and feedback give the same
version and more feedback a new one; a model trained on them names the logs; beside another source they
follow its rows, text columns recoded into its categories; no rows, a missing column or an unreadable file
fail the preparation naming spec.source.servedLogs. Logs are written by the serving pods' writer into a real
MinIO."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.data.test_served import Clock, send, serve

from marina import storage
from marina.cli import main
from marina.data import dataset, served, served_source
from marina.data.sources import Source, open_files
from marina.data.table import DataError, Table
from minio_server import MinioServer
from trained import run, train

TRUE_COEFFICIENTS, TRUE_INTERCEPT = np.array([3.0, -2.0]), 1.0


def served_rows(prefix: str, count: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, list[str], object]:
    """`count` one-row requests answered ten minutes ago; their inputs, true targets, ids and the log."""
    now = time.time()
    rows = np.random.default_rng(seed).normal(size=(count, 2))
    ids = [f"p{i}" for i in range(count)]
    log = serve(prefix, Clock(now), ids, rows, now - 600)
    return rows, rows @ TRUE_COEFFICIENTS + TRUE_INTERCEPT, ids, log


def failure(*args: str) -> str:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(list(args)) != 0
    return err.getvalue()


def all_rows(uri: str) -> np.ndarray:
    data = dataset.open_stored(uri).data
    return np.vstack([data.train, data.test])


def sorted_rows(values: np.ndarray) -> np.ndarray:
    return values[np.lexsort(values.T[::-1])]


def test_the_served_rows_are_one_version_more_feedback_another_and_the_model_names_its_logs(
    s3_env: MinioServer, tmp_path: Path
) -> None:
    prefix = "s3://marina-served/logs/team/prepared/"
    rows, truth, ids, log = served_rows(prefix, 60)
    send(log, ids[:40], truth[:40], time.time() - 300)  # type: ignore[arg-type]
    command = ("prepare", "--source", "served", "--served-logs", prefix, "--target", "price")
    first = run(*command, "--output", str(tmp_path / "data"))
    again = run(*command, "--output", str(tmp_path / "data"))
    elsewhere = run(*command, "--output", str(tmp_path / "other"))
    assert first["rows"] == 40 and first["columns"] == ["a", "b", "price"]
    assert again["version"] == elsewhere["version"] == first["version"] and again["reused"]
    expected = np.column_stack([rows[:40], truth[:40]])
    np.testing.assert_array_equal(sorted_rows(all_rows(first["uri"])), sorted_rows(expected))

    send(log, ids[40:], truth[40:], time.time() - 200)  # type: ignore[arg-type]
    more = run(*command, "--output", str(tmp_path / "data"))
    assert more["rows"] == 60 and more["version"] != first["version"]
    source = dataset.open_stored(more["uri"]).description["source"]
    parts = [served.Part(**part) for part in source["read"]]
    assert source["type"] == "servedLogs" and source["modelDeployment"] == "prepared"
    assert source["rows"] == 60 and source["parts"] == len(parts) == 3  # one of predictions, two of feedback
    assert source["sha256"] == served.digest(parts) and source["logs"] == prefix
    assert all(
        part.sha256 == served.hashlib.sha256(storage.read_bytes(part.uri)).hexdigest() for part in parts
    )

    model = train(more["uri"], tmp_path / "models", "--penalty", "none")
    assert model.dataset["logs"] == {key: value for key, value in source.items() if key != "read"}
    np.testing.assert_allclose(model.coefficients, TRUE_COEFFICIENTS, atol=1e-9)
    assert model.intercept == pytest.approx(TRUE_INTERCEPT, abs=1e-9)


def test_beside_another_source_the_served_rows_follow_its_rows(s3_env: MinioServer, tmp_path: Path) -> None:
    prefix = "s3://marina-served/logs/team/beside/"
    rows, truth, ids, log = served_rows(prefix, 30, seed=5)
    original = tmp_path / "original.csv"
    original.write_text("a,b,price\n" + "".join(f"{i},{-i},{i * 5.0}\n" for i in range(20)))
    command = ("prepare", "--source", str(original), "--served-logs", prefix, "--target", "price")
    before = run(*command, "--output", str(tmp_path / "data"))
    assert before["rows"] == 20  # no labelled rows yet: the original source's alone
    send(log, ids, truth, time.time() - 60)  # type: ignore[arg-type]
    after = run(*command, "--output", str(tmp_path / "data"))
    assert after["rows"] == 50
    expected = np.vstack([[[i, -i, i * 5.0] for i in range(20)], np.column_stack([rows, truth])])
    np.testing.assert_array_equal(sorted_rows(all_rows(after["uri"])), sorted_rows(expected))

    wider = tmp_path / "wider.csv"
    wider.write_text("a,b,c,price\n1,2,3,4\n5,6,7,8\n")
    message = failure(
        "prepare",
        "--source",
        str(wider),
        "--served-logs",
        prefix,
        "--target",
        "price",
        "--output",
        str(tmp_path / "x"),
    )
    assert "spec.source.servedLogs: the served rows have no column 'c'" in message


def test_no_labelled_rows_or_an_unreadable_file_fail_naming_the_field(
    s3_env: MinioServer, tmp_path: Path
) -> None:
    prefix = "s3://marina-served/logs/team/unlabelled/"
    uploads = "s3://marina-served/raw/team/feedback/unlabelled/"
    served_rows(prefix, 10)
    command = ("prepare", "--source", "served", "--served-logs", prefix, "--served-uploads", uploads)
    message = failure(*command, "--output", str(tmp_path / "data"))
    assert "spec.source.servedLogs: no labelled rows yet: 0 feedback rows in the last 24 hours" in message
    storage.write_bytes(f"{uploads}2026/truth.csv", b"id,target\np0,1.5\np1,oops\n")
    message = failure(*command, "--output", str(tmp_path / "data"))
    assert f"{uploads}2026/truth.csv: column 'target' row 2: 'oops' is not a finite number" in message
    storage.write_bytes(f"{uploads}2026/truth.csv", b"id,target\np0,1.5\np1,2.5\n")
    assert run(*command, "--output", str(tmp_path / "data"))["rows"] == 2


def text_source(
    columns: tuple[str, ...], values: list[list[float]], dictionaries: dict[str, list[str]]
) -> Source:
    table = Table(columns, np.array(values, dtype=np.float64), dictionaries)

    def reader(selected: tuple[str, ...]) -> Iterator[Table]:
        index = [columns.index(name) for name in selected]
        yield Table(selected, table.values[:, index], dictionaries)

    return Source(columns, {"type": "served"}, "m", reader, len(values))


def test_the_union_recodes_the_served_text_into_the_other_sources_categories(tmp_path: Path) -> None:
    original = tmp_path / "cities.csv"
    original.write_text("city,x,target\nParis,1,2\nLyon,2,3\nParis,3,4\n")
    served_part = text_source(
        ("x", "city", "target"), [[5, 0, 6], [6, 1, 7], [7, np.nan, 8]], {"city": ["Nice", "Lyon"]}
    )
    union = served_source.union(open_files(str(original)), served_part)
    chunks = list(union.chunks(union.columns))
    values, cities = np.vstack([chunk.values for chunk in chunks]), chunks[-1].dictionaries["city"]
    assert cities == ["Paris", "Lyon", "Nice"]  # the other source's codes stay; the served ones follow
    decoded = [cities[int(c)] if c == c else None for c in values[:, 0]]
    assert decoded == ["Paris", "Lyon", "Paris", "Nice", "Lyon", None]
    np.testing.assert_array_equal(values[:, 1], [1, 2, 3, 5, 6, 7])
    numeric = text_source(("x", "city", "target"), [[5, 0.5, 6]], {})
    with pytest.raises(DataError, match="column 'city' holds numbers in the served rows but text"):
        served_source.union(open_files(str(original)), numeric).table()
