"""One shard's pass over its share of a source, and what it hands to the reduce.

A share is a contiguous range of source rows beginning at a multiple of a part group
(`marina.data.parts.group_rows`), so every leaf and every part belongs to one shard. The pass reads its
chunks once, column by column: drops or fails rows by the missing-value policy, splits the kept rows by a
seeded hash of their source row number, copies each split's rows once into the part being filled, folds
each leaf's moments and hash along the leaf tree, offers the train rows to the seeded bottom-k sample and
notes the categories each split holds. One pod is shard 0 of 1.

A share holding at most `SMALL_TABLE_CELLS` kept cells is held rather than split: whether the whole table
is small (split by an exact seeded permutation) or not is known only once every shard has counted its
rows, so the reduce splits held rows, the same way one pod would.

What a shard hands on (`ShardResult`) is written under the run's partials folder as
`shard-<i>-of-<N>-<sha256>.json` (counts, parts, the unfinished nodes of both leaf trees, categories) beside
Parquet tables for its sample and its held rows, each named by the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from marina import storage
from marina.data import parts, sampling
from marina.data.moments import ColumnMoments
from marina.data.options import PrepareOptions
from marina.data.sources import ShareCounts
from marina.data.table import DataError, Table

#: Up to this many kept cells a table is split by an exact seeded permutation (8 MiB of float64).
SMALL_TABLE_CELLS = 1 << 20
FORMAT = "marina.dev/prepare-partial/v1"
SPLITS = ("train", "test")
ROW_COLUMN = "row"

Node = tuple[int, int, Any]


@dataclass
class SplitResult:
    """One split of a share: its rows, parts, the unfinished nodes of its two leaf trees, the texts of each
    category column it holds and (without a folder) its parts in memory."""

    rows: int
    parts: list[parts.PartRecord]
    moments: list[tuple[int, int, ColumnMoments | None]]
    hashes: list[tuple[int, int, bytes | None]]
    seen: dict[int, set[str]]
    kept: list[tuple[np.ndarray, dict[int, tuple[str, ...]]]] = field(default_factory=list)


@dataclass
class Held:
    """A small share's kept rows, not split yet: numbers and columns (category columns as codes)."""

    rows: np.ndarray
    columns: np.ndarray


@dataclass
class ShardResult:
    index: int
    shards: int
    counts: ShareCounts
    kept_rows: int
    missing: np.ndarray
    categorical: tuple[int, ...]
    dictionaries: dict[int, list[str]]  # every text each category column held, codes index it
    held: Held | None = None
    splits: dict[str, SplitResult] | None = None
    sample: sampling.BottomSample | None = None
    kinds_known: bool = True  # False when the share read no row (its categories are unknown)
    # Read back by the reduce: where its held rows and its sample are stored (folder, name), read one shard
    # at a time (`held_of`, `sample_of`) so that the reduce holds one shard's, not every shard's.
    held_at: tuple[str, str] | None = None
    sample_at: tuple[str, str] | None = None

    @property
    def holds(self) -> bool:
        """Whether the share held its rows (too few to split alone) rather than split them."""
        return self.held is not None or self.held_at is not None

    @property
    def end_row(self) -> int:
        return self.counts.first_row + self.counts.rows


def positions_of(
    columns: Sequence[str], dictionaries: Mapping[str, Sequence[str]]
) -> dict[int, Sequence[str]]:
    """A table's dictionaries by column position."""
    return {j: dictionaries[name] for j, name in enumerate(columns) if name in dictionaries}


class Splitter:
    """Kept rows into the train and test writers, train rows into the sample."""

    def __init__(
        self,
        folder: str | None,
        schema: parts.Schema,
        options: PrepareOptions,
        first_row: int,
        sample: sampling.BottomSample | None = None,
    ) -> None:
        self.options = options
        self.writers = {split: parts.SplitWriter(folder, schema, first_row) for split in SPLITS}
        self.sample = sample or sampling.BottomSample(schema.width, options.seed)

    def by_hash(
        self,
        rows: np.ndarray,
        columns: np.ndarray,
        keep: np.ndarray | None,
        dictionaries: Mapping[int, Sequence[str]],
    ) -> None:
        """Each row to test with probability testFraction, by a seeded hash of its number."""
        to_test = (
            sampling.uniform_of(rows, self.options.seed, sampling.SPLIT_SALT) < self.options.test_fraction
        )
        train = ~to_test if keep is None else keep & ~to_test
        test = to_test if keep is None else keep & to_test
        self.assign(rows, columns, train, test, dictionaries)

    def assign(
        self,
        rows: np.ndarray,
        columns: np.ndarray,
        train: np.ndarray,
        test: np.ndarray,
        dictionaries: Mapping[int, Sequence[str]],
    ) -> None:
        self.writers["train"].add_masked(rows, columns, train, dictionaries)
        self.writers["test"].add_masked(rows, columns, test, dictionaries)
        self.sample.add_columns(rows, columns, train)  # its category columns are codes no one reads

    def advance(self, end_row: int) -> None:
        for writer in self.writers.values():
            writer.advance(end_row)

    def close(self, end_row: int, dictionaries: Mapping[int, Sequence[str]]) -> dict[str, SplitResult]:
        results = {}
        for split, writer in self.writers.items():
            writer.close(end_row)
            seen = {j: {dictionaries[j][code] for code in codes} for j, codes in writer.seen.items()}
            results[split] = SplitResult(
                writer.rows, writer.parts, writer.moments.stack, writer.hashes.stack, seen, writer.kept
            )
        return results


class ShardPass:
    """Cleaning, the split and everything gathered on the way, chunk by chunk, for one share."""

    def __init__(
        self,
        columns: Sequence[str],
        options: PrepareOptions,
        folder: str | None,
        held_limit: int | None = None,
    ) -> None:
        self.columns, self.options, self.folder = tuple(columns), options, folder
        self.held_limit = SMALL_TABLE_CELLS if held_limit is None else held_limit
        self.rows_in = 0
        self.kept_rows = 0
        self.missing = np.zeros(len(self.columns), dtype=np.int64)
        self.held: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, int]] | None = []
        self.held_cells = 0
        self.splitter: Splitter | None = None
        self.first_row: int | None = None
        self.dictionaries: dict[int, Sequence[str]] = {}
        self.categorical: tuple[int, ...] | None = None

    def add(self, first_row: int, chunk: Table) -> None:
        if self.first_row is None:
            self.first_row = first_row
        self.dictionaries = dict(positions_of(self.columns, chunk.dictionaries))
        self._check_categories(first_row + chunk.rows)
        columns = chunk.values.T
        if columns.shape[1] > 1 and columns.strides[1] != columns.itemsize:
            columns = np.ascontiguousarray(columns)  # each column contiguous: one copy of a row-major chunk
        n = columns.shape[1]
        rows = np.arange(first_row, first_row + n, dtype=np.int64)
        keep = self._kept(columns, first_row)
        self.rows_in += n
        self.kept_rows += n if keep is None else int(np.count_nonzero(keep))
        end = first_row + n
        if self.held is not None:
            self.held.append((rows, columns, keep, end))
            self.held_cells += (n if keep is None else int(np.count_nonzero(keep))) * len(self.columns)
            if self.held_cells > self.held_limit:
                buffered, self.held = self.held, None
                for held_rows, held_columns, held_keep, held_end in buffered:
                    self._split(held_rows, held_columns, held_keep, held_end)
            return
        self._split(rows, columns, keep, end)

    def _split(self, rows: np.ndarray, columns: np.ndarray, keep: np.ndarray | None, end: int) -> None:
        if self.splitter is None:
            self.splitter = Splitter(self.folder, self._schema(), self.options, self.first_row or 0)
        self.splitter.by_hash(rows, columns, keep, self.dictionaries)
        self.splitter.advance(end)

    def _schema(self) -> parts.Schema:
        return parts.Schema(self.columns, frozenset(self.dictionaries))

    def _kept(self, columns: np.ndarray, first_row: int) -> np.ndarray | None:
        """The rows the missing-value policy keeps (None: every row, nothing missing). Rows without a target
        teach nothing and are always dropped."""
        sums = np.ones(columns.shape[0]) @ columns  # a non-finite cell makes its row's sum non-finite
        if np.isfinite(sums).all():
            return None
        missing = np.isnan(columns)
        self.missing += missing.sum(axis=1)
        incomplete = missing.any(axis=0)
        if not incomplete.any():
            return None  # a sum overflowed; no cell is missing
        if self.options.missing == "fail":
            row = int(np.argmax(incomplete))
            column = int(np.argmax(missing[:, row]))
            raise DataError(
                f"column {self.columns[column]!r} row {first_row + row + 1}: missing value "
                "(missing policy 'fail')"
            )
        keep: np.ndarray = ~missing[-1]
        if self.options.missing == "drop":
            keep &= ~incomplete
        return keep

    def _check_categories(self, reached: int) -> None:
        if len(self.columns) - 1 in self.dictionaries:
            raise DataError(
                f"target column {self.columns[-1]!r} holds text; a regression target must be numeric"
            )
        for j, values in self.dictionaries.items():
            if len(values) > self.options.max_categories:
                raise DataError(
                    f"column {self.columns[j]!r} has more than {self.options.max_categories} distinct values "
                    f"(reached {len(values)} by row {reached}): an identifier is not a category; leave it "
                    "out of features or raise cleaning.maxCategories"
                )

    def finish(self, index: int, shards: int, counts: ShareCounts) -> ShardResult:
        first = counts.first_row
        dictionaries = {j: list(values) for j, values in self.dictionaries.items()}
        result = ShardResult(
            index,
            shards,
            counts,
            self.kept_rows,
            self.missing,
            tuple(sorted(self.dictionaries)),
            dictionaries,
            kinds_known=self.first_row is not None,
        )
        if self.held is not None:
            chosen = [(r if k is None else r[k], c if k is None else c[:, k]) for r, c, k, _ in self.held]
            result.held = Held(
                np.concatenate([r for r, _ in chosen]) if chosen else np.empty(0, dtype=np.int64),
                np.hstack([c for _, c in chosen]) if chosen else np.empty((len(self.columns), 0)),
            )
            return result
        assert self.splitter is not None
        result.splits = self.splitter.close(first + counts.rows, dictionaries)
        result.sample = self.splitter.sample
        return result


def run(
    chunks: Iterable[tuple[int, Table]],
    columns: Sequence[str],
    options: PrepareOptions,
    folder: str | None,
    index: int,
    shards: int,
    counts: ShareCounts,
    on_chunk: Callable[[int], None] | None = None,
) -> ShardResult:
    """One share's pass: `chunks` fill `counts` as they are read (`marina.data.sources.Source.share`)."""
    shard = ShardPass(columns, options, folder)
    for first_row, chunk in chunks:
        shard.add(first_row, chunk)
        if on_chunk is not None:
            on_chunk(shard.rows_in)
    return shard.finish(index, shards, counts)


# --- partial documents ----------------------------------------------------------------------------------


def request_digest(source: str, columns: Sequence[str], options: PrepareOptions, shards: int) -> str:
    """What every shard and the reduce of one run agree on (a shard of another run is refused)."""
    document = {
        "source": source,
        "columns": list(columns),
        "testFraction": options.test_fraction,
        "seed": options.seed,
        "missing": options.missing,
        "maxCategories": options.max_categories,
        "shards": shards,
        "leafCells": parts.LEAF_CELLS,
        "partCells": parts.PART_CELLS,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def write(result: ShardResult, folder: str, columns: Sequence[str], digest: str) -> str:
    """Store one shard's result under `folder`; returns the JSON's URI. Same rows, same bytes, same names."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "request": digest,
        "shards": result.shards,
        "index": result.index,
        "firstRow": result.counts.first_row,
        "rows": result.counts.rows,
        "counted": result.counts.counted,
        "reached": result.counts.reached,
        "keptRows": result.kept_rows,
        "missing": result.missing.tolist(),
        "categorical": list(result.categorical),
        "kindsKnown": result.kinds_known,
        "dictionaries": {str(j): values for j, values in result.dictionaries.items()},
    }
    if result.held is not None:
        document["held"] = parts.write_table(folder, _held_table(result, columns))
    if result.splits is not None:
        document["splits"] = {split: _split_document(s) for split, s in result.splits.items()}
    if result.sample is not None:
        document["sample"] = parts.write_table(
            folder, _sample_table(result.sample, columns, result.categorical)
        )
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    name = f"shard-{result.index}-of-{result.shards}-{hashlib.sha256(body).hexdigest()}.json"
    uri = storage.join(folder, name)
    storage.write_bytes(uri, body, "application/json")
    return uri


def _split_document(split: SplitResult) -> dict[str, Any]:
    return {
        "rows": split.rows,
        "parts": [p.to_dict() for p in split.parts],
        "moments": [[level, index, None if m is None else m.to_dict()] for level, index, m in split.moments],
        "hashes": [[level, index, None if h is None else h.hex()] for level, index, h in split.hashes],
        "seen": {str(j): sorted(texts) for j, texts in split.seen.items()},
    }


def _held_table(result: ShardResult, columns: Sequence[str]) -> pa.Table:
    held = result.held
    assert held is not None
    arrays: list[pa.Array] = [pa.array(held.rows, pa.int64())]
    for j in range(len(columns)):
        if j in result.dictionaries:
            codes = held.columns[j]
            missing = np.isnan(codes)
            indices = pa.array(np.where(missing, 0, codes).astype(np.int32), mask=missing)
            texts = pa.array(result.dictionaries[j], pa.string())
            arrays.append(pa.DictionaryArray.from_arrays(indices, texts).cast(pa.string()))
        else:
            arrays.append(pa.array(np.ascontiguousarray(held.columns[j])))
    return pa.Table.from_arrays(arrays, names=[ROW_COLUMN, *(f"c{j}" for j in range(len(columns)))])


def _sample_table(
    sample: sampling.BottomSample, columns: Sequence[str], categorical: Sequence[int]
) -> pa.Table:
    """The sampled rows in hash order; category columns blank (their codes were the shard's own)."""
    order = sample.order()
    rows = sample.rows[order]
    rows[:, list(categorical)] = np.nan
    arrays = [pa.array(sample.numbers[order], pa.int64())]
    arrays += [pa.array(np.ascontiguousarray(rows[:, j])) for j in range(len(columns))]
    return pa.Table.from_arrays(arrays, names=[ROW_COLUMN, *(f"c{j}" for j in range(len(columns)))])


def read_all(
    folder: str, shards: int, digest: str, columns: Sequence[str], options: PrepareOptions
) -> list[ShardResult]:
    """Every shard's result in index order; refuses a missing, extra or foreign shard by name."""
    names = storage.list_folder(folder)
    results = []
    for index in range(shards):
        prefix = f"shard-{index}-of-{shards}-"
        found = sorted({n for n in names if n.startswith(prefix) and n.endswith(".json")})
        if len(found) != 1:
            raise DataError(f"{folder}: expected one {prefix}<sha256>.json, found {len(found)}")
        results.append(_read_one(folder, found[0], shards, index, digest, columns, options))
    return results


def _read_one(
    folder: str,
    name: str,
    shards: int,
    index: int,
    digest: str,
    columns: Sequence[str],
    options: PrepareOptions,
) -> ShardResult:
    body = storage.read_bytes(storage.join(folder, name))
    where = f"{folder}/{name}"
    if not name.endswith(f"-{hashlib.sha256(body).hexdigest()}.json"):
        raise DataError(f"{where}: its content does not hash to the sha256 in its name")
    width = len(columns)
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise DataError(f"{where}: not a partial preparation document ({exc})") from exc
    _check_request(where, document, {"format": FORMAT, "request": digest, "shards": shards, "index": index})
    try:
        counts = ShareCounts(
            int(document["firstRow"]), int(document["rows"]), document["counted"], document["reached"]
        )
        dictionaries = {int(j): [str(v) for v in values] for j, values in document["dictionaries"].items()}
        result = ShardResult(
            index,
            shards,
            counts,
            int(document["keptRows"]),
            np.array(document["missing"], dtype=np.int64),
            tuple(int(j) for j in document["categorical"]),
            dictionaries,
            kinds_known=bool(document["kindsKnown"]),
        )
        if result.missing.shape != (width,):
            raise ValueError(f"missing counts for {width} columns expected")
        if "splits" in document:
            result.splits = {split: _read_split(document["splits"][split], width) for split in SPLITS}
        if "sample" in document:
            result.sample_at = (folder, str(document["sample"]))
        if "held" in document:
            result.held_at = (folder, str(document["held"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{where}: not a partial preparation document ({exc})") from exc
    except parts.PartError as exc:
        raise DataError(str(exc)) from exc
    return result


def _check_request(where: str, document: Any, expected: Mapping[str, Any]) -> None:
    """A shard's result belongs to this run: the same source (as described when it was read: its size and
    time), options, shard count and index."""
    found = document if isinstance(document, dict) else {}
    wrong = [key for key, value in expected.items() if found.get(key) != value]
    if wrong == ["request"]:
        raise DataError(
            f"{where} was written for other inputs: the source changed while it was read (or the options "
            "did); prepare it again"
        )
    if wrong:
        raise DataError(f"{where}: {wrong[0]} is {found.get(wrong[0])!r}, not {expected[wrong[0]]!r}")


def _read_split(document: Mapping[str, Any], width: int) -> SplitResult:
    return SplitResult(
        int(document["rows"]),
        [parts.PartRecord.from_dict(p) for p in document["parts"]],
        [
            (int(level), int(index), None if m is None else ColumnMoments.from_dict(m, width))
            for level, index, m in document["moments"]
        ],
        [
            (int(level), int(index), None if h is None else bytes.fromhex(h))
            for level, index, h in document["hashes"]
        ],
        {int(j): set(texts) for j, texts in document["seen"].items()},
    )


def held_of(result: ShardResult) -> Held | None:
    """A share's held rows, from memory or (in the reduce) from its partial result."""
    if result.held is None and result.held_at is not None:
        try:
            return _read_held(*result.held_at, result)
        except parts.PartError as exc:
            raise DataError(str(exc)) from exc
    return result.held


def sample_of(result: ShardResult, seed: int) -> sampling.BottomSample | None:
    """A share's sample of its train rows, from memory or (in the reduce) from its partial result."""
    if result.sample is None and result.sample_at is not None:
        try:
            return _read_sample(*result.sample_at, len(result.missing), seed)
        except parts.PartError as exc:
            raise DataError(str(exc)) from exc
    return result.sample


def _read_sample(folder: str, name: str, width: int, seed: int) -> sampling.BottomSample:
    table = parts.read_table(folder, name)
    sample = sampling.BottomSample(width, seed)
    numbers = table.column(ROW_COLUMN).to_numpy()
    rows = np.column_stack([table.column(f"c{j}").to_numpy(zero_copy_only=False) for j in range(width)])
    sample.add(numbers, rows.reshape(len(numbers), width))
    return sample


def _read_held(folder: str, name: str, result: ShardResult) -> Held:
    """Held rows back as codes into the shard's own dictionaries."""
    table = parts.read_table(folder, name)
    width = len(result.missing)
    columns = np.empty((width, table.num_rows))
    for j in range(width):
        column = table.column(f"c{j}")
        if j in result.dictionaries:
            position = {text: k for k, text in enumerate(result.dictionaries[j])}
            texts = column.to_pylist()
            columns[j] = [np.nan if t is None else position[t] for t in texts]
        else:
            columns[j] = column.to_numpy(zero_copy_only=False)
    return Held(table.column(ROW_COLUMN).to_numpy().astype(np.int64), columns)
