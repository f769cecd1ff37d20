"""Prepared splits as Parquet parts: content-addressed, written once, read back whole.

Format 3 (datasets `marina.dev/dataset/v3`). The source rows are numbered from 0 and cut into leaves of
`leaf_rows(width)` consecutive rows (`LEAF_CELLS` cells, fixed by the format) and parts of
`group_rows(width)` rows (whole leaves, about `PART_CELLS` cells: a tunable). A split's rows of one part
group are one part. A leaf's hash is the sha256 of its split's rows column by column: numbers as
little-endian float64 with one NaN bit pattern, category (text) cells as the first 8 bytes (little-endian)
of the sha256 of their UTF-8 text, 0 when missing. A part is named by the sha256 of its schema and its
leaves' nodes (`leaf_node`), so it is named before the dataset's version is known and never rewritten;
a split's hash is the root of the binary tree over its leaves' nodes (`marina.data.folds`), the same
whatever the chunks, parts or shards that produced it. Parts store numbers as float64 columns and
category cells as text (dictionary-encoded), so no pod needs another's codes. Parquet's own bytes depend
on the writing library's version; the hashes do not.

Format 2 (`marina.dev/dataset/v2`, still read): parts named by the sha256 of their rows as float64, row by
row (`canonical`, `read_part`), category cells as codes into the manifest's dictionaries.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from marina import storage
from marina.data.folds import DyadicFold
from marina.data.moments import ColumnMoments, merged, of_columns

PARTS_FOLDER = "parts"
FORMAT = "marina.dev/part/v3"
#: Cells of source rows per leaf: the unit a version hashes and statistics merge (fixed by the format).
LEAF_CELLS = 1 << 17
#: Cells of source rows per part (whole leaves; about 8 MiB of float64): tunable, the version ignores it.
PART_CELLS = 1 << 20
ROW_GROUP_CELLS = 1 << 18
SUFFIX = ".parquet"
TRANSPOSE_BAND = 256  # rows per band of a transposing copy (256 x 100 float64: 200 KiB, in L2)
WRITES_IN_FLIGHT = 2  # parts encoded or uploading at once, beside the one being filled
PARQUET_TYPE = "application/vnd.apache.parquet"
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_rows(width: int) -> int:
    return max(1, LEAF_CELLS // max(width, 1))


def group_rows(width: int) -> int:
    """Source rows per part group: whole leaves."""
    return leaf_rows(width) * max(1, PART_CELLS // LEAF_CELLS)


def rows_per_part(width: int) -> int:
    """Rows per part of format 2."""
    return max(1, PART_CELLS // max(width, 1))


def canonical(values: np.ndarray) -> np.ndarray:
    """Little-endian float64, C order, every NaN the same quiet NaN: the bytes format 2 hashes."""
    array = np.ascontiguousarray(values, dtype="<f8")
    if array.size and np.isnan(array.min()):  # min propagates NaN: one pass, no mask in the common case
        array = np.where(np.isnan(array), np.nan, array)
    return array


@dataclass(frozen=True)
class PartRecord:
    """A part as the manifest lists it; format 3 adds its leaves: the first one's number and each one's
    rows (a leaf without rows in this split counts 0)."""

    name: str
    rows: int
    first_leaf: int | None = None
    leaf_rows: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, object]:
        document: dict[str, object] = {"name": self.name, "rows": self.rows}
        if self.first_leaf is not None:
            document.update(firstLeaf=self.first_leaf, leafRows=list(self.leaf_rows))
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> PartRecord:
        first = document.get("firstLeaf")
        leaves = tuple(int(n) for n in document.get("leafRows", ()))
        record = cls(
            str(document["name"]), int(document["rows"]), None if first is None else int(first), leaves
        )
        if record.first_leaf is not None and sum(leaves) != record.rows:
            raise ValueError(f"part {record.name}: its leaves hold {sum(leaves)} rows, not {record.rows}")
        return record


@dataclass(frozen=True)
class Schema:
    """A part's columns and which of them hold text (categories)."""

    columns: tuple[str, ...]
    categorical: frozenset[int] = frozenset()

    @property
    def width(self) -> int:
        return len(self.columns)

    @cached_property
    def tag(self) -> bytes:
        document = {"format": FORMAT, "columns": list(self.columns), "categories": sorted(self.categorical)}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).digest()


@lru_cache(maxsize=1 << 16)
def value_hash(text: str) -> int:
    """A category cell's 64 bits in a leaf's hash (never 0, which marks a missing cell)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") or 1


def value_hashes(values: Sequence[str]) -> np.ndarray:
    return np.array([value_hash(v) for v in values], dtype="<u8")


def hashed_codes(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Category codes (float, NaN missing) as the value hashes of their texts (0 when missing)."""
    out = np.zeros(codes.shape[0], dtype="<u8")
    present = ~np.isnan(codes)
    out[present] = table[codes[present].astype(np.intp)]
    return out


def leaf_digest(
    block: np.ndarray,
    schema: Schema,
    hashed: Mapping[int, np.ndarray],
    missing: Sequence[bool] | None = None,
) -> bytes:
    """sha256 of a leaf's rows (columns x rows), column by column; `hashed` holds the category columns'
    value hashes, `missing` which columns hold a NaN when the caller knows (every NaN is hashed as the one
    canonical NaN). Found otherwise by one reduction over the leaf: one numpy call per column cost more
    than its hashing."""
    digest = hashlib.sha256()
    if missing is None:
        missing = np.isnan(block.min(axis=1)).tolist()
    for j in range(block.shape[0]):
        if j in hashed:
            digest.update(hashed[j].data)
            continue
        column = np.ascontiguousarray(block[j], dtype="<f8")
        if missing[j]:
            column = np.where(np.isnan(column), np.nan, column)
        digest.update(column.data)
    return digest.digest()


def leaf_node(index: int, rows: int, digest: bytes) -> bytes:
    return hashlib.sha256(_LEAF + struct.pack("<QQ", index, rows) + digest).digest()


def hash_nodes(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def part_name(schema: Schema, nodes: Sequence[bytes]) -> str:
    return hashlib.sha256(schema.tag + b"".join(nodes)).hexdigest() + SUFFIX


def hash_fold() -> DyadicFold[bytes]:
    return DyadicFold(hash_nodes)


def moments_fold() -> DyadicFold[ColumnMoments]:
    return DyadicFold(merged)


@dataclass
class _Group:
    """The split's rows of one part group being filled, and its leaves so far."""

    index: int
    buffer: np.ndarray  # columns x group rows
    filled: int = 0
    leaf_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    done: int = 0  # rows of the leaves already folded
    nodes: list[bytes] = field(default_factory=list)


class SplitWriter:
    """One split's rows as they arrive, in order of their source row numbers: cut into leaves and parts by
    source row, each leaf's moments and hash folded along the leaf tree, each part named by its leaves and
    encoded and uploaded by a writer thread while the next rows arrive (hashing, encoding and uploading
    release the GIL). Part buffers are reused: at most `WRITES_IN_FLIGHT` are being written beside the one
    being filled. Category columns hold codes into `dictionaries` (append-only lists of texts)."""

    def __init__(self, folder: str | None, schema: Schema, first_row: int = 0) -> None:
        self.folder, self.schema = folder, schema
        self.leaf = leaf_rows(schema.width)
        self.per_group = group_rows(schema.width) // self.leaf
        self.group_size = self.leaf * self.per_group
        self.next_leaf = first_row // self.leaf  # the first leaf not yet folded
        self.moments = moments_fold()
        self.hashes = hash_fold()
        self.seen: dict[int, set[int]] = {j: set() for j in schema.categorical}
        self.rows = 0
        self.parts: list[PartRecord] = []
        self.kept: list[tuple[np.ndarray, dict[int, tuple[str, ...]]]] = []  # without a folder: in memory
        self._group: _Group | None = None
        self._tables: dict[int, np.ndarray] = {}
        self._free: list[np.ndarray] = []
        self._writes: deque[tuple[Future[None], np.ndarray]] = deque()
        self._writer: ThreadPoolExecutor | None = None
        self._dictionaries: Mapping[int, Sequence[str]] = {}

    def add(self, rows: np.ndarray, columns: np.ndarray, dictionaries: Mapping[int, Sequence[str]]) -> None:
        """Rows numbered `rows` (increasing, from where the last ones ended), given column by column."""
        self.add_masked(rows, columns, None, dictionaries)

    def add_masked(
        self,
        rows: np.ndarray,
        columns: np.ndarray,
        mask: np.ndarray | None,
        dictionaries: Mapping[int, Sequence[str]],
    ) -> None:
        """The rows of `columns` where `mask` is true (all without a mask), copied once, into the part."""
        self._dictionaries = dictionaries
        if mask is not None:
            rows = rows[mask]
        if not rows.size:
            return
        bounds = np.flatnonzero(np.diff(rows // self.group_size)) + 1
        positions = np.flatnonzero(mask) if mask is not None else None
        for start, stop in zip([0, *bounds.tolist()], [*bounds.tolist(), rows.size], strict=True):
            group = int(rows[start]) // self.group_size
            self._advance_to(group * self.group_size)
            current = self._open(group)
            count = stop - start
            target = current.buffer[:, current.filled : current.filled + count]
            if positions is None:
                target[...] = columns[:, start:stop]
            else:
                np.take(columns, positions[start:stop], axis=1, out=target)
            offsets = (rows[start:stop] - group * self.group_size) // self.leaf
            current.leaf_counts += np.bincount(offsets, minlength=self.per_group)
            current.filled += count
            self.rows += count

    def advance(self, end_row: int) -> None:
        """Every source row before `end_row` has been offered: fold the leaves that are complete."""
        self._advance_to(end_row)

    def close(self, end_row: int) -> None:
        """The last source row is `end_row - 1`: fold every leaf up to it, write the last part and wait for
        every write (a failed write raises here)."""
        try:
            self._fold_through(-(-end_row // self.leaf))
            self._flush()
            while self._writes:
                self._reclaim()
        finally:
            if self._writer is not None:
                self._writer.shutdown(cancel_futures=True)

    # -- leaves and parts ----------------------------------------------------------------------------

    def _advance_to(self, row: int) -> None:
        self._fold_through(row // self.leaf)

    def _fold_through(self, leaf_end: int) -> None:
        """Fold every leaf before `leaf_end` (pushing None for those without rows here)."""
        while self.next_leaf < leaf_end:
            group = self._group
            if group is not None and self.next_leaf >= (group.index + 1) * self.per_group:
                self._flush()  # folds the group's last leaves
                continue
            offset = self.next_leaf - group.index * self.per_group if group is not None else -1
            if group is None or offset < 0:  # a leaf of a group without rows of this split
                self._push(self.next_leaf, 0, None, None)
            else:
                count = int(group.leaf_counts[offset])
                self._push(self.next_leaf, count, group.buffer[:, group.done : group.done + count], group)
                group.done += count
            self.next_leaf += 1

    def _push(self, index: int, count: int, block: np.ndarray | None, group: _Group | None) -> None:
        if block is None or count == 0:
            self.moments.push(0, index, None)
            self.hashes.push(0, index, None)
            return
        moments = of_columns(block)
        hashed = {j: hashed_codes(block[j], self._table(j)) for j in self.schema.categorical}
        for j in self.schema.categorical:
            codes = block[j][~np.isnan(block[j])]
            if codes.size:
                self.seen[j].update(np.unique(codes).astype(int).tolist())
        missing = (moments.count < count).tolist()  # the moments counted each column's present cells
        node = leaf_node(index, count, leaf_digest(block, self.schema, hashed, missing))
        self.moments.push(0, index, moments)
        self.hashes.push(0, index, node)
        if group is not None:
            group.nodes.append(node)

    def _table(self, j: int) -> np.ndarray:
        """Value hashes of column j's dictionary, extended as the dictionary grows."""
        values = self._dictionaries.get(j, ())
        table = self._tables.get(j, np.zeros(0, dtype="<u8"))
        if len(table) < len(values):
            table = np.concatenate([table, value_hashes(values[len(table) :])])
            self._tables[j] = table
        return table

    def _open(self, index: int) -> _Group:
        if self._group is not None and self._group.index == index:
            return self._group
        if self._group is not None:
            self._flush()
        buffer = self._free.pop() if self._free else None
        if buffer is None and len(self._writes) >= WRITES_IN_FLIGHT:
            self._reclaim()
            buffer = self._free.pop()
        if buffer is None:
            buffer = np.empty((self.schema.width, self.group_size))
        self._group = _Group(index, buffer, leaf_counts=np.zeros(self.per_group, dtype=np.int64))
        return self._group

    def _flush(self) -> None:
        """Fold the open group's remaining leaves and write it as a part."""
        group = self._group
        if group is None:
            return
        end = (group.index + 1) * self.per_group
        while self.next_leaf < end:
            offset = self.next_leaf - group.index * self.per_group
            count = int(group.leaf_counts[offset]) if offset >= 0 else 0
            self._push(self.next_leaf, count, group.buffer[:, group.done : group.done + count], group)
            group.done += count
            self.next_leaf += 1
        self._group = None
        if not group.filled:
            self._free.append(group.buffer)
            return
        counts = group.leaf_counts.tolist()
        while counts and counts[-1] == 0:
            counts.pop()
        record = PartRecord(
            part_name(self.schema, group.nodes), group.filled, group.index * self.per_group, tuple(counts)
        )
        self.parts.append(record)
        block = group.buffer[:, : group.filled]
        texts = {j: tuple(self._dictionaries.get(j, ())) for j in self.schema.categorical}
        if self.folder is None:
            self.kept.append((block.copy(), texts))
            self._free.append(group.buffer)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marina-parts")
        write = self._writer.submit(write_part, self.folder, record.name, block, self.schema, texts)
        self._writes.append((write, group.buffer))

    def _reclaim(self) -> None:
        write, buffer = self._writes.popleft()
        write.result()
        self._free.append(buffer)

    def values(self) -> np.ndarray:
        """The split's rows (rows x columns, category columns as codes), when kept in memory."""
        if not self.kept:
            return np.empty((0, self.schema.width))
        return np.hstack([block for block, _ in self.kept]).T.copy()


def write_part(
    folder: str, name: str, block: np.ndarray, schema: Schema, texts: Mapping[int, Sequence[str]]
) -> None:
    """Store a part under its name (unless that name exists: the same rows)."""
    uri = storage.join(folder, name)
    if not storage.exists(uri):
        storage.write_bytes(uri, to_parquet_columns(block, schema, texts), PARQUET_TYPE)


def to_parquet_columns(block: np.ndarray, schema: Schema, texts: Mapping[int, Sequence[str]]) -> bytes:
    """A part's columns (columns x rows) as Parquet: numbers plain-encoded float64, category cells as
    dictionary-encoded text; each contiguous column goes to Arrow without a copy."""
    arrays: list[pa.Array] = []
    for j in range(schema.width):
        if j in schema.categorical:
            codes = block[j]
            missing = np.isnan(codes)
            indices = pa.array(np.where(missing, 0, codes).astype(np.int32), mask=missing)
            arrays.append(pa.DictionaryArray.from_arrays(indices, pa.array(list(texts[j]), pa.string())))
        else:
            arrays.append(pa.array(block[j]))
    table = pa.Table.from_arrays(arrays, names=list(schema.columns))
    return _parquet_bytes(table, [schema.columns[j] for j in sorted(schema.categorical)])


def _parquet_bytes(table: pa.Table, dictionary_columns: Sequence[str] = ()) -> bytes:
    """Plain-encoded, LZ4: dictionary encoding (Parquet's default) gives up on float columns only
    after trying, and cost six times the write here. LZ4 rather than zstd: on float64 columns zstd saved
    5% of the bytes for 2.4x the write and 4x the read time (measured per 8 MiB part: 44 ms and 62 ms
    against 18 ms and 15 ms)."""
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        row_group_size=max(1, ROW_GROUP_CELLS // max(table.num_columns, 1)),
        compression="lz4",
        use_dictionary=list(dictionary_columns) or False,
        write_statistics=False,
    )
    return buffer.getvalue()


def to_parquet(values: np.ndarray, columns: Sequence[str]) -> bytes:
    """Rows (rows x columns) of numbers as Parquet (format 2 parts, training's partial samples)."""
    by_column = transposed(values)
    return _parquet_bytes(pa.table({name: by_column[j] for j, name in enumerate(columns)}))


class PartError(ValueError):
    """A stored part is missing a column or holds values its name does not hash to."""


@dataclass(frozen=True)
class PartRead:
    """A format-3 part's columns (columns x rows; a category column as positions in the categories asked
    for, NaN when missing or not among them) and its leaves' nodes."""

    columns: np.ndarray
    nodes: list[tuple[int, bytes | None]]


def read_leaves(
    uri: str,
    schema: Schema,
    record: PartRecord,
    categories: Mapping[int, Sequence[str]] | None = None,
    verify: bool = True,
) -> PartRead:
    """A format-3 part: its columns and, with `verify`, its leaves' nodes, checked against its name."""
    table = _read_table(uri, schema.columns)
    if table.num_rows != record.rows:
        raise PartError(f"{uri}: {table.num_rows} rows, not the {record.rows} its record lists")
    out = np.empty((schema.width, table.num_rows))
    hashed: dict[int, np.ndarray] = {}
    for j, name in enumerate(schema.columns):
        column = table.column(name)
        if j in schema.categorical:
            out[j], hashed[j] = _category_column(uri, name, column, (categories or {}).get(j, ()), verify)
        else:
            _numbers_into(uri, name, column, out[j])
    nodes: list[tuple[int, bytes | None]] = []
    if verify:
        nodes = _verified_nodes(uri, out, schema, record, hashed)
    return PartRead(out, nodes)


def read_numbers(uri: str, names: Sequence[str]) -> np.ndarray:
    """Some numeric columns of a format-3 part (columns x rows), unchecked (a pass that only counts)."""
    table = _read_table(uri, names)
    out = np.empty((len(names), table.num_rows))
    for j, name in enumerate(names):
        _numbers_into(uri, name, table.column(name), out[j])
    return out


def _read_table(uri: str, names: Sequence[str]) -> pa.Table:
    """A part is a few MiB, fetched in one GET: ranged reads of its footer and then its columns cost four
    requests each."""
    content = storage.read_bytes(uri)
    try:
        file = pq.ParquetFile(pa.BufferReader(content))
        present = file.schema_arrow.names
        missing = [c for c in names if c not in present]
        if missing:
            raise PartError(f"{uri}: column {missing[0]!r} is missing")
        return file.read(columns=None if present == list(names) else list(names))
    except (pa.ArrowInvalid, OSError) as exc:
        raise PartError(f"{uri}: not a readable Parquet part ({exc})") from exc


def _numbers_into(uri: str, name: str, column: pa.ChunkedArray, out: np.ndarray) -> None:
    if not pa.types.is_floating(column.type):
        raise PartError(f"{uri}: column {name!r} is {column.type}, not float64")
    row = 0
    for chunk in column.chunks:
        out[row : row + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
        row += len(chunk)


def _category_column(
    uri: str, name: str, column: pa.ChunkedArray, categories: Sequence[str], verify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(positions among `categories` as float, NaN when missing or unknown; value hashes when verifying)."""
    array = column.combine_chunks()
    if not pa.types.is_dictionary(array.type):
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            raise PartError(f"{uri}: column {name!r} is {array.type}, not text")
        array = array.dictionary_encode()
    texts = array.dictionary.to_pylist()
    indices = array.indices.to_numpy(zero_copy_only=False)
    missing = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    safe = np.where(missing, 0, indices).astype(np.intp) if texts else np.zeros(len(indices), dtype=np.intp)
    position = {text: k for k, text in enumerate(categories)}
    lookup = np.array([position.get(text, np.nan) for text in texts] or [np.nan], dtype=np.float64)
    positions = np.where(missing, np.nan, lookup[safe])
    hashes = np.zeros(len(indices), dtype="<u8")
    if verify and texts:
        table = value_hashes(texts)
        hashes = np.where(missing, np.uint64(0), table[safe]).astype("<u8")
    return positions, hashes


def _verified_nodes(
    uri: str, columns: np.ndarray, schema: Schema, record: PartRecord, hashed: Mapping[int, np.ndarray]
) -> list[tuple[int, bytes | None]]:
    if record.first_leaf is None:
        raise PartError(f"{uri}: its record lists no leaves")
    nodes: list[tuple[int, bytes | None]] = []
    start = 0
    for offset, count in enumerate(record.leaf_rows):
        index = record.first_leaf + offset
        if not count:
            nodes.append((index, None))
            continue
        block = columns[:, start : start + count]
        leaf_hashed = {j: h[start : start + count] for j, h in hashed.items()}
        nodes.append((index, leaf_node(index, count, leaf_digest(block, schema, leaf_hashed))))
        start += count
    name = part_name(schema, [node for _, node in nodes if node is not None])
    if name != record.name:
        raise PartError(f"{uri}: its content hashes to {name}, not to what its name says")
    return nodes


def write_table(folder: str, table: pa.Table) -> str:
    """A partial result's table (a sample, held rows) as Parquet named by the sha256 of its bytes."""
    body = _parquet_bytes(table)
    name = hashlib.sha256(body).hexdigest() + SUFFIX
    storage.write_bytes(storage.join(folder, name), body, PARQUET_TYPE)
    return name


def read_table(folder: str, name: str) -> pa.Table:
    """The inverse of `write_table`, checked against the sha256 in its name."""
    body = storage.read_bytes(storage.join(folder, name))
    if hashlib.sha256(body).hexdigest() + SUFFIX != name:
        raise PartError(f"{folder}/{name}: its bytes do not hash to its name")
    try:
        return pq.read_table(pa.BufferReader(body))
    except (pa.ArrowInvalid, OSError) as exc:
        raise PartError(f"{folder}/{name}: not readable Parquet ({exc})") from exc


# --- format 2 -------------------------------------------------------------------------------------------


def read_part(uri: str, columns: Sequence[str], verify: str | None = None) -> Iterator[np.ndarray]:
    """A format-2 part's rows as one array; with `verify`, the part's content must hash to it."""
    table = _read_table(uri, columns)
    values = canonical(_rows_of(table, columns))
    if verify is not None:
        digest = hashlib.sha256(values.data).hexdigest()
        if digest + SUFFIX != verify:
            raise PartError(f"{uri}: its content sha256 is {digest}, not what its name says")
    yield values


def _rows_of(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """The table's columns side by side in row order: each column copied whole, then transposed."""
    by_column = np.empty((len(columns), table.num_rows))
    for j, name in enumerate(columns):
        row = 0
        for chunk in table.column(name).chunks:
            by_column[j, row : row + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
            row += len(chunk)
    return transposed(by_column)


def transposed(values: np.ndarray) -> np.ndarray:
    """A contiguous transpose, copied a band of `TRANSPOSE_BAND` rows of the result at a time: each band's
    source and destination stay in the core's own cache, where writing a whole column at a stride of a
    row evicts every line it touches before the next column reuses it (measured on a busy machine: 28%
    of a training pass's samples were that strided copy)."""
    rows, width = values.shape[1], values.shape[0]
    out = np.empty((rows, width))
    for first in range(0, rows, TRANSPOSE_BAND):
        out[first : first + TRANSPOSE_BAND] = values[:, first : first + TRANSPOSE_BAND].T
    return out
