"""Prepare in shards: parallelism 1, 2 and 3, with any chunk, block and part sizes, give one dataset."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marina.data import dataset, parts, shares, sources
from marina.data.dataset import PrepareOptions
from marina.data.table import DataError

ROWS = 2_000
#: What must not depend on how the source was read: everything but the creation time and the shard count.
VARYING = ("created", "shards")


def values_with_gaps(rows: int = ROWS, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 4)).round(6)
    values[rng.random(values.shape) < 0.02] = np.nan
    return values


def write_csv(path: Path, values: np.ndarray, cities: list[str | None] | None = None) -> str:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["a", "b", "c", *(["city"] if cities else []), "y"])
        for k, row in enumerate(values.tolist()):
            cells = ["" if np.isnan(v) else repr(v) for v in row]
            writer.writerow([*cells[:3], *([cities[k] or ""] if cities else []), cells[3]])
    return str(path)


def write_parquet_prefix(folder: Path, values: np.ndarray, files: int = 4) -> str:
    folder.mkdir()
    for k, block in enumerate(np.array_split(values, files)):
        table = pa.table({name: block[:, j] for j, name in enumerate(("a", "b", "c", "y"))})
        pq.write_table(table, folder / f"part-{k}.parquet", row_group_size=97)
    return f"{folder}/"


@pytest.fixture
def small_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaves of 16 rows, parts of 64, a small-table limit of 400 cells: 2,000 rows make many of each."""
    monkeypatch.setattr(parts, "LEAF_CELLS", 64)
    monkeypatch.setattr(parts, "PART_CELLS", 256)
    monkeypatch.setattr(shares, "SMALL_TABLE_CELLS", 400)


def in_shards(uri: str, options: PrepareOptions, output: Path, shards: int) -> dict[str, Any]:
    """Every shard in turn, then the reduce, as the Job's pods would run them."""
    partials = str(output / "partials")
    for index in range(shards):
        dataset.prepare_shard(sources.open_source(uri), options, str(output), partials, shards, index)
    return dataset.reduce_shards(
        sources.open_source(uri), options, str(output), "t", partials, shards
    ).description


def one_pod(uri: str, options: PrepareOptions, output: Path) -> dict[str, Any]:
    return dataset.prepare_source(sources.open_source(uri), options, str(output), "t").description


def same(description: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in description.items() if key not in VARYING}


@pytest.mark.usefixtures("small_units")
@pytest.mark.parametrize("missing", ["drop", "mean", "median"])
@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_every_parallelism_and_chunk_size_gives_the_one_pod_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, missing: str
) -> None:
    values = values_with_gaps()
    if kind == "csv":
        uri = write_csv(tmp_path / "big.csv", values)
    else:
        uri = write_parquet_prefix(tmp_path / "prefix", values)
    options = PrepareOptions(target="y", missing=missing, seed=11)
    reference = one_pod(uri, options, tmp_path / "one")
    assert reference["split"]["method"] == "hash" and len(reference["parts"]["train"]["parts"]) > 10
    for shards, block_bytes, chunk_cells in ((1, 1 << 20, 1 << 19), (2, 997, 37), (3, 4096, 1000)):
        monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(sources, "CHUNK_CELLS", chunk_cells)
        sharded = in_shards(uri, options, tmp_path / f"{shards}", shards)
        assert same(sharded) == same(reference), f"{shards} shards"
        stored = dataset.load(str(tmp_path / f"{shards}" / sharded["version"]))
        assert (
            stored.data.train.tobytes()
            == dataset.load(str(tmp_path / "one" / reference["version"])).data.train.tobytes()
        )


@pytest.mark.usefixtures("small_units")
def test_exact_medians_of_a_sharded_table(tmp_path: Path) -> None:
    values = values_with_gaps()
    uri = write_csv(tmp_path / "big.csv", values)
    description = in_shards(uri, PrepareOptions(target="y", missing="median"), tmp_path / "out", 3)
    stored = dataset.open_stored(str(tmp_path / "out" / description["version"]))
    folder = tmp_path / "out" / parts.PARTS_FOLDER
    train = np.hstack(
        [
            parts.read_numbers(str(folder / p["name"]), stored.features)
            for p in description["parts"]["train"]["parts"]
        ]
    )
    assert list(description["cleaning"]["fillValues"].values()) == np.nanmedian(train, axis=1).tolist()


@pytest.mark.usefixtures("small_units")
def test_categories_and_a_small_table_split_alike_in_shards(tmp_path: Path) -> None:
    """Text cells, which each shard numbers its own way, and a value only the first shard sees."""
    values = values_with_gaps(rows=600)
    rng = np.random.default_rng(1)
    cities = [
        None if rng.random() < 0.05 else str(rng.choice(["oslo", "rome", "lima", "kyiv"])) for _ in range(600)
    ]
    cities[0] = "zurich"  # the first shard alone sees it
    uri = write_csv(tmp_path / "cities.csv", values, cities)
    options = PrepareOptions(target="y", missing="mean", seed=2)
    reference = one_pod(uri, options, tmp_path / "one")
    assert reference["split"]["method"] == "hash"
    assert reference["inputs"][3]["categories"] == ["kyiv", "lima", "oslo", "rome", "zurich"] or (
        "zurich" not in reference["inputs"][3]["categories"]  # row 0 went to test
    )
    for shards in (2, 3):
        assert same(in_shards(uri, options, tmp_path / f"{shards}", shards)) == same(reference)


def test_a_small_table_is_permuted_alike_in_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "LEAF_CELLS", 64)
    monkeypatch.setattr(parts, "PART_CELLS", 128)
    uri = write_csv(tmp_path / "small.csv", values_with_gaps(rows=300))
    options = PrepareOptions(target="y", missing="median", seed=4)
    reference = one_pod(uri, options, tmp_path / "one")
    assert reference["split"]["method"] == "permutation"
    for shards in (2, 3):
        assert same(in_shards(uri, options, tmp_path / f"{shards}", shards)) == same(reference)


def csv_text(rows: int, quoted: bool = False, newline: str = "\n") -> str:
    """x,label,y records; with `quoted`, labels hold commas inside quotes; blank lines here and there."""
    rng = np.random.default_rng(rows)
    lines = ["x,label,y"]
    for k in range(rows):
        label = f'"{k % 7}, or so"' if quoted else f"{k % 7}"
        lines.append(f"{rng.normal():.5f},{label},{rng.normal():.5f}")
        if k % 97 == 5:
            lines.append("")
    return newline.join(lines) + newline


@pytest.mark.usefixtures("small_units")
@pytest.mark.parametrize(
    ("quoted", "newline"), [(False, "\n"), (True, "\n"), (False, "\r\n"), (True, "\r\n")]
)
def test_a_csv_cut_anywhere_gives_the_one_pod_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quoted: bool, newline: str
) -> None:
    """Cuts fall inside quoted cells, on carriage returns and next to blank lines; the records still meet."""
    path = tmp_path / "cut.csv"
    path.write_bytes(csv_text(1_500, quoted, newline).encode())
    options = PrepareOptions(target="y", seed=3)
    reference = one_pod(str(path), options, tmp_path / "one")
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 1_000)
    for shards in (2, 3, 5):
        assert same(in_shards(str(path), options, tmp_path / f"{shards}", shards)) == same(reference)


@pytest.mark.usefixtures("small_units")
def test_a_gzip_csv_is_read_whole_by_one_shard(tmp_path: Path) -> None:
    path = tmp_path / "whole.csv.gz"
    path.write_bytes(gzip.compress(csv_text(1_000).encode()))
    options = PrepareOptions(target="y")
    reference = one_pod(str(path), options, tmp_path / "one")
    assert same(in_shards(str(path), options, tmp_path / "two", 2)) == same(reference)


@pytest.mark.usefixtures("small_units")
@pytest.mark.parametrize("rows", [1_000, 1_333, 2_001])
def test_cuts_inside_quoted_line_breaks_move_past_them(tmp_path: Path, rows: int) -> None:
    """A cut that falls inside a quoted cell holding line breaks moves to the record's end: quotes are
    counted from a record start on both sides of it."""
    lines = ["x,note,y", *(f'{k},"line one {k}\nline ""two""",{k % 5}' for k in range(rows))]
    path = tmp_path / "notes.csv"
    path.write_text("\n".join(lines) + "\n")
    options = PrepareOptions(target="y", features=("x",))
    reference = one_pod(str(path), options, tmp_path / "one")
    for shards in (2, 3, 5):
        assert same(in_shards(str(path), options, tmp_path / f"{shards}", shards)) == same(reference)


@pytest.mark.usefixtures("small_units")
def test_a_source_that_changes_between_the_shards_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "moving.csv"
    path.write_text(csv_text(1_000))
    options, partials = PrepareOptions(target="y"), str(tmp_path / "partials")
    dataset.prepare_shard(sources.open_source(str(path)), options, str(tmp_path), partials, 2, 0)
    path.write_text(csv_text(1_300))  # rewritten before the second shard reads it
    dataset.prepare_shard(sources.open_source(str(path)), options, str(tmp_path), partials, 2, 1)
    with pytest.raises(DataError, match="the source changed while it was read"):
        dataset.reduce_shards(sources.open_source(str(path)), options, str(tmp_path), "t", partials, 2)


@pytest.mark.usefixtures("small_units")
def test_the_reduce_reads_each_shards_rows_and_sample_only_when_it_merges_them(tmp_path: Path) -> None:
    """Up to 64 shards each leave up to 8 MiB of held rows or sample: read together they would not fit."""
    uri = write_csv(tmp_path / "big.csv", values_with_gaps())
    options, partials = PrepareOptions(target="y"), str(tmp_path / "partials")
    for index in range(3):
        dataset.prepare_shard(sources.open_source(uri), options, str(tmp_path), partials, 3, index)
    columns = ("a", "b", "c", "y")
    digest = shares.request_digest(dataset._spec_of(sources.open_source(uri)), columns, options, 3)
    results = shares.read_all(partials, 3, digest, columns, options)
    assert all(r.held is None and r.sample is None and (r.held_at or r.sample_at) for r in results)
    assert all(
        shares.held_of(r) is not None or shares.sample_of(r, options.seed) is not None for r in results
    )
