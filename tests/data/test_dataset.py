"""The prepared-dataset format: schema checks, cleaning, split, statistics, version, storage."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from bounds import sum_tolerance
from marina.contract import SpecError
from marina.data import dataset, parts, shares, sources, table
from marina.data.dataset import PrepareOptions
from marina.data.sources import memory_source
from marina.data.table import DataError, Table
from tabular import write_second_format


def make_table(rows: int = 40, features: int = 3, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, features + 1))
    return Table((*(f"f{j}" for j in range(features)), "y"), values)


def prepare(table: Table, **options: object) -> tuple[dataset.PreparedDataset, dataset.CleaningReport]:
    return dataset.prepare(table, PrepareOptions(target="y", **options))  # type: ignore[arg-type]


# --- schema checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "records", "message"),
    [
        (["age", "sex", "y"], [[1, 2, 3], [4, "male", 6]], "column 'sex' row 2: 'male' is not a number"),
        (["a", "y"], [["1", "2"], ["3", "inf"]], "column 'y' row 2: inf is not a finite number"),
        (["a", "y"], [["1", "2"], ["3"]], "row 2: expected 2 values, got 1"),
        (["a", "a"], [["1", "2"]], "duplicate column 'a' (columns 1 and 2)"),
        (["a", " "], [["1", "2"]], "column 2 has an empty name"),
        (["a", "y"], [], "the data has no rows"),
        ([], [], "the data has no columns"),
        (["a", "y"], [[1, [2]]], "column 'y' row 1: [2] is not a number"),
        (["a\nb", "y"], [[1, 2]], "column 1 name 'a\\nb' contains a line break or control character"),
    ],
)
def test_table_from_records_names_the_bad_cell(
    columns: list[str], records: list[list[object]], message: str
) -> None:
    with pytest.raises(DataError) as caught:
        table.table_from_records(columns, records)
    assert str(caught.value) == message


def test_table_from_records_reads_numbers_and_missing_tokens() -> None:
    loaded = table.table_from_records(
        [" a ", "b", "y"],
        [["1.5", "", "NA"], [" 2 ", "null", "n/a"], [3, None, True], ["-1e3", "NaN", "none"]],
    )
    assert loaded.columns == ("a", "b", "y")
    np.testing.assert_array_equal(loaded.values[:, 0], [1.5, 2.0, 3.0, -1000.0])
    assert np.isnan(loaded.values[:, 1]).all()
    assert loaded.values[2, 2] == 1.0
    assert np.isnan(loaded.values[[0, 1, 3], 2]).all()


# --- options and column selection ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"test_fraction": 0.0}, "test fraction: must be in (0, 1), got 0.0"),
        ({"test_fraction": 1.0}, "test fraction: must be in (0, 1), got 1.0"),
        ({"test_fraction": 1.5}, "test fraction: must be in (0, 1), got 1.5"),
        ({"test_fraction": -0.1}, "test fraction: must be in (0, 1), got -0.1"),
        ({"test_fraction": "half"}, "test fraction: must be a number, got 'half'"),
        ({"seed": -1}, "seed: must be in [0, inf), got -1"),
        ({"seed": 1.5}, "seed: must be an integer, got 1.5"),
        ({"missing": "zero"}, "missing: must be one of drop, mean, median, fail"),
        ({"features": ()}, "features: the list of feature columns is empty"),
        ({"features": ("a", "y")}, "features: the target column 'y' cannot also be a feature"),
        ({"features": ("a", "b", "a")}, "features: 'a' listed more than once"),
        ({"target": " "}, "target: must be a non-empty string, got ' '"),
    ],
)
def test_options_are_validated(options: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        PrepareOptions(**{"target": "y", **options})  # type: ignore[arg-type]


def test_missing_target_lists_the_columns() -> None:
    with pytest.raises(DataError) as caught:
        dataset.prepare(make_table(), PrepareOptions(target="price"))
    assert str(caught.value) == "target column 'price' not found; columns are: f0, f1, f2, y"


def test_unknown_feature_is_named() -> None:
    with pytest.raises(DataError, match="feature column 'f9' not found"):
        prepare(make_table(), features=("f0", "f9"))


def test_only_a_target_column_is_refused() -> None:
    table = Table(("y",), np.arange(5.0).reshape(5, 1))
    with pytest.raises(DataError, match="no feature columns"):
        prepare(table)


def test_feature_subset_keeps_the_requested_order() -> None:
    table = make_table()
    prepared, _ = prepare(table, features=("f2", "f0"))
    assert prepared.columns == ("f2", "f0", "y")
    everything = np.vstack([prepared.train, prepared.test])
    expected = table.values[:, [2, 0, 3]]
    np.testing.assert_array_equal(np.sort(everything, axis=0), np.sort(expected, axis=0))


# --- cleaning --------------------------------------------------------------------------------------


def table_with_gaps(rows: int = 30) -> Table:
    table = make_table(rows=rows)
    values = table.values.copy()
    if rows > 30:  # a gap in about one row in twenty, past the hand-placed ones
        values[30:][np.random.default_rng(rows).random((rows - 30, values.shape[1])) < 0.0125] = np.nan
    values[4, 1] = np.nan  # row 5, column f1
    values[9, 0] = np.nan
    values[11, 3] = np.nan  # target missing: always dropped
    return Table(table.columns, values)


def test_fail_policy_names_column_and_row() -> None:
    with pytest.raises(DataError) as caught:
        prepare(table_with_gaps(), missing="fail")
    assert str(caught.value) == "column 'f1' row 5: missing value (missing policy 'fail')"


def test_drop_policy_drops_incomplete_rows() -> None:
    prepared, report = prepare(table_with_gaps(), missing="drop")
    assert prepared.train.shape[0] + prepared.test.shape[0] == 27
    assert (report.rows_in, report.rows_dropped) == (30, 3)
    assert report.missing_by_column == {"f0": 1, "f1": 1, "f2": 0, "y": 1}
    assert not np.isnan(prepared.train).any() and not np.isnan(prepared.test).any()


@pytest.mark.parametrize("strategy", ["mean", "median"])
def test_imputation_uses_train_values_only(strategy: str) -> None:
    table = table_with_gaps()
    prepared, report = prepare(table, missing=strategy, seed=3)
    assert report.rows_dropped == 1  # only the row without a target
    kept = np.delete(table.values, 11, axis=0)
    train_index, _ = dataset.split_indices(kept.shape[0], 0.2, 3)
    train = kept[train_index]
    fills = np.array([report.fill_values[f"f{j}"] for j in range(3)])
    if strategy == "median":  # exact: the median is one of the values (or the mean of two)
        assert fills.tolist() == np.nanmedian(train, axis=0)[:3].tolist()
    else:  # a leaf's sum in another order than numpy's: within the rounding of a sum of that many terms
        bound = sum_tolerance(len(train)) * np.nanmean(np.abs(train), axis=0)[:3]
        assert np.all(np.abs(fills - np.nanmean(train, axis=0)[:3]) <= bound)
    everything = np.vstack([prepared.train, prepared.test])
    assert not np.isnan(everything).any()
    assert sum(report.imputed_train.values()) + sum(report.imputed_test.values()) == 2


def test_imputing_a_column_with_no_training_values_fails() -> None:
    table = make_table(rows=10)
    values = table.values.copy()
    values[:, 1] = np.nan
    with pytest.raises(
        DataError, match="column 'f1': every training value is missing, cannot impute the mean"
    ):
        prepare(Table(table.columns, values), missing="mean")


def test_too_few_rows_left() -> None:
    table = make_table(rows=3)
    values = table.values.copy()
    values[:2, 0] = np.nan
    with pytest.raises(DataError, match=r"only 1 usable row\(s\)"):
        prepare(Table(table.columns, values))


# --- split -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "fraction", "test_rows"), [(442, 0.2, 89), (10, 0.25, 3), (2, 0.01, 1), (5, 0.99, 4)]
)
def test_split_sizes_partition_the_rows(rows: int, fraction: float, test_rows: int) -> None:
    train, test = dataset.split_indices(rows, fraction, 42)
    assert len(test) == test_rows
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(rows))


def test_split_is_deterministic_and_seed_sensitive() -> None:
    first = dataset.split_indices(100, 0.3, 7)
    again = dataset.split_indices(100, 0.3, 7)
    other = dataset.split_indices(100, 0.3, 8)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    expected_test = np.sort(np.random.default_rng(7).permutation(100)[:30])
    np.testing.assert_array_equal(first[1], expected_test)


# --- version -------------------------------------------------------------------------------------------


def test_version_is_stable_for_the_same_input_and_options() -> None:
    a, _ = prepare(make_table(), seed=5)
    b, _ = prepare(make_table(), seed=5)
    assert a.version == b.version and a.sha256 == b.sha256
    assert len(a.version) == dataset.VERSION_LENGTH and a.sha256.startswith(a.version)


def changed_value() -> Table:
    table = make_table()
    values = table.values.copy()
    values[0, 0] = np.nextafter(values[0, 0], np.inf)  # one ulp
    return Table(table.columns, values)


@pytest.mark.parametrize(
    ("table", "options"),
    [
        (changed_value(), {"seed": 5}),
        (make_table(), {"seed": 6}),
        (make_table(), {"seed": 5, "test_fraction": 0.3}),
        (make_table(), {"seed": 5, "features": ("f0", "f1")}),
        (Table(("f0", "f1", "z", "y"), make_table().values), {"seed": 5}),
    ],
    ids=["one-ulp", "seed", "fraction", "features", "column-name"],
)
def test_version_changes_with_content(table: Table, options: dict[str, object]) -> None:
    base, _ = prepare(make_table(), seed=5)
    other, _ = prepare(table, **options)
    assert other.version != base.version


def test_moving_a_row_between_splits_changes_the_sha() -> None:
    columns, row = ("a", "y"), np.array([[1.0, 2.0]])
    train_csv, test_csv = dataset.to_csv(columns, np.vstack([row, row])), dataset.to_csv(columns, row)
    moved_train, moved_test = dataset.to_csv(columns, row), dataset.to_csv(columns, np.vstack([row, row]))
    assert dataset.content_sha256(("a",), "y", train_csv, test_csv) != dataset.content_sha256(
        ("a",), "y", moved_train, moved_test
    )


# --- statistics ----------------------------------------------------------------------------------------


def test_statistics_match_numpy(tmp_path: Path) -> None:
    source = memory_source(table_with_gaps(), {"type": "test"}, "gaps")
    written = dataset.prepare_source(
        source, PrepareOptions(target="y", missing="mean"), str(tmp_path), "gaps"
    )
    prepared, report = dataset.load(str(written.uri)).data, written.report
    assert report is not None
    stats = written.description["statistics"]
    for j, column in enumerate(prepared.columns):
        train = prepared.train[:, j]
        # Merged chunk moments after filling: each within the rounding of a sum over the column.
        bound = 2 * sum_tolerance(train.size) * float(np.mean(np.abs(train)) + np.std(train))
        got = stats["train"][column]
        assert (got["count"], got["min"], got["max"]) == (train.size, train.min(), train.max())
        assert abs(got["mean"] - train.mean()) <= bound and abs(got["std"] - train.std()) <= bound
        assert got["missing"] == report.imputed_train[column]
        # The same values summed from a stacked matrix's column: any order, each within sum_tolerance.
        everything = np.concatenate([train, prepared.test[:, j]])
        bound = 2 * sum_tolerance(everything.size) * float(np.mean(np.abs(everything)))
        assert abs(stats["all"][column]["mean"] - everything.mean()) <= bound
        assert stats["all"][column]["count"] == everything.size
    assert stats["all"]["f1"]["missing"] + stats["all"]["f0"]["missing"] == 2


# --- CSV round trip and storage ---------------------------------------------------------------------


def test_csv_round_trips_every_float_exactly() -> None:
    rng = np.random.default_rng(1)
    values = np.column_stack(
        [rng.normal(size=50) * 10.0 ** rng.integers(-300, 300, 50), rng.normal(size=50), np.full(50, -0.0)]
    )
    content = dataset.to_csv(("a", "b", "y"), values)
    back = dataset._read_prepared_csv(content, ("a", "b", "y"), "train.csv")
    assert back.tobytes() == values.tobytes()


def test_csv_is_the_csv_modules_format_with_quoted_names() -> None:
    columns, values = ("size, m2", 'say "hi"', "y"), np.array([[1.0, -0.0, 1e-300], [2.5, 3.0, 1e300]])
    content = dataset.to_csv(columns, values)
    reference = io.StringIO()
    csv.writer(reference, lineterminator="\n").writerows(
        [columns, *([repr(v) for v in row] for row in values.tolist())]
    )
    assert content == reference.getvalue().encode()
    assert dataset._read_prepared_csv(content, columns, "t.csv").tobytes() == values.tobytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,y\n1.0,2.0\n", "header does not match"),
        (b"x,y\n1.0\n", "every row must hold 2 finite numbers"),
        (b"x,y\n1.0,nan\n", "every row must hold 2 finite numbers"),
        (b"x,y\n1.0,two\n", "not a prepared dataset file"),
    ],
)
def test_prepared_csv_must_be_complete(content: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        dataset._read_prepared_csv(content, ("x", "y"), "train.csv")


def write_prepared(tmp_path: Path, seed: int = 1) -> dataset.Prepared:
    source = memory_source(make_table(), {"type": "test"}, "demo")
    return dataset.prepare_source(source, PrepareOptions(target="y", seed=seed), str(tmp_path), "demo")


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    in_memory, _ = prepare(make_table(), seed=1)
    written = write_prepared(tmp_path)
    assert not written.reused and written.uri == str(tmp_path / in_memory.version)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([in_memory.version, parts.PARTS_FOLDER])
    assert [p.name for p in Path(str(written.uri)).iterdir()] == ["dataset.json"]
    stored = dataset.load(str(written.uri))
    assert stored.version == in_memory.version and stored.name == "demo"
    assert stored.data.train.tobytes() == in_memory.train.tobytes()
    assert stored.data.test.tobytes() == in_memory.test.tobytes()
    on_disk = json.loads((Path(str(written.uri)) / "dataset.json").read_text())
    assert on_disk == written.description
    assert on_disk["trainRows"] + on_disk["testRows"] == on_disk["rows"] == 40
    assert dataset.load(str(written.uri) + "/dataset.json").version == in_memory.version


def test_existing_version_is_never_rewritten(tmp_path: Path) -> None:
    uri = str(write_prepared(tmp_path).uri)
    manifest = Path(uri) / "dataset.json"
    before = manifest.read_bytes()
    again = write_prepared(tmp_path)
    assert (again.uri, again.reused) == (uri, True)
    assert manifest.read_bytes() == before


def test_parts_are_shared_not_rewritten(tmp_path: Path) -> None:
    write_prepared(tmp_path, seed=1)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / parts.PARTS_FOLDER).iterdir()}
    write_prepared(tmp_path, seed=1)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / parts.PARTS_FOLDER).iterdir()} == stamps


def test_a_manifest_for_other_content_is_refused_not_overwritten(tmp_path: Path) -> None:
    manifest = Path(str(write_prepared(tmp_path).uri)) / "dataset.json"
    description = json.loads(manifest.read_text())
    other = ("1" if description["sha256"][0] == "0" else "0") + description["sha256"][1:]
    manifest.write_text(json.dumps({**description, "sha256": other}))
    altered = manifest.read_bytes()
    with pytest.raises(DataError, match="describes different content; refusing to overwrite it"):
        write_prepared(tmp_path)
    assert manifest.read_bytes() == altered


def test_load_detects_a_changed_part(tmp_path: Path) -> None:
    written = write_prepared(tmp_path)
    record = written.description["parts"]["train"]["parts"][0]
    part = tmp_path / parts.PARTS_FOLDER / record["name"]
    stored = dataset.load(str(written.uri))
    changed = stored.data.train.copy()
    changed[0, 0] += 1.0
    part.write_bytes(parts.to_parquet(changed, stored.columns))
    with pytest.raises(DataError, match=r"is corrupted: .*: its content hashes to .*, not to what its name"):
        dataset.load(str(written.uri))


def test_load_detects_a_changed_description(tmp_path: Path) -> None:
    manifest = Path(str(write_prepared(tmp_path).uri)) / "dataset.json"
    manifest.write_text(manifest.read_text().replace('"target": "y"', '"target": "f0"', 1))
    with pytest.raises(DataError, match="is corrupted: its description hashes to"):
        dataset.load(str(manifest.parent))


def test_the_first_format_still_loads(tmp_path: Path) -> None:
    """train.csv and test.csv in the version folder, versioned by their bytes, as before parts."""
    prepared, _ = prepare(make_table(), seed=1)
    train_csv, test_csv = (dataset.to_csv(prepared.columns, m) for m in (prepared.train, prepared.test))
    sha = dataset.content_sha256(prepared.features, "y", train_csv, test_csv)
    (tmp_path / "train.csv").write_bytes(train_csv)
    (tmp_path / "test.csv").write_bytes(test_csv)
    description = {"format": dataset.LEGACY_FORMAT, "features": list(prepared.features), "target": "y"}
    (tmp_path / "dataset.json").write_text(json.dumps({**description, "sha256": sha}))
    stored = dataset.load(str(tmp_path))
    assert stored.data.train.tobytes() == prepared.train.tobytes() and stored.rows("test") == 8
    (tmp_path / "test.csv").write_bytes(test_csv.replace(b"1", b"2", 1))
    with pytest.raises(DataError, match="is corrupted: its content sha256"):
        dataset.load(str(tmp_path))


def test_the_second_format_still_loads(tmp_path: Path) -> None:
    """Datasets prepared before format 3 load, verify, one-hot encode and fill as they did."""
    train = np.array([[0.0, 1.0, 10.0], [1.0, np.nan, 20.0], [np.nan, 3.0, 30.0]])
    test = np.array([[1.0, 4.0, 40.0]])
    stored = dataset.load(write_second_format(tmp_path, train, test, 2.0))
    assert stored.feature_names == ("city=oslo", "city=rome", "a")
    expected = [[0.0, 1.0, 1.0, 10.0], [1.0, 0.0, 2.0, 20.0], [0.0, 0.0, 3.0, 30.0]]  # code 0 is rome
    assert stored.data.train.tolist() == expected and stored.data.test.tolist() == [[1.0, 0.0, 4.0, 40.0]]
    assert (
        stored.raw_part("test", 0)[0].tolist() == [[1.0, 4.0, 40.0]]
        and stored.dictionaries["city"][1] == "oslo"
    )
    part = tmp_path / parts.PARTS_FOLDER / stored.description["parts"]["train"]["parts"][0]["name"]
    part.write_bytes(parts.to_parquet(np.zeros((3, 3)), stored.columns))
    with pytest.raises(DataError, match="is corrupted"):
        dataset.load(str(tmp_path / stored.version))


def test_load_rejects_a_bad_description(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text("{}")
    with pytest.raises(DataError, match="is not a valid dataset description"):
        dataset.load(str(tmp_path))


def test_manifest_is_strict_json(tmp_path: Path) -> None:
    description = write_prepared(tmp_path).description
    text = json.dumps(description, allow_nan=False)
    assert json.loads(text)["created"].endswith("Z")
    assert math.isfinite(description["statistics"]["train"]["y"]["std"])


# --- streaming: the version and split do not depend on chunks or parts ----------------------------------


def prepare_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_cells: int, part_cells: int, **options: object
) -> dataset.Prepared:
    """A table past the small-table limit (lowered for the test), read in chunks of `chunk_cells`, in leaves
    of 16 rows."""
    monkeypatch.setattr(shares, "SMALL_TABLE_CELLS", 400)
    monkeypatch.setattr(parts, "LEAF_CELLS", 64)
    monkeypatch.setattr(sources, "CHUNK_CELLS", chunk_cells)
    monkeypatch.setattr(parts, "PART_CELLS", part_cells)
    table = table_with_gaps(rows=3_000)
    source = memory_source(table, {"type": "test"}, "large")
    return dataset.prepare_source(
        source, PrepareOptions(target="y", **options), str(tmp_path / f"{chunk_cells}-{part_cells}"), "large"
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["drop", "mean", "median"])
def test_version_ignores_chunk_and_part_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    versions = {
        prepare_large(tmp_path, monkeypatch, chunk, part, missing=missing).description["version"]
        for chunk, part in ((37, 64), (4_000, 1_000), (1 << 20, 1 << 22))
    }
    assert len(versions) == 1


def test_large_tables_split_by_row_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = prepare_large(tmp_path, monkeypatch, 100, 1_000, missing="drop", test_fraction=0.25)
    description = written.description
    assert description["split"]["method"] == "hash"
    rows = description["rows"]
    assert abs(description["testRows"] - 0.25 * rows) <= 6 * math.sqrt(rows * 0.25 * 0.75)
    assert (
        description["cleaning"]["rowsIn"] == 3_000 and rows == 3_000 - description["cleaning"]["rowsDropped"]
    )


def test_median_fill_of_a_large_table_is_the_exact_train_median(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = prepare_large(tmp_path, monkeypatch, 100, 1_000, missing="median")
    stored = dataset.open_stored(str(written.uri))
    raw = np.hstack([parts.read_numbers(uri, stored.features) for uri in part_uris(stored, "train")])
    expected = np.nanmedian(raw, axis=1)
    fills = written.description["cleaning"]["fillValues"]
    assert [fills[name] for name in stored.features] == expected.tolist()
    assert not np.isnan(stored.data.train).any()


def part_uris(stored: dataset.StoredDataset, split: str) -> list[str]:
    folder = Path(stored.uri).parent / parts.PARTS_FOLDER
    return [str(folder / p["name"]) for p in stored.description["parts"][split]["parts"]]
