"""Prepared splits as Parquet parts: content-addressed, written once, read back row group by row group.

A split's rows are cut into parts of at most `rows_per_part(width)` rows (about 8 MiB of float64,
whatever the row count), each written as `<parts folder>/<sha256>.parquet` where the sha256 is that of
the part's canonical bytes: its values as little-endian float64, row by row, with one NaN bit pattern.
Naming by content means a part is written before the dataset's version is known, is never rewritten
(an existing name already holds the same values) and identical parts are shared between versions.
Parquet's own bytes depend on the writing library's version; the canonical bytes do not.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from marina import storage

PARTS_FOLDER = "parts"
PART_CELLS = 1 << 20
ROW_GROUP_CELLS = 1 << 18
SUFFIX = ".parquet"


def rows_per_part(width: int) -> int:
    return max(1, PART_CELLS // max(width, 1))


def canonical(values: np.ndarray) -> np.ndarray:
    """Little-endian float64, C order, every NaN the same quiet NaN: the bytes every hash is taken of."""
    array = np.ascontiguousarray(values, dtype="<f8")
    missing = np.isnan(array)
    if missing.any():
        array = np.where(missing, np.nan, array)
    return array


@dataclass(frozen=True)
class PartRecord:
    name: str
    rows: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "rows": self.rows}


class SplitWriter:
    """Collects one split's rows and writes them as parts; also hashes the whole split in row order."""

    def __init__(self, folder: str | None, columns: Sequence[str]) -> None:
        self.folder, self.columns = folder, tuple(columns)
        self.limit = rows_per_part(len(columns))
        self.digest = hashlib.sha256()
        self.rows = 0
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.parts: list[PartRecord] = []
        self.kept: list[np.ndarray] = []  # only without a folder: the in-memory form

    def add(self, values: np.ndarray) -> None:
        values = canonical(values)
        self.digest.update(values.data)
        self.rows += values.shape[0]
        self.pending.append(values)
        self.pending_rows += values.shape[0]
        while self.pending_rows >= self.limit:
            self._flush(self.limit)

    def close(self) -> None:
        if self.pending_rows:
            self._flush(self.pending_rows)

    def _flush(self, count: int) -> None:
        stacked = np.vstack(self.pending) if len(self.pending) > 1 else self.pending[0]
        block, rest = stacked[:count], stacked[count:]
        self.pending, self.pending_rows = ([rest] if rest.shape[0] else []), rest.shape[0]
        if self.folder is None:
            self.kept.append(block)
            return
        name = hashlib.sha256(np.ascontiguousarray(block).data).hexdigest() + SUFFIX
        uri = storage.join(self.folder, name)
        if not storage.exists(uri):
            storage.write_bytes(uri, to_parquet(block, self.columns), "application/vnd.apache.parquet")
        self.parts.append(PartRecord(name, int(block.shape[0])))

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    def values(self) -> np.ndarray:
        return np.vstack(self.kept) if self.kept else np.empty((0, len(self.columns)))


def to_parquet(values: np.ndarray, columns: Sequence[str]) -> bytes:
    """Plain-encoded, zstd level 1: dictionary encoding (Parquet's default) gives up on float columns only
    after trying, and cost six times the write here; contiguous columns go to Arrow without copies."""
    by_column = np.ascontiguousarray(values.T)
    table = pa.table({name: by_column[j] for j, name in enumerate(columns)})
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        row_group_size=max(1, ROW_GROUP_CELLS // max(len(columns), 1)),
        compression="zstd",
        compression_level=1,
        use_dictionary=False,
        write_statistics=False,
    )
    return buffer.getvalue()


class PartError(ValueError):
    """A stored part is missing a column or holds values its name does not hash to."""


def read_part(uri: str, columns: Sequence[str], verify: str | None = None) -> Iterator[np.ndarray]:
    """A part's rows, one row group at a time; with `verify`, the part's content must hash to it."""
    digest = hashlib.sha256()
    with storage.open_seekable(uri) as stream:
        try:
            file = pq.ParquetFile(stream)
            missing = [c for c in columns if c not in file.schema_arrow.names]
            if missing:
                raise PartError(f"{uri}: column {missing[0]!r} is missing")
            for group in range(file.num_row_groups):
                table = file.read_row_group(group, columns=list(columns))
                values = np.column_stack([table.column(c).to_numpy() for c in columns]).astype(
                    "<f8", copy=False
                )
                values = canonical(values)
                digest.update(values.data)
                yield values
        except (pa.ArrowInvalid, OSError) as exc:
            raise PartError(f"{uri}: not a readable Parquet part ({exc})") from exc
    if verify is not None and digest.hexdigest() + SUFFIX != verify:
        raise PartError(f"{uri}: its content sha256 is {digest.hexdigest()}, not what its name says")
