"""Parquet parts: canonical bytes, content names, bounded part sizes, verified reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marina.data import parts


def test_parts_are_content_addressed_and_cut_at_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts, "PART_CELLS", 30)  # 10 rows of 3 columns per part
    values = np.arange(75.0).reshape(25, 3)
    writer = parts.SplitWriter(str(tmp_path), ("a", "b", "y"))
    for start in range(0, 25, 4):
        writer.add(values[start : start + 4])
    writer.close()
    assert [p.rows for p in writer.parts] == [10, 10, 5]
    read = np.vstack(
        [block for p in writer.parts for block in parts.read_part(str(tmp_path / p.name), ("a", "b", "y"))]
    )
    assert read.tobytes() == values.tobytes()
    one_go = parts.SplitWriter(None, ("a", "b", "y"))
    one_go.add(values)
    assert one_go.sha256 == writer.sha256  # the split's hash ignores how rows arrived


def test_every_nan_hashes_alike() -> None:
    quiet = np.array([[np.nan, 1.0]])
    other = quiet.copy()
    other.view(np.uint64)[0, 0] = 0x7FF8_0000_0000_0001  # a NaN with a payload
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
