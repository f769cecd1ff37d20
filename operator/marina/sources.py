"""Where raw data comes from: CSV files (local, gzip, s3://), inline rows, built-in and synthetic sets.

A source spec is one string, as the `--source` flag and a Dataset resource give it:

- `path/to/data.csv`, `data.csv.gz` or `s3://bucket/key.csv` — a CSV with a header row
  (gzip is recognised by its magic bytes; S3 goes through `marina.storage`);
- `inline` — rows given separately as a JSON or YAML list of objects, e.g. `[{"x": 1, "y": 2}]`;
- `builtin:diabetes` — scikit-learn's diabetes set (442 rows, 10 features, target `target`);
- `synthetic:rows=1000,features=5,noise=0.1,seed=7,missing=0.0` — a seeded linear problem
  `target = x · coefficients + intercept + noise · N(0, 1)` with features `x1..xN` drawn from
  N(0, 1); every key is optional (defaults shown) and `missing` is the fraction of feature cells
  blanked out, to exercise cleaning. The same parameters always give the same rows.

Every loader returns a `Table` and a description for lineage that never contains credentials.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np
import yaml

from marina import contract, storage
from marina.contract import BUILTIN_DATASETS, JobError, SpecError
from marina.dataset import DataError, Table, check_columns, numeric_table, table_from_records

SOURCE_FORMS = "builtin:NAME, synthetic:KEY=VALUE,..., inline, s3://bucket/key or a local CSV path"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class LoadedSource:
    table: Table
    description: dict[str, Any]
    default_name: str


def load(spec: str, inline_rows: str | None = None) -> LoadedSource:
    """Load the table a source spec names; `inline_rows` is the JSON/YAML text for `inline`."""
    spec = spec.strip()
    if not spec:
        raise SpecError(f"source: empty; expected {SOURCE_FORMS}")
    if spec == "inline":
        if inline_rows is None:
            raise SpecError("source 'inline' needs rows (--inline-rows JSON or --rows-file PATH)")
        return load_inline(inline_rows)
    if inline_rows is not None:
        raise SpecError(f"inline rows were given but the source is {spec!r}; use source 'inline'")
    scheme = _SCHEME.match(spec)
    kind = scheme.group(1).lower() if scheme and len(scheme.group(1)) > 1 else ""
    loaders: dict[str, Callable[[str], LoadedSource]] = {
        "builtin": load_builtin,
        "synthetic": load_synthetic,
        "s3": load_csv,
    }
    if kind in loaders:
        return loaders[kind](spec)
    if kind and not storage.exists(spec):
        raise SpecError(f"unknown source {spec!r}: expected {SOURCE_FORMS}")
    return load_csv(spec)


def load_csv(uri: str) -> LoadedSource:
    raw = storage.read_bytes(uri)
    table = parse_csv(_gunzip(raw, uri), uri)
    name = re.sub(r"(\.csv)?(\.gz)?$", "", uri.rstrip("/").rsplit("/", 1)[-1]) or "dataset"
    description = {"type": "csv", "uri": _without_credentials(uri), "sha256": hashlib.sha256(raw).hexdigest()}
    return LoadedSource(table, description, name)


def _gunzip(raw: bytes, uri: str) -> bytes:
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataError(f"{_without_credentials(uri)}: not a valid gzip file ({exc})") from exc


def parse_csv(content: bytes, label: str = "CSV") -> Table:
    """A CSV with a header row; blank lines are skipped, every row must have the header's width."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = _without_credentials(label)
        raise DataError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    fast = _numeric_csv(text)
    if fast is not None:
        return fast
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as exc:
        raise DataError(f"{_without_credentials(label)}: malformed CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{_without_credentials(label)}: the file is empty (no header row)")
    return table_from_records(rows[0], rows[1:])


def _numeric_csv(text: str) -> Table | None:
    """Fast path for complete numeric CSVs (numpy's C parser, no per-cell Python objects).

    Anything it cannot read (missing values, text, ragged rows) returns None and goes through the
    careful path, which finds and names the offending cell.
    """
    header_line, _, body = text.partition("\n")
    header = next(csv.reader([header_line.rstrip("\r")]), [])
    if not header or not body.strip():
        return None
    try:
        values = np.loadtxt(
            io.StringIO(body),
            delimiter=",",
            dtype=np.float64,
            ndmin=2,
            comments=None,
            quotechar='"',
            encoding=None,
        )
    except ValueError:
        return None
    if values.shape[1] != len(header) or np.isnan(values).any():
        return None
    return numeric_table(header, values)


def _without_credentials(uri: str) -> str:
    """Drop any user:password@ part of a URI before it goes into lineage or messages."""
    parsed = urlparse(uri)
    if parsed.scheme and "@" in parsed.netloc:
        return parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]).geturl()
    return uri


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


def load_inline(text: str) -> LoadedSource:
    rows = parse_rows(text)
    columns = check_columns(dict.fromkeys(str(key) for row in rows for key in row))
    records = []
    for number, row in enumerate(rows, start=1):
        values = {str(k): v for k, v in row.items()}
        for column, value in values.items():
            if isinstance(value, dict | list):
                raise DataError(f"column {column!r} row {number}: {value!r} is not a number")
        records.append([values.get(column) for column in columns])
    return LoadedSource(table_from_records(columns, records), {"type": "inline", "rows": len(rows)}, "inline")


def load_builtin(spec: str) -> LoadedSource:
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
    return LoadedSource(Table(columns, values), description, name)


@dataclass(frozen=True)
class SyntheticSpec:
    rows: int = 1000
    features: int = 5
    noise: float = 0.1
    seed: int = 0
    missing: float = 0.0

    def __post_init__(self) -> None:
        for name, bound in (
            ("rows", contract.SYNTHETIC_ROWS),
            ("features", contract.SYNTHETIC_FEATURES),
            ("noise", contract.SYNTHETIC_NOISE),
            ("seed", contract.SEED),
            ("missing", contract.SYNTHETIC_MISSING),
        ):
            bound.check(f"synthetic source: {name}", getattr(self, name))

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


def load_synthetic(spec: str) -> LoadedSource:
    params = SyntheticSpec.parse(spec)
    rng = np.random.default_rng(params.seed)
    coefficients = np.round(rng.uniform(-5.0, 5.0, params.features), 3)
    intercept = float(np.round(rng.uniform(-2.0, 2.0), 3))
    x = rng.standard_normal((params.rows, params.features))
    y = x @ coefficients + intercept + params.noise * rng.standard_normal(params.rows)
    if params.missing:
        x[rng.random(x.shape) < params.missing] = np.nan
    columns = check_columns([*(f"x{j}" for j in range(1, params.features + 1)), "target"])
    description = {
        "type": "synthetic",
        **asdict(params),
        "coefficients": coefficients.tolist(),
        "intercept": intercept,
    }
    return LoadedSource(Table(columns, np.column_stack([x, y])), description, "synthetic")
