"""Data sources: CSV (plain, gzip), inline rows, builtin:diabetes and the synthetic generator."""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from bounds import EPS, SAFETY
from marina.contract import SpecError
from marina.data import sources
from marina.data.table import DataError, table_from_records
from marina.storage import StorageNotFound

CSV = "a,b,target\n1,2.5,3\n\n4,,6\n7,8e-3,9\n"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("data.csv", CSV.encode()),
        ("data.csv.gz", gzip.compress(CSV.encode(), mtime=0)),
        ("data.txt", b"\xef\xbb\xbf" + CSV.replace("\n", "\r\n").encode()),  # BOM and CRLF
    ],
)
def test_csv_files(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    loaded = sources.load(str(path))
    assert loaded.table.columns == ("a", "b", "target")
    expected = np.array([[1, 2.5, 3], [4, np.nan, 6], [7, 8e-3, 9]])
    np.testing.assert_array_equal(loaded.table.values, expected)
    assert loaded.default_name == name.removesuffix(".gz").removesuffix(".csv")
    assert loaded.description["type"] == "csv" and loaded.description["uri"] == str(path)
    assert loaded.description["bytes"] == len(content)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"a,b\n1,2,3\n", "row 1: expected 2 values, got 3"),
        (b"a,b\n1,2\n\n3,4\n5\n", "row 3: expected 2 values, got 1"),
        (b"a,sex\n1,2\n3,male\n", "column 'sex' row 2: 'male' is not a number"),
        (b"a,b\n\xff\xfe,1\n", "not UTF-8 text"),
        (b"\x1f\x8bnot really gzip", "not a valid gzip file"),
        (b"a,a\n1,2\n", "duplicate column 'a'"),
    ],
)
def test_bad_csv_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        sources.load(str(path))


def test_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageNotFound, match=r"cannot read .*nope\.csv: No such file"):
        sources.load(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize("spec", ["http://example.invalid/x.csv", "ftp:x", "gs://bucket/key", "  "])
def test_unknown_source(spec: str) -> None:
    with pytest.raises(SpecError, match="expected builtin:NAME, synthetic:KEY=VALUE"):
        sources.load(spec)


def test_builtin_diabetes_is_scikit_learns() -> None:
    loaded = sources.load("builtin:diabetes")
    bunch = load_diabetes(as_frame=False)
    assert loaded.table.columns == (*bunch.feature_names, "target")
    np.testing.assert_array_equal(loaded.table.values[:, :-1], bunch.data)
    np.testing.assert_array_equal(loaded.table.values[:, -1], bunch.target)
    assert loaded.description["name"] == "diabetes" and loaded.default_name == "diabetes"


def test_unknown_builtin() -> None:
    with pytest.raises(SpecError, match="unknown builtin dataset 'boston'; available: diabetes"):
        sources.load("builtin:boston")


def test_synthetic_is_seeded_and_linear() -> None:
    spec = "synthetic:rows=200,features=4,noise=0,seed=7"
    first, again = sources.load(spec), sources.load(spec)
    assert first.table.values.tobytes() == again.table.values.tobytes()
    assert first.table.columns == ("x1", "x2", "x3", "x4", "target")
    description = first.description
    assert description["rows"] == 200 and description["seed"] == 7
    x, y = first.table.values[:, :-1], first.table.values[:, -1]
    # The generator computes x @ coefficients + intercept (+ 0·noise) with these very coefficients (the
    # description's are the rounded ones it used); a BLAS may order the sum differently: (d+1)·eps terms.
    coef, intercept = np.asarray(description["coefficients"]), description["intercept"]
    bound = SAFETY * (x.shape[1] + 2) * EPS * (np.abs(x) @ np.abs(coef) + abs(intercept))
    assert np.all(np.abs(x @ coef + intercept - y) <= bound)
    other = sources.load("synthetic:rows=200,features=4,noise=0,seed=8")
    assert other.table.values.tobytes() != first.table.values.tobytes()


def test_synthetic_defaults_and_missing_fraction() -> None:
    default = sources.load("synthetic:")
    assert default.table.values.shape == (1000, 6)
    holes = sources.load("synthetic:rows=2000,features=2,missing=0.25,seed=1").table.values
    fraction = np.isnan(holes[:, :-1]).mean()
    assert 0.2 < fraction < 0.3 and not np.isnan(holes[:, -1]).any()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:rows=1", r"rows: must be in \[2, 10000000\], got 1"),
        ("synthetic:rows=20000000", r"rows: must be in \[2, 10000000\], got 20000000"),
        ("synthetic:features=0", r"features: must be in \[1, 1000\], got 0"),
        ("synthetic:noise=-1", r"noise: must be in \[0, inf\), got -1.0"),
        ("synthetic:seed=-3", r"seed: must be in \[0, inf\), got -3"),
        ("synthetic:missing=1", r"missing: must be in \[0, 1\), got 1.0"),
        ("synthetic:colour=red", "unknown parameter 'colour'; expected rows, features, noise, seed, missing"),
        ("synthetic:rows=many", "rows='many' is not a valid integer"),
        ("synthetic:noise", "'noise' needs a value"),
    ],
)
def test_synthetic_grammar_errors(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        sources.load(spec)


@pytest.mark.parametrize(
    "text",
    [
        '[{"x": 1, "y": 2}, {"x": "3", "y": null}, {"y": 4, "z": true}]',
        "- {x: 1, y: 2}\n- {x: '3', y: null}\n- {y: 4, z: true}\n",
    ],
    ids=["json", "yaml"],
)
def test_inline_rows(text: str) -> None:
    loaded = sources.load("inline", text)
    assert loaded.table.columns == ("x", "y", "z")
    expected = np.array([[1, 2, np.nan], [3, np.nan, np.nan], [np.nan, 4, 1]])
    np.testing.assert_array_equal(loaded.table.values, expected)
    assert loaded.description == {"type": "inline", "rows": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"x": 1}', "inline rows must be a list of objects"),
        ("[1, 2]", "inline rows must be a list of objects"),
        ("[]", "the data has no rows"),
        ('[{"x": 1, "y": {"a": 1}}]', "column 'y' row 1: {'a': 1} is not a number"),
        ('[{"x": 1, "y": 2}, {"x": "big", "y": 3}]', "column 'x' row 2: 'big' is not a number"),
        ("[{x: 1", "neither JSON nor YAML"),
    ],
)
def test_inline_errors(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        sources.load("inline", text)


def test_inline_needs_rows_and_rows_need_inline() -> None:
    with pytest.raises(SpecError, match="source 'inline' needs rows"):
        sources.load("inline")
    with pytest.raises(SpecError, match="inline rows were given but the source is 'builtin:diabetes'"):
        sources.load("builtin:diabetes", "[]")


def test_credentials_never_reach_the_description() -> None:
    assert sources._without_credentials("s3://user:secret@bucket/key.csv") == "s3://bucket/key.csv"
    assert sources._without_credentials("/data/x.csv") == "/data/x.csv"


@pytest.mark.parametrize(
    "text",
    [
        "a,b,y\n1,2,3\n4.5,-6e-7,8\n",
        "a,b,y\r\n1,2,3\r\n\r\n 4.5 , -6e-7 ,8\r\n",
        '"a","b,c",y\n"1",2,3\n',
        "a,b,y\n1,#2,3\n4,5,6\n7,8,9\n",  # mostly numbers: a numeric column with a bad cell
        "a,b,y\n1,2,3\n4,5\n",
        "a,b,y\n1,NA,3\n",
    ],
    ids=["plain", "crlf-blank-spaces", "quoted", "hash", "ragged", "missing"],
)
def test_fast_and_careful_csv_paths_agree(text: str) -> None:
    """The numpy fast path must give exactly what the csv-module path gives, or defer to it."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    try:
        expected = table_from_records(rows[0], rows[1:])
    except DataError as exc:
        with pytest.raises(DataError, match=re.escape(str(exc))):
            sources.parse_csv(text.encode())
        return
    table = sources.parse_csv(text.encode())
    assert table.columns == expected.columns
    assert table.values.tobytes() == expected.values.tobytes()


def test_infinity_found_by_the_fast_path_names_the_row() -> None:
    with pytest.raises(DataError, match="column 'b' row 2: inf is not a finite number"):
        sources.parse_csv(b"a,b\n1,2\n\n3,1e999\n")


# --- streaming: Parquet, folders of parts, chunk boundaries ---------------------------------------------


def write_parquet(path: Path, columns: dict[str, list[object]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)


def test_parquet_files_with_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "houses.parquet"
    write_parquet(path, {"rooms": [1, 2, None], "big": [True, False, True], "price": [1.5, 2.5, 3.5]})
    table = sources.load(str(path)).table
    assert table.columns == ("rooms", "big", "price")
    np.testing.assert_array_equal(table.values, [[1, 1, 1.5], [2, 0, 2.5], [np.nan, 1, 3.5]])


def test_a_folder_of_parts_reads_as_one_table_numbering_rows_across_parts(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    write_parquet(tmp_path / "b.parquet", {"x": [5.0], "y": [6.0]})
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(b"x,y\n7,8\n9,oops\n"))
    (tmp_path / "_SUCCESS").write_text("")
    source = sources.open_source(str(tmp_path))
    assert source.description["parts"] == 3
    with pytest.raises(DataError, match=r"column 'y' row 5: 'oops' is not a number"):
        source.table()
    (tmp_path / "c.csv.gz").unlink()
    np.testing.assert_array_equal(sources.load(str(tmp_path)).table.values, [[1, 2], [3, 4], [5, 6]])


def test_columns_not_selected_are_never_parsed(tmp_path: Path) -> None:
    path = tmp_path / "diamonds.csv"
    path.write_text("carat,cut,price\n0.23,Ideal,326\n0.21,Premium,326\n")
    chunks = list(sources.open_source(str(path)).chunks(("carat", "price")))
    np.testing.assert_array_equal(np.vstack([c.values for c in chunks]), [[0.23, 326], [0.21, 326]])


def test_a_bad_cell_deep_in_a_file_is_named_by_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 1 << 12)  # many blocks
    lines = [f"{i},{2 * i}" for i in range(5_000)]
    lines[3_999] = "3999,eight"
    path = tmp_path / "long.csv"
    path.write_text("x,y\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"column 'y' row 4000: 'eight' is not a number"):
        sources.load(str(path))


def test_a_line_longer_than_a_block_is_an_error_not_an_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 1 << 16)
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(b"x,y\n1,2\n" + b"7" * (1 << 20) + b",1\n"))
    with pytest.raises(DataError, match=r"bomb\.csv\.gz: malformed CSV after row 1"):
        sources.load(str(path))


def test_synthetic_rows_do_not_depend_on_the_block_being_read() -> None:
    block_rows = sources.SyntheticSpec(features=2).block_rows
    source = sources.open_source(f"synthetic:rows={block_rows + 10},features=2,seed=4")
    first, second = (chunk.values for chunk in source.chunks(source.columns))
    again = sources.SyntheticSpec(rows=block_rows + 10, features=2, seed=4).block(1)
    assert second.shape == (10, 3) and second.tobytes() == again.tobytes()
    assert not np.array_equal(first[:10], second)


def test_a_mostly_text_column_is_a_category_coded_in_order_of_appearance(tmp_path: Path) -> None:
    path = tmp_path / "cuts.csv"
    path.write_text("cut,price\nIdeal,1\n Good ,2\nNA,3\nIdeal,4\n")
    (chunk,) = sources.open_source(str(path)).chunks(("cut", "price"))
    assert chunk.dictionaries == {"cut": ["Ideal", "Good"]}
    np.testing.assert_array_equal(chunk.values, [[0, 1], [1, 2], [np.nan, 3], [0, 4]])


def test_parquet_strings_are_categories(tmp_path: Path) -> None:
    path = tmp_path / "cuts.parquet"
    write_parquet(path, {"cut": ["b", None, "a", "b"], "price": [1.0, 2.0, 3.0, 4.0]})
    (chunk,) = sources.open_source(str(path)).chunks(("cut", "price"))
    assert chunk.dictionaries == {"cut": ["b", "a"]}
    np.testing.assert_array_equal(chunk.values[:, 0], [0, np.nan, 1, 0])


def _parsed_by_arrow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every block through Arrow and the decoder: the reference the polars blocks must equal."""
    monkeypatch.setattr(sources, "_parsed", lambda block, *_: block)


def _many_block_csv(rng: np.random.Generator, rows: int) -> str:
    cells = rng.standard_normal((rows, 3)) * 10.0 ** rng.integers(-30, 30, size=(rows, 3))
    digits = rng.integers(1, 18, size=(rows, 3))  # 1 to 17 significant digits, some in exponent form
    text = [
        [f"{v:.{k}g}" for v, k in zip(row, width, strict=True)]
        for row, width in zip(cells, digits, strict=True)
    ]
    for i, j in zip(rng.integers(0, rows, 40), rng.integers(0, 2, 40), strict=True):
        text[i][j] = str(rng.choice(["", "NA", "nan", "NULL", "n/a"]))
    return "a,b,target\n" + "\n".join(",".join(row) for row in text) + "\n"


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_polars_blocks_read_what_arrow_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line_end: str
) -> None:
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 1 << 12)  # ~150 blocks, most of them through polars
    path = tmp_path / "numbers.csv"
    path.write_bytes(_many_block_csv(np.random.default_rng(5), 8_000).replace("\n", line_end).encode())
    fast = sources.load(str(path)).table.values
    with monkeypatch.context() as arrow:
        _parsed_by_arrow_only(arrow)
        reference = sources.load(str(path)).table.values
    assert fast.shape == (8_000, 3)
    np.testing.assert_array_equal(fast, reference)  # both round every decimal correctly: the same bits


def test_polars_blocks_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 1 << 12)
    path = tmp_path / "numbers.csv"
    path.write_text(_many_block_csv(np.random.default_rng(6), 4_000))
    kinds: list[str] = []
    parsed = sources._parsed

    def counting(block: bytes, *rest: object) -> object:
        result = parsed(block, *rest)  # type: ignore[arg-type]
        kinds.append("arrow" if isinstance(result, bytes) else "polars")
        return result

    monkeypatch.setattr(sources, "_parsed", counting)
    sources.load(str(path))
    assert kinds.count("polars") > len(kinds) // 2, kinds


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1.5,2.5", r"row 3001: expected 3 values, got 2"),
        ("1.5,2.5,3,4", r"row 3001: expected 3 values, got 4"),
        ("1.5,oops,3", r"column 'b' row 3001: 'oops' is not a number"),
        (" 1.5 ,2,3", None),  # padded numbers: Arrow's path trims them
    ],
)
def test_an_odd_row_deep_in_a_file_takes_the_careful_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_line: str, message: str | None
) -> None:
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 1 << 12)
    lines = [f"{i},{i / 7!r},{2 * i}" for i in range(4_000)]
    lines[3_000] = bad_line
    path = tmp_path / "odd.csv"
    path.write_text("a,b,target\n" + "\n".join(lines) + "\n")
    if message is None:
        assert sources.load(str(path)).table.values[3_000, 0] == 1.5
        return
    with pytest.raises(DataError, match=message):
        sources.load(str(path))


def test_blank_lines_and_quoted_newlines_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 1 << 10)
    rows = [
        f'{i},"note {i}\nspans ""two"" lines",{i / 3!r}' if i % 7 == 0 else f"{i},plain,{i / 3!r}"
        for i in range(600)
    ]
    rows[100] = ""
    path = tmp_path / "quoted.csv"
    path.write_text("a,note,target\n" + "\n".join(rows) + "\n")
    values = sources.open_source(str(path)).table()
    expected = [[i, i / 3] for i in range(600) if i != 100]
    np.testing.assert_array_equal(values.values[:, [0, 2]], expected)


def test_a_last_record_without_a_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "end.csv"
    path.write_text("x,y\n1,2\n3,4")
    np.testing.assert_array_equal(sources.load(str(path)).table.values, [[1, 2], [3, 4]])


def test_parquet_row_groups_read_column_by_column_equal_the_whole_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(sources, "CHUNK_CELLS", 60)  # chunks cut across and inside the row groups
    rng = np.random.default_rng(8)
    rows = 1_000
    price = rng.standard_normal(rows)
    rooms = pa.array([None if i % 97 == 0 else int(i % 7) for i in range(rows)], pa.int32())
    cut = pa.array([["fair", "good", "ideal"][i % 3] for i in range(rows)])
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.table({"rooms": rooms, "cut": cut, "price": price}), path, row_group_size=137)
    source = sources.open_source(str(path))
    chunks = list(source.chunks(("price", "rooms", "cut")))
    values = np.vstack([c.values for c in chunks])
    assert max(c.rows for c in chunks) == 20 and len(chunks) > rows // 137  # 60 cells of 3 columns
    np.testing.assert_array_equal(values[:, 0], price)
    expected_rooms = np.array([np.nan if i % 97 == 0 else i % 7 for i in range(rows)])
    np.testing.assert_array_equal(values[:, 1], expected_rooms)
    assert chunks[-1].dictionaries["cut"] == ["fair", "good", "ideal"]  # codes in order of appearance
    np.testing.assert_array_equal(values[:, 2], [i % 3 for i in range(rows)])


def test_a_text_cell_in_a_late_parquet_row_group_is_named_by_its_row(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cells = [str(i) for i in range(900)]
    cells[777] = "seven"
    path = tmp_path / "late.parquet"
    pq.write_table(pa.table({"x": cells, "y": np.arange(900.0)}), path, row_group_size=100)
    with pytest.raises(DataError, match=r"late\.parquet: column 'x' row 778: 'seven' is not a number"):
        sources.load(str(path))
