"""Prepared datasets: schema checks, streaming cleaning, a seeded split, statistics and a content version.

`prepare_source` reads a source once, chunk by chunk, in memory bounded by a chunk and a part (never
by the row count), and writes:

- the splits as Parquet parts under `<output>/parts/` (see `marina.data.parts`: named by their content,
  so they are written before the version is known and never rewritten);
- `<output>/<version>/dataset.json`: schema, split, cleaning report, fill values, statistics, the
  parts of each split, quantile edges of the train split (for drift monitoring) and lineage.

In shards (a Dataset's `parallelism`, an Indexed Job): pod i of N runs `prepare_shard` on its share of
the source (`marina.data.shares`: whole part groups of source rows, cut near even byte offsets) and
writes its parts and a partial result; `reduce_shards` merges the partial results in index order into
exactly what one pod (`prepare_source`, shard 0 of 1 and its reduce) makes.

The version (format 3, `marina.dev/dataset/v3`) is the sha256 of a canonical document: the schema, the
fill values, the leaf size and, per split, the row count and the root of a hash tree over fixed leaves
of source rows (`marina.data.folds`, `marina.data.parts`). The statistics are folded along the same
tree. Neither depends on the Parquet library, the chunk, block or part size, or the parallelism, and a
version's folder is never overwritten.

Split: a table of at most `shares.SMALL_TABLE_CELLS` kept cells is split by a seeded permutation,
exactly ceil(rows · testFraction) rows to test. A larger one is split by a seeded hash of each row's
number in the source (`marina.data.sampling`): every row goes to test independently with probability
testFraction, so no permutation of all rows is needed and the split is the same whatever the chunks
or shards.

Cleaning: `drop` and `fail` act per chunk. `mean` and `median` keep the missing cells in the parts
and record the fill values, computed from the train split only: the mean from the leaf tree, the
median exactly by passes over the stored train parts once every shard has written them (see
`marina.data.order_statistics`); every reader (`StoredDataset.chunks`) fills them in.

Datasets prepared in earlier formats still load and verify: the first (train.csv and test.csv in the
version folder) and the second (`marina.dev/dataset/v2`: row-major parts, each split hashed over its
rows in order, category cells as codes into the manifest's dictionaries). Preparing the same source
again gives a format-3 version, so a new version id.
Row numbers in error messages count data rows from 1 (a CSV header is not a row).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from marina import contract, storage
from marina.data import parts, sampling, shares
from marina.data.folds import DyadicFold
from marina.data.moments import ColumnMoments, merged
from marina.data.options import PrepareOptions as PrepareOptions
from marina.data.options import select_features as select_features
from marina.data.options import split_indices as split_indices
from marina.data.order_statistics import exact_medians
from marina.data.readahead import ahead
from marina.data.sources import ShareCounts, Source, memory_source
from marina.data.table import DataError, Table
from marina.system.clock import utc_now

FORMAT = "marina.dev/dataset/v3"
V2_FORMAT = "marina.dev/dataset/v2"
LEGACY_FORMAT = "marina.dev/dataset/v1"
MANIFEST_NAME = "dataset.json"
TRAIN_NAME = "train.csv"
TEST_NAME = "test.csv"
VERSION_LENGTH = contract.DATASET_VERSION_LENGTH


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset in memory: each matrix holds the feature columns, then the target as its last
    column, with missing cells already filled."""

    features: tuple[str, ...]
    target: str
    train: np.ndarray
    test: np.ndarray
    sha256: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.features, self.target)

    @property
    def x_train(self) -> np.ndarray:
        return self.train[:, :-1]

    @property
    def y_train(self) -> np.ndarray:
        return self.train[:, -1]

    @property
    def x_test(self) -> np.ndarray:
        return self.test[:, :-1]

    @property
    def y_test(self) -> np.ndarray:
        return self.test[:, -1]

    @property
    def version(self) -> str:
        return self.sha256[:VERSION_LENGTH]


@dataclass(frozen=True)
class CleaningReport:
    """What cleaning did: rows in and dropped, missing values per column, imputed fill values."""

    strategy: str
    rows_in: int
    rows_dropped: int
    missing_by_column: dict[str, int]
    fill_values: dict[str, float] = field(default_factory=dict)
    imputed_train: dict[str, int] = field(default_factory=dict)
    imputed_test: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "rowsIn": self.rows_in,
            "rowsDropped": self.rows_dropped,
            "missingByColumn": self.missing_by_column,
            "fillValues": self.fill_values,
        }


@dataclass
class _Split:
    """One split of the whole table: the shards' splits merged in row order."""

    rows: int
    parts: list[parts.PartRecord]
    moments: ColumnMoments
    sha256: str
    seen: dict[int, set[str]]
    kept: list[tuple[np.ndarray, dict[int, tuple[str, ...]]]]


@dataclass
class _Table:
    """What the shards found, as one pod would have: counts, the split, categories, the train sample."""

    columns: tuple[str, ...]
    options: PrepareOptions
    shards: int
    categorical: tuple[int, ...]
    rows_in: int
    kept_rows: int
    missing: np.ndarray
    method: str
    train: _Split
    test: _Split
    sample: sampling.BottomSample
    small: tuple[np.ndarray, np.ndarray] | None = None  # (train, test) rows of a permuted small table


def merge_shards(
    results: Sequence[shares.ShardResult], columns: Sequence[str], options: PrepareOptions, folder: str | None
) -> _Table:
    """The shards' results in index order as one table's: checks that their shares meet, splits the rows
    the shards held (by permutation when the whole table is small, else by row hash, as one pod does)
    and folds every leaf tree."""
    names = tuple(columns)
    _check_shares(results)
    categorical = _categorical(results, names)
    texts = {j: set().union(*(r.dictionaries.get(j, ()) for r in results)) for j in categorical}
    for j, values in texts.items():
        if len(values) > options.max_categories:
            raise DataError(
                f"column {names[j]!r} has more than {options.max_categories} distinct values ({len(values)} "
                "across the shards): an identifier is not a category; leave it out of features or raise "
                "cleaning.maxCategories"
            )
    rows_in = sum(r.counts.rows for r in results)
    kept = sum(r.kept_rows for r in results)
    if rows_in == 0:
        raise DataError("the data has no rows")
    if kept < 2:
        raise DataError(f"only {kept} usable row(s) after removing missing values; need at least 2")
    schema = parts.Schema(names, frozenset(categorical))
    small = None
    if kept * len(names) <= shares.SMALL_TABLE_CELLS:
        split_results, sample, small = _permuted(results, schema, options, folder, rows_in)
        method = "permutation"
    else:
        split_results, sample = _hashed(results, schema, options, folder)
        method = "hash"
    missing = np.sum([r.missing for r in results], axis=0).astype(np.int64)
    merged = {split: _merged_split([s[split] for s in split_results], len(names)) for split in shares.SPLITS}
    for split, part in merged.items():
        if part.rows == 0:
            raise DataError(
                f"the seeded split left the {split} split empty ({kept} usable rows, test "
                f"fraction {options.test_fraction}); use more rows or another test fraction"
            )
    return _Table(
        names,
        options,
        len(results),
        categorical,
        rows_in,
        kept,
        missing,
        method,
        merged["train"],
        merged["test"],
        sample,
        small,
    )


def _check_shares(results: Sequence[shares.ShardResult]) -> None:
    """Shares must meet: each begins where the last one with rows ended, and where a shard counted the rows
    before its cut, the shard before it read as many."""
    expected = 0
    for before, result in zip([None, *results[:-1]], results, strict=True):
        counted = result.counts.counted
        reached = before.counts.reached if before is not None else None
        if counted is not None and reached is not None and counted != reached:
            raise DataError(
                f"shard {result.index} counted {counted} source rows before its share, shard "
                f"{result.index - 1} read {reached}: the source changed while it was read, or its records "
                "end in a way the count does not know (a carriage return alone?); prepare it with "
                "parallelism 1"
            )
        if result.counts.rows:
            if result.counts.first_row != expected:
                raise DataError(
                    f"shard {result.index}'s rows begin at {result.counts.first_row}, not at {expected} "
                    "where the shards before it ended"
                )
            expected = result.end_row


def _categorical(results: Sequence[shares.ShardResult], names: Sequence[str]) -> tuple[int, ...]:
    kinds = {r.categorical for r in results if r.kinds_known}
    if len(kinds) > 1:
        raise DataError(
            "the shards decided the text columns differently: "
            + "; ".join(f"{', '.join(names[j] for j in k) or 'none'}" for k in sorted(kinds))
        )
    return kinds.pop() if kinds else ()


def _permuted(
    results: Sequence[shares.ShardResult],
    schema: parts.Schema,
    options: PrepareOptions,
    folder: str | None,
    rows_in: int,
) -> tuple[list[dict[str, shares.SplitResult]], sampling.BottomSample, tuple[np.ndarray, np.ndarray]]:
    """A small table (every shard held its rows): an exact seeded permutation of all kept rows."""
    dictionaries: dict[int, list[str]] = {j: [] for j in schema.categorical}
    rows, blocks = [], []
    for result in results:
        held = shares.held_of(result)
        if held is None:
            raise DataError(f"shard {result.index} split rows of a table small enough to permute")
        rows.append(held.rows)
        blocks.append(_recoded(held.columns, result.dictionaries, dictionaries))
    numbers = np.concatenate(rows)
    columns = np.hstack(blocks) if blocks else np.empty((schema.width, 0))
    train_index, test_index = split_indices(numbers.size, options.test_fraction, options.seed)
    train, test = np.zeros(numbers.size, dtype=bool), np.zeros(numbers.size, dtype=bool)
    train[train_index], test[test_index] = True, True
    splitter = shares.Splitter(folder, schema, options, 0)
    splitter.assign(numbers, columns, train, test, dictionaries)
    split = splitter.close(rows_in, dictionaries)
    small = (columns[:, train_index].T, columns[:, test_index].T)
    return [split], splitter.sample, small


def _recoded(
    columns: np.ndarray, own: Mapping[int, Sequence[str]], common: dict[int, list[str]]
) -> np.ndarray:
    """A shard's held columns with its category codes as codes into `common` (extended as needed)."""
    if not common:
        return columns
    out = columns.copy()
    for j, texts in common.items():
        position = {text: k for k, text in enumerate(texts)}
        for text in own.get(j, ()):
            if text not in position:
                position[text] = len(texts)
                texts.append(text)
        lookup = np.array([position[text] for text in own.get(j, ())] or [0], dtype=np.float64)
        codes = columns[j]
        present = ~np.isnan(codes)
        out[j, present] = lookup[codes[present].astype(np.intp)]
    return out


def _hashed(
    results: Sequence[shares.ShardResult], schema: parts.Schema, options: PrepareOptions, folder: str | None
) -> tuple[list[dict[str, shares.SplitResult]], sampling.BottomSample]:
    """A large table: the shards' own splits, and the held rows of small shards split here by row hash."""
    splits = []
    sample = sampling.BottomSample(schema.width, options.seed)
    for result in results:
        held = shares.held_of(result)  # one shard's rows or sample at a time
        if held is not None:
            splitter = shares.Splitter(folder, schema, options, result.counts.first_row)
            splitter.by_hash(held.rows, held.columns, None, result.dictionaries)
            splits.append(splitter.close(result.end_row, result.dictionaries))
            own = splitter.sample
        else:
            found = shares.sample_of(result, options.seed)
            assert result.splits is not None and found is not None
            splits.append(result.splits)
            own = found
        sample.add(own.numbers, own.rows)
    return splits, sample


def _merged_split(results: Sequence[shares.SplitResult], width: int) -> _Split:
    moments, hashes = parts.moments_fold(), parts.hash_fold()
    seen: dict[int, set[str]] = {}
    for result in results:
        moments.push_all(result.moments)
        hashes.push_all(result.hashes)
        for j, texts in result.seen.items():
            seen.setdefault(j, set()).update(texts)
    root = hashes.root()
    return _Split(
        sum(r.rows for r in results),
        [p for r in results for p in r.parts],
        moments.root() or ColumnMoments(width),
        root.hex() if root is not None else "",
        seen,
        [k for r in results for k in r.kept],
    )


@dataclass(frozen=True)
class Prepared:
    """What `prepare_source` made: the manifest, where it is stored, and whether it already was."""

    description: dict[str, Any]
    uri: str | None
    reused: bool
    data: PreparedDataset | None = None
    report: CleaningReport | None = None


def _columns(source: Source, options: PrepareOptions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    features = select_features(source.columns, options)
    return features, (*features, options.target)


def _parts_folder(output: str | None) -> str | None:
    return storage.join(output, parts.PARTS_FOLDER) if output is not None else None


def prepare_source(
    source: Source,
    options: PrepareOptions,
    output: str | None,
    name: str,
    on_chunk: Callable[[int], None] | None = None,
) -> Prepared:
    """Read, clean, split, summarise and (with an `output`) store a source in this pod: shard 0 of 1 and
    its reduce; `on_chunk(rows so far)` is called after each chunk (progress). Without an output the
    dataset is returned in memory."""
    _, columns = _columns(source, options)
    folder = _parts_folder(output)
    result = run_share(source, columns, options, folder, 1, 0, on_chunk)
    return finish(merge_shards([result], columns, options, folder), source, output, name)


def run_share(
    source: Source,
    columns: Sequence[str],
    options: PrepareOptions,
    folder: str | None,
    shards: int,
    index: int,
    on_chunk: Callable[[int], None] | None = None,
) -> shares.ShardResult:
    """One shard's pass over its share of the source, its parts written into `folder`."""
    counts = ShareCounts()
    chunks = source.share(columns, shards, index, parts.group_rows(len(columns)), counts)
    return shares.run(chunks, columns, options, folder, index, shards, counts, on_chunk)


def prepare_shard(
    source: Source,
    options: PrepareOptions,
    output: str,
    partials: str,
    shards: int,
    index: int,
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[str, shares.ShardResult]:
    """Shard `index` of `shards`: its parts under `<output>/parts/`, its partial result under `partials`."""
    _, columns = _columns(source, options)
    result = run_share(source, columns, options, _parts_folder(output), shards, index, on_chunk)
    digest = shares.request_digest(_spec_of(source), columns, options, shards)
    return shares.write(result, partials, columns, digest), result


def reduce_shards(
    source: Source, options: PrepareOptions, output: str, name: str, partials: str, shards: int
) -> Prepared:
    """The shards' results merged, the rows they held split and written, the manifest written once."""
    _, columns = _columns(source, options)
    digest = shares.request_digest(_spec_of(source), columns, options, shards)
    results = shares.read_all(partials, shards, digest, columns, options)
    folder = _parts_folder(output)
    return finish(merge_shards(results, columns, options, folder), source, output, name)


def _spec_of(source: Source) -> str:
    return json.dumps(source.description, sort_keys=True)


def finish(table: _Table, source: Source, output: str | None, name: str) -> Prepared:
    """Fill values, statistics, the version and the manifest of a merged table; stored with an output."""
    columns = table.columns
    fills = _fill_values(table, _parts_folder(output))
    report = _report(table, fills)
    document = _version_document(table, report.fill_values)
    sha = hashlib.sha256(_canonical_json(document)).hexdigest()
    description = _manifest(table, report, name, source.description, sha, fills)
    if output is None:
        train, test = (_filled(_kept_rows(s.kept, len(columns)), fills) for s in (table.train, table.test))
        data = PreparedDataset(columns[:-1], columns[-1], train, test, sha)
        return Prepared(description, None, False, data, report)
    uri, reused = write_manifest(description, output)
    return Prepared(description, uri, reused, None, report)


def _kept_rows(kept: Sequence[tuple[np.ndarray, Any]], width: int) -> np.ndarray:
    if not kept:
        return np.empty((0, width))
    return np.ascontiguousarray(np.hstack([block for block, _ in kept]).T)


def prepare(table: Table, options: PrepareOptions) -> tuple[PreparedDataset, CleaningReport]:
    """A table in memory prepared in memory (what `prepare_source` does, without storage)."""
    prepared = prepare_source(memory_source(table, {"type": "memory"}, "memory"), options, None, "memory")
    assert prepared.data is not None and prepared.report is not None
    return prepared.data, prepared.report


def _fill_values(table: _Table, folder: str | None) -> np.ndarray:
    """Per column: the train split's mean or exact median of its present values. NaN (never filled) for
    the target and for category columns, whose missing cells encode as no category at all."""
    strategy = table.options.missing
    columns = table.columns
    fills = np.full(len(columns), np.nan)
    if strategy not in ("mean", "median"):
        return fills
    numeric = np.array([j for j in range(len(columns) - 1) if j not in table.categorical], dtype=np.intp)
    moments = table.train.moments
    empty = [int(j) for j in numeric if moments.count[j] == 0]
    if empty:
        raise DataError(
            f"column {columns[empty[0]]!r}: every training value is missing, cannot impute the {strategy}"
        )
    if strategy == "mean":  # the leaf tree's mean: the same bits whatever the chunks, parts or shards
        fills[numeric] = moments.mean[numeric]
    elif table.small is not None:
        fills[numeric] = np.nanmedian(table.small[0][:, numeric], axis=0)
    elif numeric.size:
        names = [columns[j] for j in numeric]

        def read() -> Iterator[np.ndarray]:
            if folder is None:
                for block, _ in table.train.kept:
                    yield block[numeric].T
                return
            uris = [storage.join(folder, record.name) for record in table.train.parts]
            for values in ahead(uris, lambda uri: parts.read_numbers(uri, names)):
                yield values.T

        fills[numeric] = exact_medians(
            read, moments.count[numeric], moments.minimum[numeric], moments.maximum[numeric]
        )
    return fills


def _filled(values: np.ndarray, fills: np.ndarray) -> np.ndarray:
    if not np.isnan(fills).all() and np.isnan(values).any():
        return np.where(np.isnan(values), fills, values)
    return values


def _report(table: _Table, fills: np.ndarray) -> CleaningReport:
    imputing = table.options.missing in ("mean", "median")
    columns = table.columns
    features = columns[:-1]
    return CleaningReport(
        strategy=table.options.missing,
        rows_in=table.rows_in,
        rows_dropped=table.rows_in - table.kept_rows,
        missing_by_column={c: int(n) for c, n in zip(columns, table.missing, strict=True)},
        fill_values={c: float(v) for c, v in zip(features, fills[:-1], strict=True) if not math.isnan(v)}
        if imputing
        else {},
        imputed_train=_counts(columns, table.train.moments.missing) if imputing else {},
        imputed_test=_counts(columns, table.test.moments.missing) if imputing else {},
    )


def _counts(columns: Sequence[str], counts: np.ndarray) -> dict[str, int]:
    return {c: int(n) for c, n in zip(columns, counts, strict=True)}


def inputs_of(table: _Table) -> list[dict[str, Any]]:
    """The model inputs: numbers, and categories with the values the train split holds, sorted (the
    one-hot columns training fits; a value seen only in test encodes as no category)."""
    inputs: list[dict[str, Any]] = []
    for j, name in enumerate(table.columns[:-1]):
        if j not in table.categorical:
            inputs.append({"name": name, "type": "number"})
            continue
        categories = sorted(table.train.seen.get(j, ()))
        if not categories:
            raise DataError(f"column {name!r}: every training value is missing, so it has no category")
        inputs.append({"name": name, "type": "category", "categories": categories})
    return inputs


def _version_document(table: _Table, fills: dict[str, float]) -> dict[str, Any]:
    columns = table.columns
    return {
        "format": FORMAT,
        "features": list(columns[:-1]),
        "target": columns[-1],
        "fills": fills,
        "inputs": inputs_of(table),
        "leafRows": parts.leaf_rows(len(columns)),
        "train": {"rows": table.train.rows, "sha256": table.train.sha256},
        "test": {"rows": table.test.rows, "sha256": table.test.sha256},
    }


def _canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _statistics(table: _Table, fills: np.ndarray) -> dict[str, Any]:
    """Statistics of the train split (kept for drift monitoring) and of all prepared rows, after filling."""
    columns = table.columns
    filling = not np.isnan(fills).all()
    cells = (
        (lambda m: np.where(np.isnan(fills), 0, m.missing))
        if filling
        else (lambda m: np.zeros_like(m.missing))
    )
    safe = np.nan_to_num(fills)
    train = table.train.moments
    both = merged(train, table.test.moments)
    summaries = {
        "train": train.filled(safe, cells(train)).summary(columns, cells(train)),
        "all": both.filled(safe, cells(both)).summary(columns, cells(both)),
    }
    for split, moments in (("train", train), ("all", both)):
        for j in table.categorical:  # moments of codes mean nothing: counts and the number of categories
            name = columns[j]
            seen = table.train.seen.get(j, set()) | (
                table.test.seen.get(j, set()) if split == "all" else set()
            )
            summaries[split][name] = {
                "count": int(moments.count[j] + moments.missing[j]),
                "missing": int(moments.missing[j]),
                "categories": len(seen),
            }
    return summaries


def _quantile_edges(table: _Table, fills: np.ndarray) -> dict[str, Any]:
    from marina.data.distribution import quantile_edges_of_columns

    features = table.columns[:-1]
    sample = _filled(table.sample.values(), fills)
    numeric = [j for j in range(len(features)) if j not in table.categorical]
    edges = quantile_edges_of_columns(sample[:, numeric])
    return {
        "sampleRows": int(sample.shape[0]),
        "features": {features[j]: e.tolist() for j, e in zip(numeric, edges, strict=True)},
    }


def _manifest(
    table: _Table,
    report: CleaningReport,
    name: str,
    source: dict[str, Any],
    sha: str,
    fills: np.ndarray,
) -> dict[str, Any]:
    """The content of dataset.json."""
    from marina import __version__

    columns, options = table.columns, table.options
    return {
        "format": FORMAT,
        "name": name,
        "version": sha[:VERSION_LENGTH],
        "sha256": sha,
        "columns": list(columns),
        "features": list(columns[:-1]),
        "target": columns[-1],
        "rows": table.train.rows + table.test.rows,
        "trainRows": table.train.rows,
        "testRows": table.test.rows,
        "split": {"seed": options.seed, "testFraction": options.test_fraction, "method": table.method},
        "cleaning": report.to_dict(),
        "statistics": _statistics(table, fills),
        "quantileEdges": _quantile_edges(table, fills),
        "inputs": inputs_of(table),
        "dictionaries": {
            columns[j]: sorted(table.train.seen.get(j, set()) | table.test.seen.get(j, set()))
            for j in table.categorical
        },
        "parts": {
            "folder": f"../{parts.PARTS_FOLDER}",
            "leafRows": parts.leaf_rows(len(columns)),
            **{
                split: {"sha256": s.sha256, "parts": [p.to_dict() for p in s.parts]}
                for split, s in (("train", table.train), ("test", table.test))
            },
        },
        "shards": table.shards,
        "source": source,
        "codeVersion": __version__,
        "created": utc_now(),
    }


def write_manifest(description: dict[str, Any], output: str) -> tuple[str, bool]:
    """Write dataset.json under `<output>/<version>/`; returns (folder uri, whether it already existed).

    Content addressing means an existing manifest for the same version describes the same data, so it
    is never rewritten; one describing other content means corruption and is reported, not replaced."""
    folder = storage.join(output, str(description["version"]))
    manifest_uri = storage.join(folder, MANIFEST_NAME)
    if storage.exists(manifest_uri):
        if _stored_sha256(manifest_uri) != description["sha256"]:
            raise DataError(f"{manifest_uri} describes different content; refusing to overwrite it")
        return folder, True
    body = json.dumps(description, indent=2, sort_keys=True, allow_nan=False).encode()
    storage.write_bytes(manifest_uri, body + b"\n", "application/json")
    return folder, False


def _stored_sha256(manifest_uri: str) -> str | None:
    try:
        return str(json.loads(storage.read_bytes(manifest_uri))["sha256"])
    except (ValueError, KeyError, TypeError):
        return None


# --- reading a prepared dataset back --------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDataset:
    """A prepared dataset in storage, read split by split in chunks (or whole, with `data`)."""

    uri: str
    description: dict[str, Any]
    features: tuple[str, ...]
    target: str
    legacy: PreparedDataset | None = None

    @property
    def name(self) -> str:
        return str(self.description.get("name", ""))

    @property
    def sha256(self) -> str:
        return str(self.description["sha256"])

    @property
    def version(self) -> str:
        return self.sha256[:VERSION_LENGTH]

    @property
    def columns(self) -> tuple[str, ...]:
        """The stored columns: the raw features (category columns as codes), then the target."""
        return (*self.features, self.target)

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """The model's inputs (numbers and categories); older datasets have numbers only."""
        listed = self.description.get("inputs")
        return list(listed) if listed else [{"name": name, "type": "number"} for name in self.features]

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        """The columns a model is fitted on: numbers, and one 0/1 column per train category."""
        from marina.data.encoding import expand

        return tuple(expand(self.inputs))

    @property
    def has_categories(self) -> bool:
        return any(item["type"] == "category" for item in self.inputs)

    @property
    def format(self) -> str:
        return str(self.description.get("format", V2_FORMAT))

    @cached_property
    def _one_hot(self) -> list[tuple[int, np.ndarray, int]] | None:
        """Per category column: (stored position, position of each code among the train categories or -1,
        number of categories)."""
        if not self.has_categories:
            return None
        dictionaries = self.dictionaries
        plan = []
        for j, item in enumerate(self.inputs):
            if item["type"] != "category":
                continue
            position = {value: k for k, value in enumerate(item["categories"])}
            lookup = np.array(
                [position.get(value, -1) for value in dictionaries[item["name"]]], dtype=np.intp
            )
            plan.append((j, lookup, len(item["categories"])))
        return plan

    def _expanded(self, values: np.ndarray) -> np.ndarray:
        """Stored rows (codes for categories) as the model's design: one-hot blocks in input order."""
        plan = self._one_hot
        if plan is None:
            return values
        blocks: list[np.ndarray] = []
        start = 0
        for j, lookup, width in plan:
            blocks.append(values[:, start:j])
            codes = values[:, j]
            present = ~np.isnan(codes)
            positions = np.full(codes.shape[0], -1, dtype=np.intp)
            positions[present] = lookup[codes[present].astype(np.intp)]
            hot = np.zeros((codes.shape[0], width))
            rows = np.flatnonzero(positions >= 0)
            hot[rows, positions[rows]] = 1.0
            blocks.append(hot)
            start = j + 1
        blocks.append(values[:, start:])
        return np.hstack(blocks)

    def rows(self, split: str) -> int:
        if self.legacy is not None:
            return int((self.legacy.train if split == "train" else self.legacy.test).shape[0])
        return _rows_of(self.description, split)

    @property
    def fills(self) -> np.ndarray:
        values = self.description.get("cleaning", {}).get("fillValues", {}) or {}
        return np.array([float(values.get(name, math.nan)) for name in self.features] + [math.nan])

    @cached_property
    def schema(self) -> parts.Schema:
        """The stored columns of a format-3 part, the category ones holding text."""
        categorical = frozenset(j for j, item in enumerate(self.inputs) if item["type"] == "category")
        return parts.Schema(self.columns, categorical)

    @cached_property
    def _categories(self) -> dict[int, list[str]]:
        """Per category column's position, the texts a format-3 part's cells are read as codes into."""
        dictionaries = self.dictionaries
        return {j: dictionaries[name] for j, name in enumerate(self.columns) if name in dictionaries}

    def _records(self, split: str) -> list[parts.PartRecord]:
        try:
            return [parts.PartRecord.from_dict(r) for r in self.description["parts"][split]["parts"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"dataset at {self.uri}: its {split} parts are not listed properly ({exc})"
            ) from exc

    def chunks(self, split: str) -> Iterator[np.ndarray]:
        """The split's rows (features, then the target), filled, chunk by chunk. A full read checks the
        content against the manifest's sha256 at its end, before the caller can use a partial result. Rows
        of format 3 come column-major (Fortran-ordered arrays)."""
        if self.legacy is not None:
            yield self.legacy.train if split == "train" else self.legacy.test
            return
        if self.format != FORMAT:
            yield from self._chunks_v2(split)
            return
        expected = str(self.description["parts"][split]["sha256"])
        fold = parts.hash_fold()
        for read in ahead(self._records(split), lambda record: self._read(record, verify=True)):
            _push_leaves(fold, read.nodes)
            yield self._design(read.columns)
        root = fold.root()
        actual = root.hex() if root is not None else ""
        if actual != expected:
            raise DataError(
                f"dataset at {self.uri} is corrupted: its {split} rows hash to {actual}, not {expected}"
            )

    def _read(self, record: parts.PartRecord, verify: bool) -> parts.PartRead:
        try:
            return parts.read_leaves(
                storage.join(self.parts_folder, record.name), self.schema, record, self._categories, verify
            )
        except parts.PartError as exc:
            raise DataError(f"dataset at {self.uri} is corrupted: {exc}") from exc

    def _design(self, columns: np.ndarray) -> np.ndarray:
        """A format-3 part's columns (columns x rows) as rows of the model's design, filled."""
        return self._expanded(_filled(columns.T, self.fills))

    def _chunks_v2(self, split: str) -> Iterator[np.ndarray]:
        entry = self.description["parts"][split]
        digest = hashlib.sha256()

        def read(record: Mapping[str, Any]) -> list[np.ndarray]:
            """One part, read, hashed and filled by the read-ahead thread in part order."""
            blocks = self._part(str(record["name"]), verify=False)
            for values in blocks:
                digest.update(values.data)
            return [self._expanded(_filled(values, self.fills)) for values in blocks]

        for blocks in ahead(entry["parts"], read):
            yield from blocks
        if digest.hexdigest() != entry["sha256"]:
            raise DataError(
                f"dataset at {self.uri} is corrupted: its {split} rows hash to {digest.hexdigest()}, "
                f"not {entry['sha256']}"
            )

    @property
    def parts_folder(self) -> str:
        """Where the parts are: `parts.folder` of dataset.json, relative to this version's folder."""
        return _normalised(storage.join(self.uri, str(self.description["parts"]["folder"])))

    def shard_chunks(self, split: str, shards: int, index: int) -> Iterator[tuple[int, np.ndarray]]:
        """(number of its first row in the split, rows) for every `shards`-th part from `index`: one shard's
        share. Each part is checked against the sha256 its name carries (the split's hash needs them all)."""
        if self.legacy is not None:
            raise DataError(
                f"dataset at {self.uri} is stored in the first format (train.csv): sharded training needs "
                "Parquet parts; prepare it again"
            )
        records = self.part_records(split)
        offsets = np.cumsum([0, *(int(r["rows"]) for r in records)])

        def read(position: int) -> tuple[int, list[np.ndarray]]:
            return int(offsets[position]), [self._expanded(v) for v in self.raw_part(split, position)]

        for row, blocks in ahead(range(index, len(records), shards), read):
            for values in blocks:
                yield row, values
                row += values.shape[0]

    def part_records(self, split: str) -> list[dict[str, Any]]:
        """The split's parts in row order: {name, rows}."""
        return list(self.description["parts"][split]["parts"])

    @cached_property
    def dictionaries(self) -> dict[str, list[str]]:
        """Per category column, the values its codes stand for: format 2 stores codes into these, format 3
        stores texts, read as codes into every value either split holds, sorted."""
        return {name: list(values) for name, values in self.description.get("dictionaries", {}).items()}

    def raw_part(self, split: str, position: int) -> list[np.ndarray]:
        """One part of a split as rows (category columns as codes into `dictionaries`), missing cells
        filled, checked against the hash its name carries."""
        if self.format == FORMAT:
            return [_filled(self._read(self._records(split)[position], True).columns.T, self.fills)]
        name = str(self.part_records(split)[position]["name"])
        return [_filled(values, self.fills) for values in self._part(name, verify=True)]

    def shard_rows(self, split: str, shards: int, index: int) -> int:
        """The rows of one shard's share of a split (every `shards`-th part from `index`)."""
        records = self.description["parts"][split]["parts"]
        return sum(int(records[position]["rows"]) for position in range(index, len(records), shards))

    def _part(self, name: str, verify: bool) -> list[np.ndarray]:
        try:
            return list(
                parts.read_part(storage.join(self.parts_folder, name), self.columns, name if verify else None)
            )
        except parts.PartError as exc:
            raise DataError(f"dataset at {self.uri} is corrupted: {exc}") from exc

    @cached_property
    def data(self) -> PreparedDataset:
        """Both splits in memory (for datasets that fit)."""
        if self.legacy is not None:
            return self.legacy
        width = len(self.feature_names) + 1
        train, test = (_stack(self.chunks(split), width) for split in ("train", "test"))
        return PreparedDataset(self.feature_names, self.target, train, test, self.sha256)


def _push_leaves(fold: DyadicFold[bytes], nodes: Sequence[tuple[int, bytes | None]]) -> None:
    """A part's leaves onto a split's hash tree, after the leaves (without rows) since the last part."""
    for index, node in nodes:
        while fold.end < index:
            fold.push(0, fold.end, None)
        fold.push(0, index, node)


def _stack(chunks: Iterable[np.ndarray], width: int) -> np.ndarray:
    """Row-major, whatever the layout of the chunks (format 3 reads columns): reductions over axis 0 then
    add in the order they always did."""
    blocks = list(chunks)
    return np.ascontiguousarray(np.vstack(blocks)) if blocks else np.empty((0, width))


def _normalised(uri: str) -> str:
    """`a/b/../c` as `a/c` (for s3:// URIs too)."""
    head, sep, path = uri.partition("://") if storage.is_s3(uri) else ("", "", uri)
    names: list[str] = []
    for name in path.split("/"):
        if name == ".." and names and names[-1] not in ("", ".."):
            names.pop()
        elif name != ".":
            names.append(name)
    return f"{head}{sep}{'/'.join(names)}"


@dataclass(frozen=True)
class Location:
    """The versioned folder a `--data` value names, and a note when it had to choose among versions."""

    folder: str
    note: str | None = None


def _folder_of(uri: str) -> str:
    """A folder given as itself or as its dataset.json."""
    folder = uri.rstrip("/")
    return folder.removesuffix(MANIFEST_NAME).rstrip("/") if folder.endswith(f"/{MANIFEST_NAME}") else folder


def locate(uri: str) -> Location:
    """A version's folder as given, or the folder `marina prepare --output` wrote: its only version, or the
    newest by the manifests' creation time when it holds several."""
    folder = _folder_of(uri)
    if storage.exists(storage.join(folder, MANIFEST_NAME)):
        return Location(folder)
    versions = sorted((created, name) for name, created in _versions_in(folder).items())
    if not versions:
        raise storage.StorageNotFound(
            f"no prepared dataset at {folder}: neither {MANIFEST_NAME} nor a version folder holding one"
        )
    created, newest = versions[-1]
    chosen = storage.join(folder, newest)
    if len(versions) == 1:
        return Location(chosen)
    return Location(
        chosen,
        f"{folder} holds {len(versions)} dataset versions; using the newest, {newest} (created {created})",
    )


def _versions_in(folder: str) -> dict[str, str]:
    """Version folder name -> its manifest's creation time, for every complete version under `folder`."""
    try:
        names = storage.list_folder(folder)
    except storage.StorageNotFound:
        return {}
    found = {}
    for name in filter(re.compile(contract.DATASET_VERSION_PATTERN).fullmatch, names):
        try:
            description = json.loads(storage.read_bytes(storage.join(folder, name, MANIFEST_NAME)))
        except storage.StorageNotFound:
            continue  # a version whose writing never finished (dataset.json is written last)
        except ValueError as exc:
            raise DataError(f"{folder}/{name}/{MANIFEST_NAME} is not valid JSON: {exc}") from exc
        found[name] = str(description.get("created", "")) if isinstance(description, dict) else ""
    return found


def open_stored(uri: str) -> StoredDataset:
    """A versioned dataset folder, from its dataset.json; the rows are read when asked for."""
    folder = _folder_of(uri)
    raw = storage.read_bytes(storage.join(folder, MANIFEST_NAME))
    try:
        description = json.loads(raw)
        features, target = tuple(str(f) for f in description["features"]), str(description["target"])
        expected = str(description["sha256"])
        if description.get("format") == LEGACY_FORMAT:
            return StoredDataset(
                folder, description, features, target, _load_legacy(folder, features, target, expected)
            )
        document: dict[str, Any] = {
            "format": description["format"],
            "features": list(features),
            "target": target,
            "fills": description["cleaning"]["fillValues"],
            "inputs": description["inputs"],
            **{
                split: {"rows": _rows_of(description, split), "sha256": description["parts"][split]["sha256"]}
                for split in ("train", "test")
            },
        }
        if description["format"] == V2_FORMAT:  # its codes index these dictionaries
            document["dictionaries"] = description["dictionaries"]
        elif description["format"] == FORMAT:
            document["leafRows"] = description["parts"]["leafRows"]
        else:
            raise ValueError(f"unknown format {description['format']!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{folder}/{MANIFEST_NAME} is not a valid dataset description: {exc}") from exc
    actual = hashlib.sha256(_canonical_json(document)).hexdigest()
    if actual != expected:
        raise DataError(
            f"dataset at {folder} is corrupted: its description hashes to {actual}, not {expected}"
        )
    return StoredDataset(folder, description, features, target)


def _rows_of(description: dict[str, Any], split: str) -> int:
    return sum(int(p["rows"]) for p in description["parts"][split]["parts"])


def load(uri: str) -> StoredDataset:
    """A versioned dataset folder with both splits read into memory and verified (small datasets, tests)."""
    stored = open_stored(uri)
    _ = stored.data
    return stored


# --- the first format: train.csv and test.csv ---------------------------------------------------------


def to_csv(columns: Sequence[str], matrix: np.ndarray) -> bytes:
    """Canonical CSV of the first format: header, then `repr` of each float so values round-trip exactly."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(columns)
    if matrix.shape[0]:
        # The repr of a nested list formats every float with repr in C: "[[1.0, 2.5], [3.0, 4.0]]".
        out.write(repr(matrix.tolist())[2:-2].replace("], [", "\n").replace(", ", ","))
        out.write("\n")
    return out.getvalue().encode()


def content_sha256(features: Sequence[str], target: str, train_csv: bytes, test_csv: bytes) -> str:
    """The first format's version: sha256 of the schema and both CSVs, each framed by its name and length."""
    digest = hashlib.sha256()
    schema = json.dumps(
        {"format": LEGACY_FORMAT, "features": list(features), "target": target},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    for name, part in (("schema", schema), (TRAIN_NAME, train_csv), (TEST_NAME, test_csv)):
        digest.update(f"{name}\0{len(part)}\0".encode())
        digest.update(part)
    return digest.hexdigest()


def _load_legacy(folder: str, features: tuple[str, ...], target: str, expected: str) -> PreparedDataset:
    columns = (*features, target)
    train_bytes = storage.read_bytes(storage.join(folder, TRAIN_NAME))
    test_bytes = storage.read_bytes(storage.join(folder, TEST_NAME))
    actual = content_sha256(features, target, train_bytes, test_bytes)
    if actual != expected:
        raise DataError(f"dataset at {folder} is corrupted: its content sha256 {actual} is not {expected}")
    return PreparedDataset(
        features,
        target,
        _read_prepared_csv(train_bytes, columns, TRAIN_NAME),
        _read_prepared_csv(test_bytes, columns, TEST_NAME),
        expected,
    )


def _read_prepared_csv(content: bytes, columns: Sequence[str], name: str) -> np.ndarray:
    header, _, body = content.partition(b"\n")
    if tuple(next(csv.reader([header.decode()]), [])) != tuple(columns):
        raise DataError(f"{name}: header does not match the dataset columns {', '.join(columns)}")
    try:
        values = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.float64, ndmin=2, encoding="utf-8")
    except ValueError as exc:
        raise DataError(f"{name}: not a prepared dataset file: {exc}") from exc
    if values.shape[1:] != (len(columns),) or not np.isfinite(values).all():
        raise DataError(f"{name}: every row must hold {len(columns)} finite numbers")
    return values
