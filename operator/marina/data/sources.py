"""Where raw data comes from: CSV and Parquet files or folders of them (local or s3://), inline rows,
built-in and synthetic sets, read as a stream of chunks so no source has to fit in memory.

A source spec is one string, as the `--source` flag and a Dataset resource give it:

- `path/to/data.csv`, `data.csv.gz`, `data.parquet` or `s3://bucket/key...` — a CSV with a header row
  (gzip is recognised by its magic bytes) or a Parquet file (by its `.parquet`/`.pq` suffix or its
  `PAR1` magic); S3 objects are streamed (CSV over one GET, Parquet by ranged GETs), never buffered;
- a folder: a local directory or `s3://bucket/prefix/` (trailing slash) — every CSV or Parquet part
  under it, in name order, read as one table (names starting with '.' or '_' are skipped);
- `inline` — rows given separately as a JSON or YAML list of objects, e.g. `[{"x": 1, "y": 2}]`;
- `builtin:diabetes` — scikit-learn's diabetes set (442 rows, 10 features, target `target`);
- `synthetic:rows=1000,features=5,noise=0.1,seed=7,missing=0.0` — a seeded linear problem
  `target = x · coefficients + intercept + noise · N(0, 1)` with features `x1..xN` drawn from
  N(0, 1); every key is optional (defaults shown) and `missing` is the fraction of feature cells
  blanked out, to exercise cleaning. Rows are generated in blocks of about `SYNTHETIC_BLOCK_CELLS`
  cells, each from its own seeded stream, so the same parameters give the same rows whatever the chunk
  size.

Only the columns a dataset selects are converted to numbers: a text column nobody asked for is
never parsed. Chunks are `Table`s of float64 with NaN for a missing cell; row numbers in messages
count data rows from 1 across all parts (a header is not a row). A CSV is read in blocks cut at record
boundaries, one block ahead in a thread: polars parses a block of plain numbers (three times Arrow's
CSV reader here); the first block, any block with quotes, text, blank or ragged rows, goes through
Arrow's reader and the decoder, which decide the column kinds and name a bad cell by column and row.
Every source carries a description for lineage that never contains credentials.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from typing import Any
from urllib.parse import urlparse

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml

from marina import contract, storage
from marina.contract import BUILTIN_DATASETS, JobError, SpecError
from marina.data.readahead import ahead
from marina.data.table import (
    MISSING_TOKENS,
    DataError,
    Table,
    check_columns,
    reject_infinite,
    table_from_records,
)
from marina.system.text import one_line

SOURCE_FORMS = (
    "builtin:NAME, synthetic:KEY=VALUE,..., inline, s3://bucket/key, s3://bucket/prefix/, "
    "or a local CSV/Parquet file or folder"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
#: Bytes of CSV text per block (cut at a record boundary), also the longest record a CSV may have. Three
#: blocks are in flight (read, parsed, consumed): 8 MiB blocks took 18% less time than 2 MiB ones for 60 MB
#: more memory (a 400 MB CSV: 5.7 s and 296 MiB against 6.9 s and 238 MiB).
CSV_BLOCK_BYTES = 8 << 20
#: Bytes read at a time while counting a CSV's records before a shard's cut.
COUNT_BYTES = 8 << 20
#: Cells per chunk from Parquet, synthetic and in-memory sources (4 MiB of float64).
CHUNK_CELLS = 1 << 19
#: Cells per independently seeded block of synthetic data (rows: this over the width, fixed by the spec).
SYNTHETIC_BLOCK_CELLS = 1 << 19
#: Longest header line read before giving up on a file that is not a CSV.
HEADER_BYTES = 1 << 20
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Read buffer of each Parquet column chunk: pages stream through it instead of whole chunks.
PARQUET_BUFFER_BYTES = 1 << 20
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
# Every capitalisation of the missing-value tokens, as Arrow compares null values exactly.
_NULL_VALUES = sorted(
    {
        "".join(chars)
        for token in MISSING_TOKENS
        for chars in product(*({c.lower(), c.upper()} for c in token))
    }
)

Reader = Callable[[tuple[str, ...]], Iterator[Table]]


@dataclass
class ShareCounts:
    """Where a shard's rows begin, and the counts the reduce checks the shards against each other with:
    the source rows before this shard's cut as this shard counted them, and before the next shard's cut as
    this shard read them (None where there is no such cut)."""

    first_row: int = 0
    rows: int = 0
    counted: int | None = None
    reached: int | None = None


#: (selected columns, shards, index, align, counts) -> (number of the chunk's first row, chunk)
Sharer = Callable[[tuple[str, ...], int, int, int, ShareCounts], Iterator[tuple[int, Table]]]


@dataclass(frozen=True)
class Source:
    """A table to be read once or more, chunk by chunk, selecting columns by name; or one shard's share
    of it (`share`)."""

    columns: tuple[str, ...]
    description: dict[str, Any]
    default_name: str
    reader: Reader
    expected_rows: int | None = None  # known before reading (synthetic, in memory): for progress
    sharer: Sharer | None = None

    def chunks(self, selected: Sequence[str]) -> Iterator[Table]:
        """The selected columns, in that order, chunk by chunk; each chunk is checked for infinities."""
        for _, chunk in self.share(selected, 1, 0, 1, ShareCounts()):
            yield chunk

    def share(
        self, selected: Sequence[str], shards: int, index: int, align: int, counts: ShareCounts
    ) -> Iterator[tuple[int, Table]]:
        """Shard `index` of `shards`: (number of the first row, chunk) for the source rows from where its
        share begins to where the next one's does. Shares begin at multiples of `align` rows near even cuts
        of the source (its bytes, for files); `counts` is filled in as the rows are read. Row numbers count
        the source's data rows from 0 whatever the shard, so a bad cell is named by its row in the source."""
        names = tuple(selected)
        unknown = [name for name in names if name not in self.columns]
        if unknown:
            raise DataError(f"column {unknown[0]!r} not found; columns are: {', '.join(self.columns)}")
        chunks = self._all(names)
        if shards > 1:
            if self.sharer is None:
                raise SpecError(f"source {self.description.get('type')!r} cannot be read in shards")
            chunks = self.sharer(names, shards, index, align, counts)
        for row, chunk in chunks:
            reject_infinite(chunk.values, chunk.columns, row_offset=row)
            counts.rows = row + chunk.rows - counts.first_row
            yield row, chunk

    def _all(self, names: tuple[str, ...]) -> Iterator[tuple[int, Table]]:
        row = 0
        for chunk in self.reader(names):
            yield row, chunk
            row += chunk.rows

    def table(self) -> Table:
        """Every column in memory (small sources and tests)."""
        parts = list(self.chunks(self.columns))
        values = np.vstack([p.values for p in parts]) if parts else np.empty((0, len(self.columns)))
        return Table(self.columns, values)


@dataclass(frozen=True)
class LoadedSource:
    table: Table
    description: dict[str, Any]
    default_name: str


def load(spec: str, inline_rows: str | None = None) -> LoadedSource:
    """The whole table a source spec names, in memory (see `open_source` for streaming)."""
    source = open_source(spec, inline_rows)
    return LoadedSource(source.table(), source.description, source.default_name)


def open_source(spec: str, inline_rows: str | None = None) -> Source:
    """The source a spec names; `inline_rows` is the JSON/YAML text for `inline`. Nothing is read beyond
    the header (or Parquet footer) until its chunks are."""
    spec = spec.strip()
    if not spec:
        raise SpecError(f"source: empty; expected {SOURCE_FORMS}")
    if spec == "inline":
        if inline_rows is None:
            raise SpecError("source 'inline' needs rows (--inline-rows JSON or --rows-file PATH)")
        return open_inline(inline_rows)
    if inline_rows is not None:
        raise SpecError(f"inline rows were given but the source is {spec!r}; use source 'inline'")
    scheme = _SCHEME.match(spec)
    kind = scheme.group(1).lower() if scheme and len(scheme.group(1)) > 1 else ""
    if kind == "builtin":
        return open_builtin(spec)
    if kind == "synthetic":
        return open_synthetic(spec)
    if kind and kind != "s3" and not storage.exists(spec):
        raise SpecError(f"unknown source {spec!r}: expected {SOURCE_FORMS}")
    return open_files(spec)


# --- files: CSV and Parquet, one or a folder of parts -----------------------------------------------


@dataclass(frozen=True)
class _Part:
    uri: str
    parquet: bool
    size: int


def open_files(uri: str) -> Source:
    parts = _parts(uri)
    columns = _columns_of(parts[0])
    formats = sorted({"parquet" if part.parquet else "csv" for part in parts})
    description: dict[str, Any] = {
        "type": formats[0] if len(formats) == 1 else "files",
        "uri": _without_credentials(uri),
        "bytes": sum(part.size for part in parts),
    }
    if len(parts) > 1 or storage.is_folder(uri):
        description["parts"] = len(parts)

    def reader(selected: tuple[str, ...]) -> Iterator[Table]:
        row, decoder = 0, _Decoder()
        for part in parts:
            for chunk in _part_chunks(part, selected, row, decoder):
                if isinstance(chunk, Table):
                    row += chunk.rows
                    yield chunk

    def sharer(
        selected: tuple[str, ...], shards: int, index: int, align: int, counts: ShareCounts
    ) -> Iterator[tuple[int, Table]]:
        return _file_share(parts, selected, shards, index, align, counts)

    return Source(columns, description, _name_of(uri), reader, sharer=sharer)


def file_parts(uri: str) -> list[str]:
    """The files a file source reads, in order: the file itself, or every data file of a folder."""
    return [part.uri for part in _parts(uri)]


def _name_of(uri: str) -> str:
    last = uri.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"(\.csv|\.parquet|\.pq)?(\.gz)?$", "", last) or "dataset"


def _parts(uri: str) -> list[_Part]:
    if not storage.is_folder(uri):
        return [_Part(uri, _is_parquet(uri), storage.size(uri))]
    objects = [o for o in storage.list_objects(uri) if o.size > 0]
    if not objects:
        raise DataError(f"{_without_credentials(uri)}: the folder holds no data files")
    return [_Part(o.uri, _is_parquet(o.uri), o.size) for o in objects]


def _part_chunks(
    part: _Part, selected: tuple[str, ...], first_row: int, decoder: _Decoder
) -> Iterator[Table | _Checkpoint]:
    if part.parquet:
        return _parquet_chunks(part.uri, selected, first_row, decoder)
    return _csv_chunks(part.uri, selected, first_row, decoder)


# Shares of files. A shard's share begins at an even cut of the files' bytes, moved to the next record of a
# CSV (a gzip file is never cut: the cut moves to its start) and counted in rows by the Parquet footers
# (the cut's share of the file's rows) or by counting the records before it (`_count_records`), then
# rounded up to a multiple of `align`.


@dataclass(frozen=True)
class _Cut:
    part: int  # the file it falls in
    offset: int  # in bytes, from the file's start: the header's end at the least (0 for a gzip file)


def _align_up(row: int, align: int) -> int:
    return -(-row // align) * align


def _cut(parts: Sequence[_Part], index: int, shards: int) -> _Cut:
    total = sum(part.size for part in parts)
    position, start = index * total // shards, 0
    for number, part in enumerate(parts):
        if position < start + part.size:
            within = position - start
            if part.parquet:
                return _Cut(number, within)
            header = _header_bytes(part.uri)
            if header is None:  # gzip: never cut
                return _Cut(number, 0)
            return _Cut(number, max(within, header))
        start += part.size
    return _Cut(len(parts) - 1, parts[-1].size)


def _header_bytes(uri: str) -> int | None:
    """The length of a plain CSV's header line (None for a gzip file, which is not cut)."""
    with _text_stream(uri) as stream:
        if isinstance(stream, gzip.GzipFile):
            return None
        return len(stream.readline(HEADER_BYTES))


def _file_rows(part: _Part) -> int:
    if part.parquet:
        with storage.open_seekable(part.uri) as stream:
            return int(_parquet_file(stream, part.uri).metadata.num_rows)
    with _text_stream(part.uri) as stream:
        stream.readline(HEADER_BYTES)
        return _count_records(stream)


def _rows_into(part: _Part, offset: int) -> tuple[int, int]:
    """(rows of a file before the cut at byte `offset`, where the rows after it begin): a Parquet file's
    share of its rows; in a CSV, the first record start at or after the cut (`_csv_cut`)."""
    if part.parquet:
        return _file_rows(part) * offset // max(part.size, 1), offset
    header = _header_bytes(part.uri)
    if header is None:
        return 0, 0
    return _csv_cut(part.uri, header, offset)


def _csv_cut(uri: str, header: int, offset: int) -> tuple[int, int]:
    """(records before it, the record start) of the cut at byte `offset`: just after the first newline
    outside quotes from `offset - 1` on, quotes counted from the header's end (a record start), so that a
    cut inside a quoted cell moves past the cell's line breaks. The shard before it stops there too
    (`_record_blocks`), counting quotes from its own start, a record start as well."""
    if offset <= header:
        return 0, header
    counter, position = _RecordCount(), header
    with storage.open_stream(uri, header) as stream:
        remaining = offset - 1 - header  # every record end before byte offset - 1 lies before the cut
        while remaining > 0:
            data = bytes(stream.read(min(COUNT_BYTES, remaining)))
            if not data:
                return counter.finish(), position
            counter.feed(data)
            remaining -= len(data)
            position += len(data)
        while True:
            data = bytes(stream.read(COUNT_BYTES))
            if not data:
                return counter.finish(), position  # the file ends in the record the cut fell in
            ends, _ = _record_ends(data, counter.quoted)
            if ends.size:
                counter.feed(data[: int(ends[0]) + 1])
                return counter.count, position + int(ends[0]) + 1
            counter.feed(data)
            position += len(data)


class _RecordCount:
    """The records the parser reads from a record start, fed the bytes in order: newlines outside quotes,
    less the empty lines (nothing or a carriage return between two newlines), which the parsers skip; a
    last record without a newline counts when it holds more than spaces (`finish`)."""

    def __init__(self) -> None:
        self.count, self.quoted, self.line = 0, False, b"\n"

    def feed(self, data: bytes) -> None:
        text = self.line + data  # with the end of the line before: empty lines at the seam are seen
        if not self.quoted and b'"' not in data and b"\n\n" not in text and b"\n\r\n" not in text:
            self.count += data.count(b"\n")
        else:
            ends, self.quoted = _record_ends(data, self.quoted)
            joined = self.line[-2:] + data
            shift = len(joined) - len(data)
            empty = sum(
                1
                for end in ends.tolist()
                if joined[end + shift - 1 : end + shift] == b"\n"
                or joined[end + shift - 2 : end + shift] == b"\n\r"
            )
            self.count += len(ends) - empty
        last = data.rfind(b"\n")
        self.line = data[last:] if last >= 0 else (self.line + data)[-HEADER_BYTES:]

    def finish(self) -> int:
        return self.count + (1 if self.line.rstrip(b"\n").strip() else 0)


def _count_records(stream: io.BufferedIOBase) -> int:
    """Every record from a record start to the stream's end."""
    counter = _RecordCount()
    while data := bytes(stream.read(COUNT_BYTES)):
        counter.feed(data)
    return counter.finish()


def _record_ends(data: bytes, quoted: bool) -> tuple[np.ndarray, bool]:
    """Positions of the newlines outside quotes (quotes pair up from a record start), and whether the data
    ends inside quotes."""
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    quotes = np.cumsum(raw == ord('"')) + int(quoted)
    outside = quotes[newlines] % 2 == 0
    return newlines[outside], bool(quotes[-1] % 2) if raw.size else quoted


def _probe_kinds(parts: Sequence[_Part], selected: tuple[str, ...]) -> dict[str, str]:
    """The column kinds one pod decides on the source's first rows, for a shard that starts elsewhere."""
    decoder = _Decoder()
    for part in parts:
        chunks = _part_chunks(part, selected, 0, decoder)
        try:
            for chunk in chunks:
                if isinstance(chunk, Table):
                    return dict(decoder.kinds)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
    return dict(decoder.kinds)


def _file_share(
    parts: Sequence[_Part],
    selected: tuple[str, ...],
    shards: int,
    index: int,
    align: int,
    counts: ShareCounts,
) -> Iterator[tuple[int, Table]]:
    """Shard `index`'s rows of the files: [first, end) with first and end the aligned row counts before its
    cut and the next one's. The rows before its cut are counted (Parquet: footers; CSV: records), the rows
    to the next cut are read, then the rows up to its aligned end."""
    decoder = _Decoder()
    begin = _cut(parts, index, shards) if index > 0 else None
    stop = _cut(parts, index + 1, shards) if index < shards - 1 else None
    first_file, file_row, begins_at = 0, 0, 0
    if begin is not None:
        decoder.kinds.update(_probe_kinds(parts, selected))
        first_file = begin.part
        file_row = sum(_file_rows(parts[number]) for number in range(begin.part))
        before, begins_at = _rows_into(parts[begin.part], begin.offset)
        counts.counted = file_row + before
    first = _align_up(counts.counted, align) if counts.counted is not None else 0
    counts.first_row = first
    end: float | None = None if stop is not None else math.inf
    for number in range(first_file, len(parts)):
        part = parts[number]
        start = begins_at if begin is not None and number == begin.part else None
        checkpoint = stop.offset if stop is not None and number == stop.part else None
        if part.parquet:
            rows = _file_rows(part)
            if checkpoint is not None:
                counts.reached = file_row + rows * checkpoint // max(part.size, 1)
                end = _align_up(counts.reached, align)
            high = rows if end is None or end >= file_row + rows else int(end) - file_row
            window = (max(first - file_row, 0), high)
            if window[0] < window[1]:
                yield from _parquet_rows(part.uri, selected, file_row, decoder, window)
            file_row += rows
        else:
            row = file_row if start is None else (counts.counted or 0)
            chunks = _csv_chunks(part.uri, selected, row, decoder, start, checkpoint)
            try:
                for chunk in chunks:
                    if isinstance(chunk, _Checkpoint):
                        counts.reached = row
                        end = _align_up(row, align)
                    else:
                        yield from _clipped(row, chunk, first, end)
                        row += chunk.rows
                    if end is not None and row >= end:
                        break
            finally:
                chunks.close()
            file_row = row
        if end is not None and file_row >= end:
            return


def _clipped(row: int, chunk: Table, first: int, end: float | None) -> Iterator[tuple[int, Table]]:
    """The chunk's rows in [first, end) (end None: not known yet, so every row from first)."""
    low = max(first - row, 0)
    high = chunk.rows if end is None else max(0, min(chunk.rows, int(min(end, row + chunk.rows)) - row))
    if low >= high:
        return
    if (low, high) == (0, chunk.rows):
        yield row, chunk
    else:
        yield row + low, Table(chunk.columns, chunk.values[low:high], chunk.dictionaries)


def _is_parquet(uri: str) -> bool:
    if uri.lower().endswith(PARQUET_SUFFIXES):
        return True
    with storage.open_stream(uri) as stream:
        return bytes(stream.read(len(PARQUET_MAGIC))) == PARQUET_MAGIC


def _columns_of(part: _Part) -> tuple[str, ...]:
    if part.parquet:
        with storage.open_seekable(part.uri) as stream:
            return check_columns(_parquet_file(stream, part.uri).schema_arrow.names)
    return _csv_header(part.uri)


def _check_same_columns(uri: str, found: Sequence[str], selected: Sequence[str]) -> None:
    missing = [name for name in selected if name not in found]
    if missing:
        raise DataError(
            f"{_without_credentials(uri)}: column {missing[0]!r} not found; this part has: {', '.join(found)}"
        )


# CSV


def _text_stream(uri: str) -> io.BufferedIOBase:
    """The file's bytes, gunzipped on the fly when they start with gzip's magic."""
    stream = storage.open_stream(uri)
    if isinstance(stream, io.BufferedReader) and bytes(stream.peek(2)[:2]) == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def _csv_header(uri: str) -> tuple[str, ...]:
    where = _without_credentials(uri)
    with _text_stream(uri) as stream:
        try:
            line = stream.readline(HEADER_BYTES)
        except (OSError, EOFError) as exc:
            raise DataError(f"{where}: not a valid gzip file ({exc})") from exc
    if not line.strip():
        raise DataError(f"{where}: the file is empty (no header row)")
    if not line.endswith(b"\n") and len(line) >= HEADER_BYTES:
        raise DataError(f"{where}: the header line is longer than {HEADER_BYTES >> 20} MiB; is it a CSV?")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return check_columns(next(csv.reader([text.rstrip("\r\n")]), []))


class _Checkpoint:
    """Where a CSV share's reader reached the next shard's cut (between two blocks)."""


CHECKPOINT = _Checkpoint()


def _csv_chunks(
    uri: str,
    selected: tuple[str, ...],
    first_row: int,
    decoder: _Decoder,
    start: int | None = None,
    checkpoint: int | None = None,
) -> Generator[Table | _Checkpoint, None, None]:
    """The file's records in blocks cut at record boundaries: polars parses a block of plain numbers; a
    block with quotes, text, odd rows or the first block of a file goes through Arrow and the decoder,
    which decide the column kinds and name a bad cell by column and row. From byte `start` (a record's
    start after the header) when given; `CHECKPOINT` between the blocks before and after byte
    `checkpoint` (a record start, or 0 for the file's start)."""
    where = _without_credentials(uri)
    header = _csv_header(uri)
    _check_same_columns(uri, header, selected)
    row = first_row
    skip = _header_bytes(uri) if start or checkpoint else None
    from_start = not start or skip is None or start <= skip
    offset = 0 if from_start else int(start or 0)
    if checkpoint is not None and (checkpoint == 0 or (skip is not None and checkpoint <= skip)):
        yield CHECKPOINT
        checkpoint = None
    # The stream starts after the header (read from the file's start) or at `offset`.
    base = (skip or 0) if from_start else offset
    stop = None if checkpoint is None else checkpoint - base
    with _text_stream(uri) if from_start else storage.open_stream(uri, offset) as stream:
        try:
            if from_start:
                stream.readline(HEADER_BYTES)
            blocks = _record_blocks(stream, CSV_BLOCK_BYTES, stop)

            def parse(block: bytes | _Checkpoint) -> Table | bytes | _Checkpoint:
                if isinstance(block, _Checkpoint):
                    return block
                return _parsed(block, header, selected, decoder)

            for block in ahead(blocks, parse):
                if isinstance(block, _Checkpoint):
                    yield block
                    continue
                if isinstance(block, bytes):
                    tables = list(_arrow_block(block, header, selected, row, decoder, where))
                else:
                    tables = [block]
                for table in tables:
                    yield table
                    row += table.rows
        except _LongRecord as exc:
            raise DataError(
                f"{where}: malformed CSV after row {row}: a record longer than {exc.limit:,} bytes "
                f"(the most one block holds); is it a CSV?"
            ) from None
        except (OSError, EOFError) as exc:
            raise DataError(f"{where}: not a valid gzip file ({exc})") from exc


class _LongRecord(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def _record_blocks(
    stream: io.BufferedIOBase, size: int, stop: int | None = None
) -> Iterator[bytes | _Checkpoint]:
    """About `size` bytes at a time, each ending after a record: a newline outside quotes. With `stop`,
    `CHECKPOINT` comes between the blocks before and after the first record start at or after byte
    `stop` (just after the first newline outside quotes from `stop - 1` on, as `_csv_cut` finds it)."""
    carry, consumed = b"", 0  # consumed: the stream's bytes before `carry`, a record start
    while True:
        data = stream.read(size)
        end = data.rfind(b"\n") if stop is None and b'"' not in data and b'"' not in carry else -1
        if end >= 0:  # the usual block: one copy (`carry + data`, then a slice, copied 8 MB twice)
            block = b"".join((carry, memoryview(data)[: end + 1]))
            carry, consumed = bytes(memoryview(data)[end + 1 :]), consumed + len(block)
            yield block
            continue
        buffer = carry + data if carry else bytes(data)
        if stop is not None:
            cut = _checkpoint_in(buffer, stop - 1 - consumed)
            if cut is not None:
                if buffer[:cut].strip():
                    yield buffer[:cut]
                yield CHECKPOINT
                buffer, consumed, stop = buffer[cut:], consumed + cut, None
        if not data:
            if buffer.strip():
                yield buffer if buffer.endswith(b"\n") else buffer + b"\n"
            if stop is not None:  # the file ended in the record the cut fell in
                yield CHECKPOINT
            return
        end = _last_record_end(buffer)
        if end < 0:
            if len(buffer) > size:
                raise _LongRecord(size)
            carry = buffer
            continue
        carry, consumed = buffer[end + 1 :], consumed + end + 1
        yield buffer[: end + 1]


def _checkpoint_in(buffer: bytes, at: int) -> int | None:
    """Where in `buffer` (which starts at a record start) the checkpoint goes: just after the first
    newline outside quotes at position `at` or later; 0 when `at` lies before the buffer; None when no
    record ends there yet."""
    if at < 0:
        return 0
    if b'"' not in buffer:
        found = buffer.find(b"\n", at)
        return found + 1 if found >= 0 else None
    ends, _ = _record_ends(buffer, False)
    later = ends[ends >= at]
    return int(later[0]) + 1 if later.size else None


def _last_record_end(buffer: bytes) -> int:
    """The position of the last newline that ends a record; quotes pair up from the block's start."""
    if b'"' not in buffer:
        return buffer.rfind(b"\n")
    raw = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    outside = np.cumsum(raw == ord('"'))[newlines] % 2 == 0
    return int(newlines[outside][-1]) if outside.any() else -1


def _parsed(
    block: bytes, header: tuple[str, ...], selected: tuple[str, ...], decoder: _Decoder
) -> Table | bytes:
    """The block as numbers when every selected column is known to be numeric and polars reads it with
    exactly one value per column in every record (no quotes, no blank or short rows); else the block, for
    Arrow."""
    if any(decoder.kinds.get(name) != NUMBER for name in selected) or b'"' in block:
        return block
    try:
        frame = pl.read_csv(
            block,
            has_header=False,
            schema={name: pl.Float64 if name in selected else pl.String for name in header},
            columns=[header.index(name) for name in selected],
            null_values=_NULL_VALUES,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return block
    if _delimiters(block) != frame.height * (len(header) - 1):
        return block
    if frame.columns != list(selected):
        frame = frame.select(selected)
    return Table(selected, frame.to_numpy(order="fortran"), decoder.dictionaries)


def _delimiters(block: bytes) -> int:
    return int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == ord(",")))


def _arrow_block(
    block: bytes,
    header: tuple[str, ...],
    selected: tuple[str, ...],
    first_row: int,
    decoder: _Decoder,
    where: str,
) -> Iterator[Table]:
    invalid: list[str] = []

    def on_invalid_row(row: Any) -> str:
        # Single-threaded parsing numbers the block's lines from 1; blank lines don't count.
        where_row = f"row {first_row + row.number}" if row.number is not None else "a row"
        invalid.append(f"{where_row}: expected {row.expected_columns} values, got {row.actual_columns}")
        return "error"

    try:
        reader = pa_csv.open_csv(
            pa.BufferReader(block),
            read_options=pa_csv.ReadOptions(
                column_names=list(header), block_size=len(block) + 1, use_threads=False
            ),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid_row),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(selected),
                column_types=dict.fromkeys(selected, pa.binary()),
                null_values=_NULL_VALUES,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        row = first_row
        for batch in reader:
            if batch.num_rows:
                yield decoder.table(batch, selected, row)
                row += batch.num_rows
    except pa.ArrowInvalid as exc:
        raise _csv_error(where, first_row, invalid, exc) from exc


def _csv_error(where: str, rows_before: int, invalid: list[str], exc: Exception) -> DataError:
    """Arrow's own reason, one line, with the row when the parser reported one through its handler."""
    if invalid:
        return DataError(f"{where}: {invalid[0]}")
    return DataError(f"{where}: malformed CSV after row {rows_before}: {one_line(str(exc), 300)}")


class _Decoder:
    """Arrow columns to float64, deciding once per read which text columns are categories.

    A column whose first batch holds mostly text (more than half of its present cells are not numbers)
    is a category column: its cells become codes into a dictionary of the values in order of first
    appearance. Any other column is numeric, and a text cell in it, in any batch, is an error naming
    the column and the row. Parquet string columns are categories by their type.
    """

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}
        self.dictionaries: dict[str, list[str]] = {}
        self.codes: dict[str, dict[str, int]] = {}

    def table(self, batch: pa.RecordBatch, names: tuple[str, ...], first_row: int) -> Table:
        out = np.empty((batch.num_rows, len(names)), dtype=np.float64, order="F")
        numbers = self._all_numbers(batch, names)
        for j, (array, name) in enumerate(zip((numbers or batch).columns, names, strict=True)):
            out[:, j] = _float_array(array) if numbers is not None else self._column(array, name, first_row)
        return Table(names, out, self.dictionaries)

    def _all_numbers(self, batch: pa.RecordBatch, names: tuple[str, ...]) -> pa.RecordBatch | None:
        """The whole batch cast to float64 in one call, the common case; None when any column is (or may
        be) text or holds a cell Arrow cannot read as a number, which the column-by-column path handles."""
        if any(self.kinds.get(name) == CATEGORY for name in names):
            return None
        try:
            cast = batch.cast(pa.schema([(name, pa.float64()) for name in batch.schema.names]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        for name in names:
            self.kinds.setdefault(name, NUMBER)
        return cast

    def _column(self, array: pa.Array, name: str, first_row: int) -> np.ndarray:
        if pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        if pa.types.is_binary(array.type):  # CSV cells: UTF-8 is checked here, where the cell can be named
            try:
                array = pc.cast(array, pa.string())
            except pa.ArrowInvalid:
                _name_undecodable(array.to_pylist(), name, first_row)
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            return self._text(pc.utf8_trim_whitespace(array), name, first_row)
        if not (
            pa.types.is_boolean(array.type)
            or pa.types.is_integer(array.type)
            or pa.types.is_floating(array.type)
            or pa.types.is_decimal(array.type)
        ):
            raise DataError(f"column {name!r}: its type {array.type} is neither a number nor text")
        return _float_array(pc.cast(array, pa.float64()))

    def _text(self, array: pa.Array, name: str, first_row: int) -> np.ndarray:
        kind = self.kinds.get(name)
        if kind != CATEGORY:
            try:
                numbers = _float_array(pc.cast(array, pa.float64()))
            except pa.ArrowInvalid:
                if kind is None and _mostly_text(array.to_pylist()):
                    self.kinds[name] = CATEGORY
                    return self._category(array, name)
                return _careful_numbers(array.to_pylist(), name, first_row)
            self.kinds[name] = NUMBER
            return numbers
        return self._category(array, name)

    def _category(self, array: pa.Array, name: str) -> np.ndarray:
        """Codes of the cells; missing tokens (any case, padded) are missing, not a category."""
        lowered = pc.utf8_lower(array)
        present = pc.and_(pc.is_valid(array), pc.invert(pc.is_in(lowered, value_set=_TOKENS)))
        array = pc.if_else(present, array, pa.scalar(None, pa.string()))
        dictionary = self.dictionaries.setdefault(name, [])
        codes = self.codes.setdefault(name, {})
        for value in pc.unique(array.drop_null()).to_pylist():
            if value not in codes:
                codes[value] = len(dictionary)
                dictionary.append(value)
        index = pc.index_in(array, value_set=pa.array(dictionary, pa.string()))
        return _float_array(pc.cast(index, pa.float64()))


NUMBER, CATEGORY = "number", "category"
_TOKENS = pa.array(sorted(MISSING_TOKENS), pa.string())


def _float_array(array: pa.Array) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _mostly_text(cells: list[str | None]) -> bool:
    present = [c for c in cells if c is not None and c.strip().lower() not in MISSING_TOKENS]
    return sum(not _is_number(c) for c in present) * 2 > len(present)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _name_undecodable(cells: list[bytes | None], name: str, first_row: int) -> None:
    for i, cell in enumerate(cells):
        try:
            (cell or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"column {name!r} row {first_row + i + 1}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None


def _careful_numbers(cells: list[str | None], name: str, first_row: int) -> np.ndarray:
    """Python's float() with the missing tokens, cell by cell: only for a batch Arrow could not cast."""
    values = np.empty(len(cells))
    for i, cell in enumerate(cells):
        text = (cell or "").strip()
        if text.lower() in MISSING_TOKENS:
            values[i] = math.nan
            continue
        try:
            values[i] = float(text)
        except ValueError:
            raise DataError(f"column {name!r} row {first_row + i + 1}: {cell!r} is not a number") from None
    return values


# Parquet


def _parquet_file(stream: io.BufferedIOBase, uri: str) -> pq.ParquetFile:
    """The file read column chunk by column chunk through a small buffer: Arrow's defaults (pre-buffering
    and threads) fetched ranges of many row groups at once, and a 1,000,000-row file of 5,190-row groups
    was killed at 512Mi; without them memory is about one row group (measured: 118 MiB for a 240 MB
    file of small groups, against 393 MiB)."""
    try:
        return pq.ParquetFile(stream, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"{_without_credentials(uri)}: not a readable Parquet file ({one_line(str(exc), 200)})"
        ) from exc


def _parquet_chunks(
    uri: str, selected: tuple[str, ...], first_row: int, decoder: _Decoder
) -> Iterator[Table]:
    for _, chunk in _parquet_rows(uri, selected, first_row, decoder):
        yield chunk


def _parquet_rows(
    uri: str,
    selected: tuple[str, ...],
    first_row: int,
    decoder: _Decoder,
    window: tuple[int, int] | None = None,
) -> Iterator[tuple[int, Table]]:
    """(number of the first row, chunk), row group by row group, each read one column at a time: Arrow's
    batch reader held five to eight times a group's size (a 68 MB group of 101 columns peaked at 343-551
    MiB); a column at a time holds the group's values once, as float64. No read-ahead here: a second group
    in flight cost 100 MiB and gained nothing measurable (1,000,000 x 101 in 68 MB groups: 296 MiB and 14 s
    without, 399 MiB and 18 s with). With `window` (rows of the file, from 0), only its rows: groups
    outside it are not read. Chunks are column-major (Fortran-ordered) views of the group."""
    where = _without_credentials(uri)
    with storage.open_seekable(uri) as stream:
        file = _parquet_file(stream, uri)
        _check_same_columns(uri, file.schema_arrow.names, selected)
        rows_per_chunk = max(1, CHUNK_CELLS // max(len(selected), 1))
        sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
        starts = np.cumsum([0, *sizes])
        low, high = window if window is not None else (0, int(starts[-1]))

        def group(index: int) -> np.ndarray:
            row = first_row + int(starts[index])
            try:
                return _group_columns(file, index, selected, decoder, row)
            except DataError as exc:
                raise DataError(f"{where}: {exc}") from exc
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(
                    f"{where}: unreadable Parquet data after row {row} ({one_line(str(exc), 200)})"
                ) from exc

        for index in range(file.num_row_groups):
            begin, end = int(starts[index]), int(starts[index + 1])
            if end <= low or begin >= high:
                continue
            by_column = group(index)
            for start in range(max(low, begin) - begin, min(high, end) - begin, rows_per_chunk):
                stop = min(start + rows_per_chunk, min(high, end) - begin)
                yield (
                    first_row + begin + start,
                    Table(selected, by_column[:, start:stop].T, decoder.dictionaries),
                )


def _group_columns(
    file: pq.ParquetFile, index: int, selected: tuple[str, ...], decoder: _Decoder, first_row: int
) -> np.ndarray:
    """One row group's selected columns as float64, one column per row of the result, each decoded
    alone (the decoder names a bad cell by its row in the file)."""
    by_column = np.empty((len(selected), file.metadata.row_group(index).num_rows))
    for j, name in enumerate(selected):
        column = file.read_row_group(index, columns=[name], use_threads=False)
        batch = pa.RecordBatch.from_arrays([column.column(0).combine_chunks()], names=[name])
        by_column[j] = decoder.table(batch, (name,), first_row).values[:, 0]
    return by_column


def parse_csv(content: bytes, label: str = "CSV") -> Table:
    """A CSV held in memory, read as a file would be (tests and small uploads)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".csv") as file:
        file.write(content)
        file.flush()
        source = open_files(file.name)
        try:
            return source.table()
        except DataError as exc:
            raise DataError(str(exc).replace(file.name, label)) from exc


def _without_credentials(uri: str) -> str:
    """Drop any user:password@ part of a URI before it goes into lineage or messages."""
    parsed = urlparse(uri)
    if parsed.scheme and "@" in parsed.netloc:
        return parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]).geturl()
    return uri


# --- in-memory sources: inline rows and built-in sets ------------------------------------------------


Ranged = Callable[[tuple[str, ...], int, int], Iterator[Table]]


def _ranged_sharer(total: int, ranged: Ranged) -> Sharer:
    """Shares of a source whose rows are known before reading: cuts at even row counts."""

    def share(
        selected: tuple[str, ...], shards: int, index: int, align: int, counts: ShareCounts
    ) -> Iterator[tuple[int, Table]]:
        counts.counted = index * total // shards if index else None
        counts.reached = (index + 1) * total // shards if index < shards - 1 else None
        first = _align_up(counts.counted or 0, align)
        end = total if counts.reached is None else min(total, _align_up(counts.reached, align))
        counts.first_row, row = first, first
        if first < end:
            for chunk in ranged(selected, first, end):
                yield row, chunk
                row += chunk.rows

    return share


def memory_source(table: Table, description: dict[str, Any], name: str) -> Source:
    """A table already in memory, served in chunks like any other source."""

    def ranged(selected: tuple[str, ...], first: int, end: int) -> Iterator[Table]:
        index = [table.columns.index(column) for column in selected]
        step = max(1, CHUNK_CELLS // max(len(index), 1))
        for start in range(first, end, step):
            yield Table(selected, table.values[start : min(start + step, end)][:, index])

    def reader(selected: tuple[str, ...]) -> Iterator[Table]:
        return ranged(selected, 0, table.rows)

    return Source(table.columns, description, name, reader, table.rows, _ranged_sharer(table.rows, ranged))


def parse_rows(text: str) -> list[dict[str, Any]]:
    """Inline rows: a JSON (or YAML) list of flat objects."""
    try:
        rows = json.loads(text)
    except ValueError:
        try:
            rows = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DataError(f"inline rows are neither JSON nor YAML: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise DataError('inline rows must be a list of objects, like [{"x": 1, "y": 2}, {"x": 2, "y": 4}]')
    if not rows:
        raise DataError("the data has no rows")
    return rows


def open_inline(text: str) -> Source:
    rows = parse_rows(text)
    columns = check_columns(dict.fromkeys(str(key) for row in rows for key in row))
    records = []
    for number, row in enumerate(rows, start=1):
        values = {str(k): v for k, v in row.items()}
        for column, value in values.items():
            if isinstance(value, dict | list):
                raise DataError(f"column {column!r} row {number}: {value!r} is not a number")
        records.append([values.get(column) for column in columns])
    return memory_source(
        table_from_records(columns, records), {"type": "inline", "rows": len(rows)}, "inline"
    )


def open_builtin(spec: str) -> Source:
    name = spec.split(":", 1)[1].strip().lower()
    if name not in BUILTIN_DATASETS:
        raise SpecError(f"unknown builtin dataset {name!r}; available: {', '.join(BUILTIN_DATASETS)}")
    try:
        import sklearn
        from sklearn.datasets import load_diabetes
    except ImportError as exc:
        raise JobError("builtin datasets need scikit-learn: pip install 'marina[data]'") from exc
    bunch = load_diabetes(as_frame=False)
    values = np.column_stack([bunch.data, bunch.target]).astype(np.float64)
    columns = check_columns([*bunch.feature_names, "target"])
    description = {"type": "builtin", "name": name, "provider": f"scikit-learn {sklearn.__version__}"}
    return memory_source(Table(columns, values), description, name)


# --- synthetic ------------------------------------------------------------------------------------------


SYNTHETIC = "spec.source.synthetic"  # the Dataset field that states each parameter's default and range


@dataclass(frozen=True)
class SyntheticSpec:
    rows: int = contract.DATASET.default(f"{SYNTHETIC}.rows")
    features: int = contract.DATASET.default(f"{SYNTHETIC}.features")
    noise: float = contract.DATASET.default(f"{SYNTHETIC}.noise")
    seed: int = contract.DATASET.default(f"{SYNTHETIC}.seed")
    missing: float = contract.DATASET.default(f"{SYNTHETIC}.missing")

    def __post_init__(self) -> None:
        for name in ("rows", "features", "noise", "seed", "missing"):
            contract.DATASET.at(f"{SYNTHETIC}.{name}").check(f"synthetic source: {name}", getattr(self, name))

    @classmethod
    def parse(cls, spec: str) -> SyntheticSpec:
        body = spec.split(":", 1)[1].strip()
        converters: dict[str, Callable[[str], Any]] = {
            "rows": int,
            "features": int,
            "noise": float,
            "seed": int,
            "missing": float,
        }
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in body.split(","))):
            key, sep, text = (s.strip() for s in item.partition("="))
            if key not in converters:
                known = ", ".join(converters)
                raise SpecError(f"synthetic source: unknown parameter {key!r}; expected {known}")
            if not sep:
                raise SpecError(f"synthetic source: {key!r} needs a value, like {key}=1")
            try:
                values[key] = converters[key](text)
            except ValueError as exc:
                kind = "integer" if converters[key] is int else "number"
                raise SpecError(f"synthetic source: {key}={text!r} is not a valid {kind}") from exc
        return cls(**values)

    def model(self) -> tuple[np.ndarray, float]:
        """The true coefficients and intercept, from the seed alone."""
        rng = np.random.default_rng(self.seed)
        coefficients = np.round(rng.uniform(-5.0, 5.0, self.features), 3)
        return coefficients, float(np.round(rng.uniform(-2.0, 2.0), 3))

    @property
    def block_rows(self) -> int:
        return max(1, SYNTHETIC_BLOCK_CELLS // (self.features + 1))

    def block(self, index: int) -> np.ndarray:
        """Rows [index·B, (index+1)·B) as [x | target], from their own stream seeded by (seed, index)."""
        return self.block_of(index, min(self.block_rows, self.rows - index * self.block_rows))

    def block_of(self, index: int, rows: int) -> np.ndarray:
        """``block(index)`` with its row count given: the same stream continues past ``rows`` (a benchmark's
        table larger than a Dataset's synthetic source may be)."""
        coefficients, intercept = self.model()
        rng = np.random.default_rng([self.seed, index])
        x = rng.standard_normal((rows, self.features))
        y = x @ coefficients + intercept + self.noise * rng.standard_normal(rows)
        if self.missing:
            x[rng.random(x.shape) < self.missing] = np.nan
        return np.column_stack([x, y])


def open_synthetic(spec: str) -> Source:
    params = SyntheticSpec.parse(spec)
    coefficients, intercept = params.model()
    columns = check_columns([*(f"x{j}" for j in range(1, params.features + 1)), "target"])
    description = {
        "type": "synthetic",
        **asdict(params),
        "coefficients": coefficients.tolist(),
        "intercept": intercept,
    }

    def ranged(selected: tuple[str, ...], first: int, end: int) -> Iterator[Table]:
        index = [columns.index(column) for column in selected]
        size = params.block_rows
        for block in range(first // size, math.ceil(end / size)):
            low, high = max(first - block * size, 0), min(end - block * size, size)
            yield Table(selected, params.block(block)[low:high, index])

    def reader(selected: tuple[str, ...]) -> Iterator[Table]:
        return ranged(selected, 0, params.rows)

    return Source(columns, description, "synthetic", reader, params.rows, _ranged_sharer(params.rows, ranged))
