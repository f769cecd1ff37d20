"""Prepared datasets: schema checks, streaming cleaning, a seeded split, statistics and a content version.

`prepare_source` reads a source once, chunk by chunk, in memory bounded by a chunk and a part (never
by the row count), and writes:

- the splits as Parquet parts under `<output>/parts/` (see `marina.data.parts`: content-addressed, so
  they are written before the version is known and never rewritten);
- `<output>/<version>/dataset.json`: schema, split, cleaning report, fill values, statistics, the
  parts of each split, quantile edges of the train split (for drift monitoring) and lineage.

The version is the sha256 of a canonical document: the schema, the fill values and, per split, the
row count and the sha256 of its values as little-endian float64 in row order. It does not depend on
the Parquet library, the chunk size or the part size, and a version's folder is never overwritten.

Split: a table of at most `SMALL_TABLE_CELLS` selected cells (after dropping rows) is split by a
seeded permutation, exactly ceil(rows · testFraction) rows to test. A larger one is split by a seeded
hash of each row's number (`marina.data.sampling`): every row goes to test independently with probability
testFraction, so no permutation of all rows is needed and the split is the same whatever the chunks.

Cleaning: `drop` and `fail` act per chunk. `mean` and `median` keep the missing cells in the parts
and record the fill values, computed from the train split only (the median exactly, see
`marina.data.order_statistics`); every reader (`StoredDataset.chunks`) fills them in.

Datasets prepared in the first format (train.csv and test.csv in the version folder) still load.
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
from marina.data import parts, sampling
from marina.data.moments import BlockSums, ColumnMoments
from marina.data.order_statistics import exact_medians
from marina.data.readahead import ahead
from marina.data.sources import Source, memory_source
from marina.data.table import DataError, Table, all_finite
from marina.system.clock import utc_now

FORMAT = "marina.dev/dataset/v2"
LEGACY_FORMAT = "marina.dev/dataset/v1"
MANIFEST_NAME = "dataset.json"
TRAIN_NAME = "train.csv"
TEST_NAME = "test.csv"
VERSION_LENGTH = contract.DATASET_VERSION_LENGTH
#: Up to this many selected cells a table is split by an exact seeded permutation (8 MiB of float64).
SMALL_TABLE_CELLS = 1 << 20


def _dataset_default(path: str) -> Any:
    return contract.DATASET.default(f"spec.{path}")


@dataclass(frozen=True)
class PrepareOptions:
    """What to keep, how to clean and how to split; validated on construction, as the Dataset's fields."""

    target: str = _dataset_default("target")
    features: tuple[str, ...] | None = None
    test_fraction: float = _dataset_default("split.testFraction")
    seed: int = _dataset_default("split.seed")
    missing: str = _dataset_default("cleaning.missing")
    max_categories: int = _dataset_default("cleaning.maxCategories")

    def __post_init__(self) -> None:
        for where, path, value in (
            ("target", "target", self.target),
            ("test fraction", "split.testFraction", self.test_fraction),
            ("seed", "split.seed", self.seed),
            ("missing", "cleaning.missing", self.missing),
            ("max categories", "cleaning.maxCategories", self.max_categories),
        ):
            contract.DATASET.at(f"spec.{path}").check(where, value)
        if self.features is not None:
            if not self.features:
                raise contract.SpecError("features: the list of feature columns is empty")
            duplicated = sorted({f for f in self.features if self.features.count(f) > 1})
            if duplicated:
                raise contract.SpecError(
                    f"features: {', '.join(map(repr, duplicated))} listed more than once"
                )
            if self.target in self.features:
                raise contract.SpecError(
                    f"features: the target column {self.target!r} cannot also be a feature"
                )


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


def select_features(columns: Sequence[str], options: PrepareOptions) -> tuple[str, ...]:
    """The feature columns, in the requested order (all but the target when none are named)."""
    if options.target not in columns:
        raise DataError(f"target column {options.target!r} not found; columns are: {_listing(columns)}")
    if options.features is None:
        features = tuple(c for c in columns if c != options.target)
    else:
        unknown = [f for f in options.features if f not in columns]
        if unknown:
            raise DataError(f"feature column {unknown[0]!r} not found; columns are: {_listing(columns)}")
        features = options.features
    if not features:
        raise DataError(f"no feature columns: the data has only the target column {options.target!r}")
    return features


def _listing(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def split_indices(rows: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded permutation: the first ceil(rows * fraction) go to test; both kept in input order."""
    n_test = min(max(math.ceil(rows * test_fraction), 1), rows - 1)
    permutation = np.random.default_rng(seed).permutation(rows)
    return np.sort(permutation[n_test:]), np.sort(permutation[:n_test])


def _rows_to_keep(missing: np.ndarray, columns: Sequence[str], strategy: str, first_row: int) -> np.ndarray:
    """Rows without a target teach nothing and are always dropped; the policy decides the rest."""
    if strategy == "fail" and missing.any():
        row, col = (int(i) for i in np.argwhere(missing)[0])
        raise DataError(
            f"column {columns[col]!r} row {first_row + row + 1}: missing value (missing policy 'fail')"
        )
    keep: np.ndarray = ~missing[:, -1]
    if strategy == "drop":
        keep &= ~missing.any(axis=1)
    return keep


class _Split:
    """One split as it is written: its parts, its moments and (for train) a seeded sample of its rows."""

    def __init__(self, folder: str | None, columns: Sequence[str], sample_seed: int | None) -> None:
        self.writer = parts.SplitWriter(folder, columns)
        self.moments = ColumnMoments(len(columns))
        self.sums = BlockSums(len(columns))
        self.sample = None if sample_seed is None else sampling.BottomSample(len(columns), sample_seed)
        self.seen: dict[int, set[int]] = {}  # category column -> codes present in this split

    def add(self, rows: np.ndarray, values: np.ndarray, categorical: Sequence[int] = ()) -> None:
        if not values.shape[0]:
            return
        for j in categorical:
            codes = values[:, j]
            self.seen.setdefault(j, set()).update(np.unique(codes[~np.isnan(codes)]).astype(int).tolist())
        self.writer.add(values)
        self.moments.add(values)
        self.sums.add(values)
        if self.sample is not None:
            self.sample.add(rows, values)


@dataclass
class _Pass:
    """The one pass over the source: cleaning per chunk, then the split (buffered while the table is
    small)."""

    columns: tuple[str, ...]
    options: PrepareOptions
    train: _Split
    test: _Split
    rows_in: int = 0
    kept_rows: int = 0
    missing: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    buffer: list[tuple[np.ndarray, np.ndarray]] | None = field(default_factory=list)
    buffered_cells: int = 0
    small: tuple[np.ndarray, np.ndarray] | None = None  # the permuted table's (train, test), when small
    dictionaries: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def categorical(self) -> list[int]:
        """Positions of the category (text) columns among the features."""
        return [j for j, name in enumerate(self.columns) if name in self.dictionaries]

    def add(self, chunk: Table) -> None:
        self.dictionaries = chunk.dictionaries
        self._check_categories()
        values = chunk.values
        if all_finite(values):  # the common case: nothing missing, every row kept, no copies
            missing_counts = np.zeros(values.shape[1], dtype=np.int64)
            rows, kept = np.arange(self.rows_in, self.rows_in + values.shape[0]), values
        else:
            missing = np.isnan(values)
            missing_counts = missing.sum(axis=0)
            keep = _rows_to_keep(missing, self.columns, self.options.missing, self.rows_in)
            rows, kept = self.rows_in + np.flatnonzero(keep), values[keep]
        self.missing = self.missing + missing_counts if self.missing.size else missing_counts
        self.rows_in += values.shape[0]
        self.kept_rows += kept.shape[0]
        if self.buffer is None:
            self._hash_split(rows, kept)
            return
        self.buffer.append((rows, kept))
        self.buffered_cells += kept.size
        if self.buffered_cells > SMALL_TABLE_CELLS:
            for buffered in self.buffer:
                self._hash_split(*buffered)
            self.buffer = None

    def _check_categories(self) -> None:
        target = self.columns[-1]
        if target in self.dictionaries:
            raise DataError(f"target column {target!r} holds text; a regression target must be numeric")
        for name, values in self.dictionaries.items():
            if len(values) > self.options.max_categories:
                raise DataError(
                    f"column {name!r} has more than {self.options.max_categories} distinct values (reached "
                    f"{len(values)} by row {self.rows_in}): an identifier is not a category; leave it out of "
                    "features or raise cleaning.maxCategories"
                )

    def _hash_split(self, rows: np.ndarray, kept: np.ndarray) -> None:
        to_test = (
            sampling.uniform_of(rows, self.options.seed, sampling.SPLIT_SALT) < self.options.test_fraction
        )
        self.train.add(rows[~to_test], kept[~to_test], self.categorical)
        self.test.add(rows[to_test], kept[to_test], self.categorical)

    def finish(self) -> None:
        if self.rows_in == 0:
            raise DataError("the data has no rows")
        if self.kept_rows < 2:
            raise DataError(
                f"only {self.kept_rows} usable row(s) after removing missing values; need at least 2"
            )
        if self.buffer is not None:
            rows = np.concatenate([r for r, _ in self.buffer])
            kept = np.vstack([k for _, k in self.buffer])
            train_index, test_index = split_indices(
                kept.shape[0], self.options.test_fraction, self.options.seed
            )
            self.train.add(rows[train_index], kept[train_index], self.categorical)
            self.test.add(rows[test_index], kept[test_index], self.categorical)
            self.small = (kept[train_index], kept[test_index])
            self.buffer = None
        for name, split in (("train", self.train), ("test", self.test)):
            if split.writer.rows == 0:
                raise DataError(
                    f"the seeded split left the {name} split empty ({self.kept_rows} usable rows, test "
                    f"fraction {self.options.test_fraction}); use more rows or another test fraction"
                )
        self.train.writer.close()
        self.test.writer.close()


@dataclass(frozen=True)
class Prepared:
    """What `prepare_source` made: the manifest, where it is stored, and whether it already was."""

    description: dict[str, Any]
    uri: str | None
    reused: bool
    data: PreparedDataset | None = None
    report: CleaningReport | None = None


def prepare_source(
    source: Source,
    options: PrepareOptions,
    output: str | None,
    name: str,
    on_chunk: Callable[[int], None] | None = None,
) -> Prepared:
    """Read, clean, split, summarise and (with an `output`) store a source; `on_chunk(rows so far)` is
    called after each chunk (progress). Without an output the dataset is returned in memory."""
    features = select_features(source.columns, options)
    columns = (*features, options.target)
    folder = storage.join(output, parts.PARTS_FOLDER) if output is not None else None
    run = _Pass(columns, options, _Split(folder, columns, options.seed), _Split(folder, columns, None))
    for chunk in source.chunks(columns):
        run.add(chunk)
        if on_chunk is not None:
            on_chunk(run.rows_in)
    run.finish()
    fills = _fill_values(run, columns, folder)
    report = _report(run, columns, fills)
    document = _version_document(run, features, options.target, report.fill_values)
    sha = hashlib.sha256(_canonical_json(document)).hexdigest()
    description = _manifest(run, report, options, name, source.description, sha, fills)
    data = None
    if output is None:
        train, test = (_filled(s.writer.values(), fills) for s in (run.train, run.test))
        data = PreparedDataset(features, options.target, train, test, sha)
        return Prepared(description, None, False, data, report)
    uri, reused = write_manifest(description, output)
    return Prepared(description, uri, reused, None, report)


def prepare(table: Table, options: PrepareOptions) -> tuple[PreparedDataset, CleaningReport]:
    """A table in memory prepared in memory (what `prepare_source` does, without storage)."""
    prepared = prepare_source(memory_source(table, {"type": "memory"}, "memory"), options, None, "memory")
    assert prepared.data is not None and prepared.report is not None
    return prepared.data, prepared.report


def _fill_values(run: _Pass, columns: Sequence[str], folder: str | None) -> np.ndarray:
    """Per column: the train split's mean or exact median of its present values. NaN (never filled) for
    the target and for category columns, whose missing cells encode as no category at all."""
    strategy = run.options.missing
    fills = np.full(len(columns), np.nan)
    if strategy not in ("mean", "median"):
        return fills
    numeric = np.array([j for j in range(len(columns) - 1) if j not in run.categorical], dtype=np.intp)
    moments = run.train.moments
    empty = [int(j) for j in numeric if moments.count[j] == 0]
    if empty:
        raise DataError(
            f"column {columns[empty[0]]!r}: every training value is missing, cannot impute the {strategy}"
        )
    if strategy == "mean":  # from fixed-block sums, so the fill (part of the version) ignores chunking
        fills[numeric] = run.train.sums.means()[numeric]
    elif run.small is not None:
        fills[numeric] = np.nanmedian(run.small[0][:, numeric], axis=0)
    elif numeric.size:

        def read() -> Iterator[np.ndarray]:
            for values in _split_chunks(run.train.writer.parts, folder, columns):
                yield values[:, numeric]

        fills[numeric] = exact_medians(
            read, moments.count[numeric], moments.minimum[numeric], moments.maximum[numeric]
        )
    return fills


def _split_chunks(
    records: Sequence[parts.PartRecord], folder: str | None, columns: Sequence[str]
) -> Iterator[np.ndarray]:
    for record in records:
        yield from parts.read_part(storage.join(str(folder), record.name), columns)


def _filled(values: np.ndarray, fills: np.ndarray) -> np.ndarray:
    if not np.isnan(fills).all() and np.isnan(values).any():
        return np.where(np.isnan(values), fills, values)
    return values


def _report(run: _Pass, columns: Sequence[str], fills: np.ndarray) -> CleaningReport:
    imputing = run.options.missing in ("mean", "median")
    features = columns[:-1]
    return CleaningReport(
        strategy=run.options.missing,
        rows_in=run.rows_in,
        rows_dropped=run.rows_in - run.kept_rows,
        missing_by_column={c: int(n) for c, n in zip(columns, run.missing, strict=True)},
        fill_values={c: float(v) for c, v in zip(features, fills[:-1], strict=True) if not math.isnan(v)}
        if imputing
        else {},
        imputed_train=_counts(columns, run.train.moments.missing) if imputing else {},
        imputed_test=_counts(columns, run.test.moments.missing) if imputing else {},
    )


def _counts(columns: Sequence[str], counts: np.ndarray) -> dict[str, int]:
    return {c: int(n) for c, n in zip(columns, counts, strict=True)}


def inputs_of(run: _Pass) -> list[dict[str, Any]]:
    """The model inputs: numbers, and categories with the values the train split holds, sorted (the
    one-hot columns training fits; a value seen only in test encodes as no category)."""
    inputs: list[dict[str, Any]] = []
    for j, name in enumerate(run.columns[:-1]):
        if name not in run.dictionaries:
            inputs.append({"name": name, "type": "number"})
            continue
        dictionary = run.dictionaries[name]
        categories = sorted(dictionary[code] for code in run.train.seen.get(j, ()))
        if not categories:
            raise DataError(f"column {name!r}: every training value is missing, so it has no category")
        inputs.append({"name": name, "type": "category", "categories": categories})
    return inputs


def _version_document(
    run: _Pass, features: Sequence[str], target: str, fills: dict[str, float]
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "features": list(features),
        "target": target,
        "fills": fills,
        "inputs": inputs_of(run),
        "dictionaries": {name: list(values) for name, values in run.dictionaries.items()},
        "train": {"rows": run.train.writer.rows, "sha256": run.train.writer.sha256},
        "test": {"rows": run.test.writer.rows, "sha256": run.test.writer.sha256},
    }


def _canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _statistics(run: _Pass, columns: Sequence[str], fills: np.ndarray) -> dict[str, Any]:
    """Statistics of the train split (kept for drift monitoring) and of all prepared rows, after filling."""
    filling = not np.isnan(fills).all()
    cells = (
        (lambda m: np.where(np.isnan(fills), 0, m.missing))
        if filling
        else (lambda m: np.zeros_like(m.missing))
    )
    safe = np.nan_to_num(fills)
    train = run.train.moments
    both = ColumnMoments(len(columns))
    both.merge(run.train.moments)
    both.merge(run.test.moments)
    summaries = {
        "train": train.filled(safe, cells(train)).summary(columns, cells(train)),
        "all": both.filled(safe, cells(both)).summary(columns, cells(both)),
    }
    for split, moments in (("train", train), ("all", both)):
        for j in run.categorical:  # moments of codes mean nothing: counts and the number of categories
            name = columns[j]
            seen = run.train.seen.get(j, set()) | (run.test.seen.get(j, set()) if split == "all" else set())
            summaries[split][name] = {
                "count": int(moments.count[j] + moments.missing[j]),
                "missing": int(moments.missing[j]),
                "categories": len(seen),
            }
    return summaries


def _quantile_edges(run: _Pass, features: Sequence[str], fills: np.ndarray) -> dict[str, Any]:
    from marina.data.distribution import quantile_edges

    assert run.train.sample is not None
    sample = _filled(run.train.sample.values(), fills)
    return {
        "sampleRows": int(sample.shape[0]),
        "features": {
            name: quantile_edges(sample[:, j]).tolist()
            for j, name in enumerate(features)
            if j not in run.categorical
        },
    }


def _manifest(
    run: _Pass,
    report: CleaningReport,
    options: PrepareOptions,
    name: str,
    source: dict[str, Any],
    sha: str,
    fills: np.ndarray,
) -> dict[str, Any]:
    """The content of dataset.json."""
    from marina import __version__

    columns = run.columns
    return {
        "format": FORMAT,
        "name": name,
        "version": sha[:VERSION_LENGTH],
        "sha256": sha,
        "columns": list(columns),
        "features": list(columns[:-1]),
        "target": columns[-1],
        "rows": run.train.writer.rows + run.test.writer.rows,
        "trainRows": run.train.writer.rows,
        "testRows": run.test.writer.rows,
        "split": {
            "seed": options.seed,
            "testFraction": options.test_fraction,
            "method": "permutation" if run.small is not None else "hash",
        },
        "cleaning": report.to_dict(),
        "statistics": _statistics(run, columns, fills),
        "quantileEdges": _quantile_edges(run, columns[:-1], fills),
        "inputs": inputs_of(run),
        "dictionaries": {name: list(values) for name, values in run.dictionaries.items()},
        "parts": {
            "folder": f"../{parts.PARTS_FOLDER}",
            "train": {
                "sha256": run.train.writer.sha256,
                "parts": [p.to_dict() for p in run.train.writer.parts],
            },
            "test": {"sha256": run.test.writer.sha256, "parts": [p.to_dict() for p in run.test.writer.parts]},
        },
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

    @cached_property
    def _one_hot(self) -> list[tuple[int, np.ndarray, int]] | None:
        """Per category column: (stored position, position of each code among the train categories or -1,
        number of categories)."""
        if not self.has_categories:
            return None
        dictionaries = self.description.get("dictionaries", {})
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

    def chunks(self, split: str) -> Iterator[np.ndarray]:
        """The split's rows (features, then the target), filled, chunk by chunk. A full read checks the
        content against the manifest's sha256 at its end, before the caller can use a partial result."""
        if self.legacy is not None:
            yield self.legacy.train if split == "train" else self.legacy.test
            return
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
            return int(offsets[position]), [
                self._expanded(values) for values in self.raw_part(split, position)
            ]

        for row, blocks in ahead(range(index, len(records), shards), read):
            for values in blocks:
                yield row, values
                row += values.shape[0]

    def part_records(self, split: str) -> list[dict[str, Any]]:
        """The split's parts in row order: {name, rows}."""
        return list(self.description["parts"][split]["parts"])

    @property
    def dictionaries(self) -> dict[str, list[str]]:
        """Per category column, the values its stored codes stand for."""
        return {name: list(values) for name, values in self.description.get("dictionaries", {}).items()}

    def raw_part(self, split: str, position: int) -> list[np.ndarray]:
        """One part of a split as stored (category columns as codes into `dictionaries`), missing cells
        filled, checked against the sha256 its name carries."""
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


def _stack(chunks: Iterable[np.ndarray], width: int) -> np.ndarray:
    blocks = list(chunks)
    return np.vstack(blocks) if blocks else np.empty((0, width))


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
        document = {
            "format": FORMAT,
            "features": list(features),
            "target": target,
            "fills": description["cleaning"]["fillValues"],
            "inputs": description["inputs"],
            "dictionaries": description["dictionaries"],
            "train": {
                "rows": _rows_of(description, "train"),
                "sha256": description["parts"]["train"]["sha256"],
            },
            "test": {"rows": _rows_of(description, "test"), "sha256": description["parts"]["test"]["sha256"]},
        }
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
