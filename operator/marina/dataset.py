"""Prepared datasets: schema checks, cleaning, a seeded split, statistics and a content version.

A prepared dataset is three objects under `<output>/<version>/`: `train.csv` and `test.csv` (the
feature columns then the target, every float written with `repr` so it reads back bit for bit)
and `dataset.json` (schema, split, cleaning report, statistics, lineage). The version is derived
from the canonical bytes of the schema and both splits, so the same input and options always give
the same version, and a version's folder never needs to be overwritten.

Row numbers in error messages count data rows from 1 (a CSV header is not a row).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from marina import contract, storage
from marina.clock import utc_now
from marina.contract import FailureKind, JobError

FORMAT = "marina.dev/dataset/v1"
# Cell texts that mean "no value" in a CSV or inline row (compared case-insensitively).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
MANIFEST_NAME = "dataset.json"
TRAIN_NAME = "train.csv"
TEST_NAME = "test.csv"
VERSION_LENGTH = 16  # hex digits of the sha256: fits a Kubernetes label value and a folder name


class DataError(JobError, ValueError):
    """The data is unusable (a bad cell, a missing column, too few rows, corrupted stored content); the
    message names the column, row or object. Bad options are `contract.SpecError`."""

    kind = FailureKind.DATA


@dataclass(frozen=True)
class Table:
    """A numeric table as read from a source: NaN marks a missing value."""

    columns: tuple[str, ...]
    values: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])


def check_columns(names: Iterable[object]) -> tuple[str, ...]:
    """Column names must be non-empty and unique (after trimming whitespace)."""
    columns = tuple(str(name).strip() for name in names)
    if not columns:
        raise DataError("the data has no columns")
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, start=1):
        if not name:
            raise DataError(f"column {position} has an empty name")
        if not name.isprintable():
            raise DataError(f"column {position} name {name!r} contains a line break or control character")
        if name in seen:
            raise DataError(f"duplicate column {name!r} (columns {seen[name]} and {position})")
        seen[name] = position
    return columns


def table_from_records(columns: Sequence[object], records: Sequence[Sequence[object]]) -> Table:
    """Convert rows of cells (strings, numbers, None) to a numeric table, naming any bad cell."""
    names = check_columns(columns)
    if not records:
        raise DataError("the data has no rows")
    for row_number, record in enumerate(records, start=1):
        if len(record) != len(names):
            raise DataError(f"row {row_number}: expected {len(names)} values, got {len(record)}")
    try:  # fast path: every cell already numeric or numeric text
        values = np.asarray(records, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array(
            [
                [_number(cell, names[j], i) for j, cell in enumerate(record)]
                for i, record in enumerate(records, start=1)
            ],
            dtype=np.float64,
        )
    _reject_infinite(values, names)
    return Table(names, values.reshape(len(records), len(names)))


def numeric_table(columns: Sequence[object], values: np.ndarray) -> Table:
    """A table from an already numeric matrix, with the same column and finiteness checks."""
    names = check_columns(columns)
    _reject_infinite(values, names)
    return Table(names, values)


def _number(cell: object, column: str, row: int) -> float:
    if cell is None:
        return math.nan
    if isinstance(cell, bool | int | float):
        return float(cell)
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in MISSING_TOKENS:
            return math.nan
        try:
            return float(text)
        except ValueError:
            pass
    raise DataError(f"column {column!r} row {row}: {cell!r} is not a number")


def _reject_infinite(values: np.ndarray, columns: Sequence[str]) -> None:
    bad = np.argwhere(np.isinf(values))
    if bad.size:
        row, col = (int(i) for i in bad[0])
        raise DataError(
            f"column {columns[col]!r} row {row + 1}: {float(values[row, col])} is not a finite number"
        )


@dataclass(frozen=True)
class PrepareOptions:
    """What to keep, how to clean and how to split; validated on construction."""

    target: str = "target"
    features: tuple[str, ...] | None = None
    test_fraction: float = 0.2
    seed: int = 42
    missing: str = "drop"

    def __post_init__(self) -> None:
        if not self.target.strip():
            raise contract.SpecError("target: the target column name is empty")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, float | int):
            raise contract.SpecError(f"test fraction: must be a number, got {self.test_fraction!r}")
        contract.SPLIT_TEST_FRACTION.check("test fraction", self.test_fraction)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise contract.SpecError(f"seed: must be an integer, got {self.seed!r}")
        contract.SEED.check("seed", self.seed)
        contract.check_choice("missing", self.missing, contract.MISSING_POLICIES)
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
    """The split data: each matrix holds the feature columns, then the target as its last column."""

    features: tuple[str, ...]
    target: str
    train: np.ndarray
    test: np.ndarray

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

    @cached_property
    def train_csv(self) -> bytes:
        return to_csv(self.columns, self.train)

    @cached_property
    def test_csv(self) -> bytes:
        return to_csv(self.columns, self.test)

    @cached_property
    def sha256(self) -> str:
        return content_sha256(self.features, self.target, self.train_csv, self.test_csv)

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


def select_columns(table: Table, options: PrepareOptions) -> tuple[tuple[str, ...], np.ndarray]:
    """The features (in the requested order) then the target, as one matrix."""
    if options.target not in table.columns:
        raise DataError(f"target column {options.target!r} not found; columns are: {_listing(table.columns)}")
    if options.features is None:
        features = tuple(c for c in table.columns if c != options.target)
    else:
        unknown = [f for f in options.features if f not in table.columns]
        if unknown:
            listing = _listing(table.columns)
            raise DataError(f"feature column {unknown[0]!r} not found; columns are: {listing}")
        features = options.features
    if not features:
        raise DataError(f"no feature columns: the data has only the target column {options.target!r}")
    index = [table.columns.index(name) for name in (*features, options.target)]
    return features, table.values[:, index]


def _listing(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def prepare(table: Table, options: PrepareOptions) -> tuple[PreparedDataset, CleaningReport]:
    """Select, clean, split (seeded) and impute. Imputation uses train values only: no leakage."""
    if table.rows == 0:
        raise DataError("the data has no rows")
    features, data = select_columns(table, options)
    columns = (*features, options.target)
    missing = np.isnan(data)
    keep = _rows_to_keep(missing, columns, options.missing)
    data, kept_missing = data[keep], missing[keep]
    if data.shape[0] < 2:
        raise DataError(f"only {data.shape[0]} usable row(s) after removing missing values; need at least 2")
    train_index, test_index = split_indices(data.shape[0], options.test_fraction, options.seed)
    train, test = data[train_index], data[test_index]
    fills: dict[str, float] = {}
    imputed_train: dict[str, int] = {}
    imputed_test: dict[str, int] = {}
    if options.missing in ("mean", "median"):
        values = _fill_values(train, columns, options.missing)
        train, test = _impute(train, values), _impute(test, values)
        fills = {name: float(value) for name, value in zip(features, values[:-1], strict=True)}
        imputed_train = _count_missing(kept_missing[train_index], columns)
        imputed_test = _count_missing(kept_missing[test_index], columns)
    report = CleaningReport(
        strategy=options.missing,
        rows_in=table.rows,
        rows_dropped=int((~keep).sum()),
        missing_by_column=_count_missing(missing, columns),
        fill_values=fills,
        imputed_train=imputed_train,
        imputed_test=imputed_test,
    )
    return PreparedDataset(features, options.target, train, test), report


def _rows_to_keep(missing: np.ndarray, columns: Sequence[str], strategy: str) -> np.ndarray:
    """Rows without a target teach nothing and are always dropped; the policy decides the rest."""
    if strategy == "fail" and missing.any():
        row, col = (int(i) for i in np.argwhere(missing)[0])
        raise DataError(f"column {columns[col]!r} row {row + 1}: missing value (missing policy 'fail')")
    keep: np.ndarray = ~missing[:, -1]
    if strategy == "drop":
        keep &= ~missing.any(axis=1)
    return keep


def split_indices(rows: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded permutation: the first ceil(rows * fraction) go to test; both kept in input order."""
    n_test = min(max(math.ceil(rows * test_fraction), 1), rows - 1)
    permutation = np.random.default_rng(seed).permutation(rows)
    return np.sort(permutation[n_test:]), np.sort(permutation[:n_test])


def _fill_values(train: np.ndarray, columns: Sequence[str], strategy: str) -> np.ndarray:
    present = ~np.isnan(train)
    empty = np.flatnonzero(~present.any(axis=0))
    if empty.size:
        raise DataError(
            f"column {columns[int(empty[0])]!r}: every training value is missing, cannot impute "
            f"the {strategy}"
        )
    fills = np.nanmean(train, axis=0) if strategy == "mean" else np.nanmedian(train, axis=0)
    return np.asarray(fills, dtype=np.float64)


def _impute(matrix: np.ndarray, fills: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(matrix), fills, matrix)


def _count_missing(mask: np.ndarray, columns: Sequence[str]) -> dict[str, int]:
    return {c: int(n) for c, n in zip(columns, mask.sum(axis=0), strict=True)}


def column_statistics(
    matrix: np.ndarray, columns: Sequence[str], imputed: dict[str, int] | None = None
) -> dict[str, dict[str, float | int]]:
    """count, mean, std (population, ddof=0), min, max and how many values were imputed."""
    imputed = imputed or {}
    return {
        name: {
            "count": int(matrix.shape[0]),
            "mean": float(np.mean(matrix[:, j])),
            "std": float(np.std(matrix[:, j])),
            "min": float(np.min(matrix[:, j])),
            "max": float(np.max(matrix[:, j])),
            "missing": int(imputed.get(name, 0)),
        }
        for j, name in enumerate(columns)
    }


def statistics(dataset: PreparedDataset, report: CleaningReport) -> dict[str, Any]:
    """Statistics of the train split (kept for drift monitoring) and of all prepared rows."""
    imputed_all = {c: report.imputed_train.get(c, 0) + report.imputed_test.get(c, 0) for c in dataset.columns}
    return {
        "train": column_statistics(dataset.train, dataset.columns, report.imputed_train),
        "all": column_statistics(np.vstack([dataset.train, dataset.test]), dataset.columns, imputed_all),
    }


def to_csv(columns: Sequence[str], matrix: np.ndarray) -> bytes:
    """Canonical CSV: header, then `repr` of each float so values round-trip exactly."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(columns)
    if matrix.shape[0]:
        # The repr of a nested list formats every float with repr in C: "[[1.0, 2.5], [3.0, 4.0]]".
        out.write(repr(matrix.tolist())[2:-2].replace("], [", "\n").replace(", ", ","))
        out.write("\n")
    return out.getvalue().encode()


def content_sha256(features: Sequence[str], target: str, train_csv: bytes, test_csv: bytes) -> str:
    """sha256 of the schema and both splits, each part framed by its name and length."""
    digest = hashlib.sha256()
    schema = json.dumps(
        {"format": FORMAT, "features": list(features), "target": target},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    for name, part in (("schema", schema), (TRAIN_NAME, train_csv), (TEST_NAME, test_csv)):
        digest.update(f"{name}\0{len(part)}\0".encode())
        digest.update(part)
    return digest.hexdigest()


def manifest(
    dataset: PreparedDataset,
    report: CleaningReport,
    options: PrepareOptions,
    name: str,
    source: dict[str, Any],
) -> dict[str, Any]:
    """The content of dataset.json."""
    from marina import __version__

    return {
        "format": FORMAT,
        "name": name,
        "version": dataset.version,
        "sha256": dataset.sha256,
        "columns": list(dataset.columns),
        "features": list(dataset.features),
        "target": dataset.target,
        "rows": int(dataset.train.shape[0] + dataset.test.shape[0]),
        "trainRows": int(dataset.train.shape[0]),
        "testRows": int(dataset.test.shape[0]),
        "split": {"seed": options.seed, "testFraction": options.test_fraction},
        "cleaning": report.to_dict(),
        "statistics": statistics(dataset, report),
        "source": source,
        "codeVersion": __version__,
        "created": utc_now(),
    }


def write(dataset: PreparedDataset, description: dict[str, Any], output: str) -> tuple[str, bool]:
    """Write under `<output>/<version>/`; returns (folder uri, whether it already existed).

    Content addressing means an existing object at the same path already holds the same data, so
    it is never rewritten; a CSV whose bytes differ means corruption and is reported, not replaced.
    """
    folder = storage.join(output, dataset.version)
    manifest_uri = storage.join(folder, MANIFEST_NAME)
    if storage.exists(manifest_uri):
        if _stored_sha256(manifest_uri) != dataset.sha256:
            raise DataError(f"{manifest_uri} describes different content; refusing to overwrite it")
        return folder, True
    for name, content in ((TRAIN_NAME, dataset.train_csv), (TEST_NAME, dataset.test_csv)):
        uri = storage.join(folder, name)
        if not storage.exists(uri):
            storage.write_bytes(uri, content, "text/csv")
        elif storage.read_bytes(uri) != content:
            raise DataError(f"{uri} already exists with different content; refusing to overwrite it")
    body = json.dumps(description, indent=2, sort_keys=True, allow_nan=False).encode()
    storage.write_bytes(manifest_uri, body + b"\n", "application/json")
    return folder, False


def _stored_sha256(manifest_uri: str) -> str | None:
    try:
        return str(json.loads(storage.read_bytes(manifest_uri))["sha256"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class StoredDataset:
    """A prepared dataset read back from storage, with its dataset.json."""

    uri: str
    data: PreparedDataset
    description: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.description.get("name", ""))

    @property
    def version(self) -> str:
        return self.data.version


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


def load(uri: str) -> StoredDataset:
    """Read a versioned dataset folder and verify its content against dataset.json's sha256."""
    folder = _folder_of(uri)
    raw = storage.read_bytes(storage.join(folder, MANIFEST_NAME))
    try:
        description = json.loads(raw)
        features, target = tuple(description["features"]), str(description["target"])
        expected = str(description["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{folder}/{MANIFEST_NAME} is not a valid dataset description: {exc}") from exc
    columns = (*features, target)
    train_bytes = storage.read_bytes(storage.join(folder, TRAIN_NAME))
    test_bytes = storage.read_bytes(storage.join(folder, TEST_NAME))
    actual = content_sha256(features, target, train_bytes, test_bytes)
    if actual != expected:
        raise DataError(f"dataset at {folder} is corrupted: its content sha256 {actual} is not {expected}")
    data = PreparedDataset(
        features,
        target,
        _read_prepared_csv(train_bytes, columns, TRAIN_NAME),
        _read_prepared_csv(test_bytes, columns, TEST_NAME),
    )
    return StoredDataset(folder, data, description)


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
