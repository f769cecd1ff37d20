"""Parquet parts: leaves and parts cut by source row, content names, text categories, verified reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marina.data import parts

SCHEMA = parts.Schema(("a", "b", "y"))


def write(
    folder: str | None, columns: np.ndarray, step: int, schema: parts.Schema = SCHEMA, **texts: list[str]
) -> parts.SplitWriter:
    """Rows 0.. of `columns` (columns x rows) written `step` rows at a time."""
    dictionaries = {int(j): values for j, values in texts.items()}
    writer = parts.SplitWriter(folder, schema)
    rows = np.arange(columns.shape[1])
    for start in range(0, columns.shape[1], step):
        writer.add(rows[start : start + step], columns[:, start : start + step], dictionaries)
    writer.close(columns.shape[1])
    return writer


def test_parts_are_named_by_their_leaves_and_cut_by_source_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts, "LEAF_CELLS", 12)  # 4 rows of 3 columns per leaf
    monkeypatch.setattr(parts, "PART_CELLS", 24)  # 2 leaves (8 rows) per part
    columns = np.arange(75.0).reshape(3, 25)
    writer = write(str(tmp_path), columns, 3)
    assert [(p.rows, p.first_leaf, p.leaf_rows) for p in writer.parts] == [
        (8, 0, (4, 4)),
        (8, 2, (4, 4)),
        (8, 4, (4, 4)),
        (1, 6, (1,)),
    ]
    read = [parts.read_leaves(str(tmp_path / p.name), SCHEMA, p) for p in writer.parts]
    assert np.hstack([r.columns for r in read]).tobytes() == columns.tobytes()
    one_go = write(None, columns, 25)
    assert one_go.hashes.root() == writer.hashes.root()  # the split's hash ignores how rows arrived
    assert [p.name for p in one_go.parts] == [p.name for p in writer.parts]


def test_a_changed_part_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "LEAF_CELLS", 12)
    columns = np.arange(30.0).reshape(3, 10)
    record = write(str(tmp_path), columns, 10).parts[0]
    changed = columns.copy()
    changed[0, 0] = -1.0
    (tmp_path / record.name).write_bytes(parts.to_parquet_columns(changed, SCHEMA, {}))
    with pytest.raises(parts.PartError, match="its content hashes to"):
        parts.read_leaves(str(tmp_path / record.name), SCHEMA, record)


def test_category_cells_are_stored_and_hashed_as_text(tmp_path: Path) -> None:
    """Two shards numbering the same texts differently write the same part."""
    schema = parts.Schema(("city", "y"), frozenset({0}))
    first = write(
        str(tmp_path / "one"),
        np.array([[0.0, 1.0, np.nan, 0.0], [1.0, 2.0, 3.0, 4.0]]),
        4,
        schema,
        **{"0": ["oslo", "rome"]},
    )
    second = write(
        str(tmp_path / "two"),
        np.array([[1.0, 0.0, np.nan, 1.0], [1.0, 2.0, 3.0, 4.0]]),
        4,
        schema,
        **{"0": ["rome", "oslo"]},
    )
    assert [p.name for p in first.parts] == [p.name for p in second.parts]
    record = first.parts[0]
    read = parts.read_leaves(str(tmp_path / "two" / record.name), schema, record, {0: ["oslo", "rome"]})
    assert np.array_equal(read.columns[0], [0.0, 1.0, np.nan, 0.0], equal_nan=True)


def test_every_nan_hashes_alike() -> None:
    quiet = np.array([[np.nan, 1.0]])
    other = quiet.copy()
    other.view(np.uint64)[0, 0] = 0x7FF8_0000_0000_0001  # a NaN with a payload
    assert parts.leaf_digest(quiet, parts.Schema(("a",)), {}) == parts.leaf_digest(
        other, parts.Schema(("a",)), {}
    )
    assert parts.canonical(quiet).tobytes() == parts.canonical(other).tobytes()


def test_a_part_without_a_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    path.write_bytes(parts.to_parquet(np.zeros((2, 2)), ("a", "y")))
    with pytest.raises(parts.PartError, match="column 'b' is missing"):
        list(parts.read_part(str(path), ("a", "b", "y")))


@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (255, 4), (256, 4), (257, 101), (3, 1000)])
def test_the_banded_transpose_is_a_transpose(shape: tuple[int, int]) -> None:
    values = np.arange(shape[0] * shape[1], dtype=np.float64).reshape(shape)
    turned = parts.transposed(values)
    assert turned.flags.c_contiguous and np.array_equal(turned, values.T)
