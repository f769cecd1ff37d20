"""`marina predict`: score a dataset with a model, chunk by chunk, into content-addressed Parquet parts.

    marina predict --model URI [--sha256 HEX] --data SOURCE [--split test|train] --output PREFIX
                   [--outputs predict,lower,upper,contribution,extrapolation] [--level 0.95]
                   [--passthrough id,...] [--phase all|shard|manifest --shards N [--shard-index I]]
                   [--progress URI] [--result-file PATH]

SOURCE is a prepared dataset version (as `marina train --data` takes it; `--split` picks the split) or a
CSV/Parquet object, file, folder or s3:// prefix (`marina.data.sources`) whose columns include the
model's raw inputs by name (text for a category input). Each input part (a prepared split's Parquet
part, or a source's file) is a unit of work: read chunk by chunk, encoded as training encoded, scored
with exactly the code `marina serve` runs (`marina.model.answers`), and written as parts of at most
`PART_CELLS` cells, each named by the sha256 of its canonical content, under `<output>/parts/`; a part
already there holds the same rows and is not written again. Memory holds one chunk and one part
whatever the row count. A number input's missing cell is an error naming its column and row (the model
has nothing to predict with); a category's missing value encodes as no category, as in serving.

Columns of the parts: the `--passthrough` columns, then the answers asked for in the order of
`marina.contract.ANSWER_OUTPUTS`: predict, contribution_<input> for each raw input, lower, upper
(float64) and extrapolation (`inside`, or the reasons, as serving's output says them).

`<output>/manifest.json` lists the parts in the order of the rows they score, with their rows and
sha256, and what made them (model, data, outputs, level); its own `sha256` is that of this content.
It is written once: a re-run that finds it with the same sha256 writes nothing, one that would describe
other content stops instead of overwriting it.

Sharded (an Indexed Job of N pods, `--phase shard`): pod I scores every N-th unit from I (index from
`--shard-index` or `$JOB_COMPLETION_INDEX`) and writes `<output>/shards/shard-I-of-N-<sha256>.json`
listing its parts; a last step (`--phase manifest`) merges them into the manifest, refusing a
missing, extra or foreign shard by name.

Result JSON (stdout, one line, and `--result-file`):
  manifest, sha256, rows, parts, outputs, columns   (shard phase: shard, shards, record, rows, parts)
  extrapolated   rows outside the training data per reason (with the extrapolation output)
  reused         true when the manifest was already there with the same content
  peakMemoryBytes, format
Failures follow `marina.contract` (a bad cell, a missing column, an unusable source: data; flags: spec).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from marina import __version__, storage
from marina.contract import ANSWER_OUTPUTS, PredictRequest, SpecError
from marina.data import dataset, sources
from marina.data.encoding import Inputs
from marina.data.parts import canonical
from marina.data.table import DataError, Table
from marina.jobs import progress, results
from marina.jobs.progress import Progress
from marina.jobs.sharding import shard_index
from marina.model import artifact
from marina.model.answers import AnswerError, Answers, Reason
from marina.system.clock import utc_now
from marina.system.cpu import blas_beside_a_reader
from marina.system.memory import memory_used

FORMAT = "marina.dev/predictions/v1"
SHARD_FORMAT = "marina.dev/prediction-shard/v1"
PARTS_FOLDER = "parts"
SHARDS_FOLDER = "shards"
MANIFEST_NAME = "manifest.json"
#: Cells of a written part at most (8 MiB of float64): rows = this over the part's columns.
PART_CELLS = 1 << 20
FLOAT, TEXT = "float64", "string"
DROPPABLE = ("columns", "extrapolated")
_LENGTH = struct.Struct("<I")
_NULL = 0xFFFFFFFF


def configure(parser: argparse.ArgumentParser) -> None:
    PredictRequest.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return results.run_command(
        "predict", lambda: predict_command(PredictRequest.from_args(args)), DROPPABLE, args.result_file
    )


# -------------------------------------------------------------------------------- what is read


@dataclass(frozen=True)
class Unit:
    """One input part: the unit of work a shard takes."""

    index: int
    uri: str
    rows: int | None
    read: Callable[[Sequence[str]], Iterator[Table]]


@dataclass(frozen=True)
class Data:
    units: list[Unit]
    description: dict[str, Any]


def open_data(request: PredictRequest) -> Data:
    """A prepared dataset version (its split's parts) or a file source (its files), as units."""
    location = _prepared(request.data)
    if location is not None:
        return _prepared_units(dataset.open_stored(location), request.split)
    parts = sources.file_parts(request.data)
    units = [Unit(index, uri, None, _file_reader(uri)) for index, uri in enumerate(parts)]
    return Data(units, {"uri": request.data, "files": len(parts)})


def _file_reader(uri: str) -> Callable[[Sequence[str]], Iterator[Table]]:
    """One file of a source, read alone: its rows are numbered from 1 in messages, which name the file."""

    def read(selected: Sequence[str]) -> Iterator[Table]:
        return sources.open_files(uri).chunks(selected)

    return read


def _prepared(uri: str) -> str | None:
    """The version folder when `uri` names a prepared dataset (a folder with dataset.json)."""
    folder = uri.rstrip("/")
    if folder.endswith(dataset.MANIFEST_NAME):
        return folder
    try:
        return folder if storage.exists(storage.join(folder, dataset.MANIFEST_NAME)) else None
    except storage.StorageError:
        return None


def _prepared_units(stored: dataset.StoredDataset, split: str) -> Data:
    description = {"uri": stored.uri, "split": split, "dataset": stored.sha256, "version": stored.version}
    columns, dictionaries = stored.columns, stored.dictionaries
    if stored.legacy is not None:
        rows = stored.legacy.train if split == "train" else stored.legacy.test
        return Data(
            [Unit(0, stored.uri, len(rows), lambda selected: _select(Table(columns, rows), selected))],
            description,
        )

    def reader(position: int) -> Callable[[Sequence[str]], Iterator[Table]]:
        def read(selected: Sequence[str]) -> Iterator[Table]:
            for values in stored.raw_part(split, position):
                yield from _select(Table(columns, values, dictionaries), selected)

        return read

    records = stored.part_records(split)
    units = [
        Unit(k, f"{stored.parts_folder}/{r['name']}", int(r["rows"]), reader(k))
        for k, r in enumerate(records)
    ]
    return Data(units, description)


def _select(table: Table, selected: Sequence[str]) -> Iterator[Table]:
    unknown = [name for name in selected if name not in table.columns]
    if unknown:
        raise DataError(f"column {unknown[0]!r} not found; columns are: {', '.join(table.columns)}")
    index = [table.columns.index(name) for name in selected]
    yield Table(tuple(selected), table.values[:, index], table.dictionaries)


# -------------------------------------------------------------------------------- scoring


@dataclass
class Tally:
    """Rows scored and rows outside the training data (per reason, and per reason and input)."""

    rows: int = 0
    outside: dict[str, int] = field(default_factory=dict)

    def add(self, other: Mapping[str, int], rows: int) -> None:
        self.rows += rows
        for key, count in other.items():
            self.outside[key] = self.outside.get(key, 0) + count

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "outside": dict(sorted(self.outside.items()))}


class Scorer:
    """A model's answers for tables of its raw inputs: the columns of the written parts."""

    def __init__(self, model: artifact.ModelArtifact, request: PredictRequest) -> None:
        self.model, self.request = model, request
        self.answers = Answers(model)
        self.inputs: Inputs = self.answers.inputs
        self.coefficients = np.asarray(model.coefficients, dtype=np.float64)
        self.outputs = [name for name in ANSWER_OUTPUTS if name in request.outputs]
        self._check_outputs()
        self.selected = tuple(dict.fromkeys([*self.inputs.names, *request.passthrough]))

    def _check_outputs(self) -> None:
        """Refuse at once what this model cannot answer, before any row is read."""
        empty = np.zeros((0, len(self.coefficients)))
        try:
            if "contribution" in self.outputs:
                self.answers.contributions(empty)
            if "lower" in self.outputs or "upper" in self.outputs:
                self.answers.half_widths(empty, self.request.level)
        except AnswerError as exc:
            raise SpecError(f"--outputs: {exc}") from None

    def columns(self, passthrough_kinds: Mapping[str, str]) -> list[tuple[str, str]]:
        """(name, type) of the parts' columns."""
        columns = [(name, passthrough_kinds[name]) for name in self.request.passthrough]
        for name in self.outputs:
            if name == "contribution":
                columns += [(f"contribution_{item}", FLOAT) for item in self.inputs.names]
            else:
                columns.append((name, TEXT if name == "extrapolation" else FLOAT))
        return columns

    def score(
        self, table: Table, first_row: int
    ) -> tuple[list[np.ndarray | list[str | None]], dict[str, int]]:
        """The parts' columns for one chunk (rows numbered from `first_row` in messages) and its outside
        counts."""
        features = self.features(table, first_row)
        predictions = features @ self.coefficients + self.model.intercept
        if not np.isfinite(predictions).all():
            bad = int(np.flatnonzero(~np.isfinite(predictions))[0])
            raise DataError(
                f"row {first_row + bad + 1}: the prediction is not a finite number (inputs too large)"
            )
        columns: list[np.ndarray | list[str | None]] = [
            _passthrough(table, name, first_row) for name in self.request.passthrough
        ]
        counts: dict[str, int] = {}
        for name in self.outputs:
            if name == "predict":
                columns.append(predictions)
            elif name == "contribution":
                contributions = self.answers.contributions(features)
                columns += [contributions[:, k].copy() for k in range(contributions.shape[1])]
            elif name in ("lower", "upper"):
                width = self.answers.half_widths(features, self.request.level)
                columns.append(predictions - width if name == "lower" else predictions + width)
            else:
                verdicts = self.answers.verdicts(features)
                columns.append(list(verdicts.labels()))
                counts = _outside_counts(verdicts.counts(), verdicts)
        return columns, counts

    def features(self, table: Table, first_row: int) -> np.ndarray:
        """The model's design for a chunk of raw inputs, encoded as training encoded."""
        columns: list[Any] = []
        for item in self.inputs.items:
            values = table.values[:, table.columns.index(item.name)]
            if item.is_category:
                columns.append(_texts(values, table.dictionaries.get(item.name)))
                continue
            missing = np.isnan(values)
            if missing.any():
                row = first_row + int(np.flatnonzero(missing)[0]) + 1
                raise DataError(f"column {item.name!r} row {row}: missing value; the model needs a number")
            columns.append(values)
        features, _ = self.inputs.encode(columns)
        return features


def _outside_counts(by_reason: Mapping[Reason, int], verdicts: Any) -> dict[str, int]:
    counts = {
        "leverage": int(verdicts.leverage.sum()),
        "range": int(verdicts.range.any(axis=1).sum()),
        "category": int(verdicts.category.any(axis=1).sum()),
    }
    counts.update({str(reason): count for reason, count in by_reason.items() if reason.input is not None})
    return {key: count for key, count in counts.items() if count}


def _texts(values: np.ndarray, dictionary: Sequence[str] | None) -> list[str | None]:
    """A category column's cells as text: codes through the column's dictionary (NaN: missing), or numbers
    written as text when the source read the column as numbers."""
    if dictionary is None:
        return [
            None if math.isnan(v) else (str(int(v)) if v.is_integer() else repr(v)) for v in values.tolist()
        ]
    lookup = np.asarray([*dictionary, None], dtype=object)
    codes = np.where(np.isnan(values), len(dictionary), values).astype(np.intp)
    texts: list[str | None] = lookup[codes].tolist()
    return texts


def _passthrough(table: Table, name: str, first_row: int) -> np.ndarray | list[str | None]:
    values = table.values[:, table.columns.index(name)]
    if name in table.dictionaries:
        return _texts(values, table.dictionaries[name])
    return values.copy()


# -------------------------------------------------------------------------------- writing parts


@dataclass(frozen=True)
class PartRecord:
    name: str
    rows: int

    @property
    def sha256(self) -> str:
        return self.name.removesuffix(".parquet")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "sha256": self.sha256}


class PartWriter:
    """Scored rows cut into parts of `rows_per_part`, each written once under the sha256 of its content."""

    def __init__(self, folder: str, columns: Sequence[tuple[str, str]]) -> None:
        self.folder, self.columns = folder, list(columns)
        self.rows_per_part = max(1, PART_CELLS // max(len(self.columns), 1))
        self.pending: list[list[Any]] = [[] for _ in self.columns]
        self.pending_rows = 0
        self.parts: list[PartRecord] = []

    def add(self, values: Sequence[np.ndarray | list[str | None]]) -> None:
        rows = len(values[0]) if values else 0
        for held, column in zip(self.pending, values, strict=True):
            held.append(column)
        self.pending_rows += rows
        while self.pending_rows >= self.rows_per_part:
            self._write(self._take(self.rows_per_part))

    def close(self) -> list[PartRecord]:
        if self.pending_rows:
            self._write(self._take(self.pending_rows))
        return self.parts

    def _take(self, rows: int) -> list[np.ndarray | list[str | None]]:
        """The first `rows` pending rows, column by column; the rest stay pending."""
        taken: list[np.ndarray | list[str | None]] = []
        for j, (_, kind) in enumerate(self.columns):
            joined = _join(self.pending[j], kind)
            taken.append(joined[:rows])
            self.pending[j] = [joined[rows:]] if len(joined) > rows else []
        self.pending_rows -= rows
        return taken

    def _write(self, values: list[np.ndarray | list[str | None]]) -> None:
        name = content_digest(self.columns, values) + ".parquet"
        uri = storage.join(self.folder, name)
        if not storage.exists(uri):
            storage.write_bytes(uri, to_parquet(self.columns, values), "application/vnd.apache.parquet")
        self.parts.append(PartRecord(name, len(values[0])))


def _join(pieces: list[Any], kind: str) -> Any:
    if kind == TEXT:
        return [value for piece in pieces for value in piece]
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def content_digest(
    columns: Sequence[tuple[str, str]], values: Sequence[np.ndarray | list[str | None]]
) -> str:
    """sha256 of a part's canonical content: per column its name and type, then its values (little-endian
    float64 with one NaN, or each text's UTF-8 length and bytes, a null as length 2³² - 1). It depends on
    neither the Parquet library nor its settings."""
    digest = hashlib.sha256()
    for (name, kind), column in zip(columns, values, strict=True):
        digest.update(f"{name}\0{kind}\0{len(column)}\0".encode())
        if kind == FLOAT:
            digest.update(canonical(np.asarray(column, dtype=np.float64)).data)
        else:
            chunks = []
            for text in column:
                if text is None:
                    chunks.append(_LENGTH.pack(_NULL))
                else:
                    encoded = str(text).encode()
                    chunks += [_LENGTH.pack(len(encoded)), encoded]
            digest.update(b"".join(chunks))
    return digest.hexdigest()


def to_parquet(columns: Sequence[tuple[str, str]], values: Sequence[np.ndarray | list[str | None]]) -> bytes:
    """float64 columns plain-encoded (as dataset parts are), text columns dictionary-encoded (mostly
    `inside`), LZ4."""
    arrays = {
        name: pa.array(column, type=pa.string() if kind == TEXT else pa.float64())
        for (name, kind), column in zip(columns, values, strict=True)
    }
    buffer = io.BytesIO()
    pq.write_table(
        pa.table(arrays),
        buffer,
        compression="lz4",
        use_dictionary=[name for name, kind in columns if kind == TEXT],
        write_statistics=False,
    )
    return buffer.getvalue()


# -------------------------------------------------------------------------------- the command


@dataclass
class Scored:
    """What scoring some units produced: each unit's parts, in unit order, and the tally."""

    units: dict[int, list[PartRecord]] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)


def shard_of(request: PredictRequest) -> tuple[int, int]:
    """(this pod's shard, shards): the flag, or the index Kubernetes gives each pod of an Indexed Job."""
    if request.phase != "shard":
        return 0, 1
    return shard_index(request.shard_index, request.shards), request.shards


def score_units(
    scorer: Scorer, units: Sequence[Unit], folder: str, reporter: Progress
) -> tuple[Scored, list[tuple[str, str]]]:
    scored = Scored()
    columns: list[tuple[str, str]] | None = None
    for unit in units:
        writer: PartWriter | None = None
        row = 0
        try:
            for table in unit.read(scorer.selected):
                if columns is None:
                    kinds = {
                        n: (TEXT if n in table.dictionaries else FLOAT) for n in scorer.request.passthrough
                    }
                    columns = scorer.columns(kinds)
                writer = writer or PartWriter(folder, columns)
                values, counts = scorer.score(table, row)
                writer.add(values)
                row += table.rows
                scored.tally.add(counts, table.rows)
                reporter.rows(scored.tally.rows)
        except DataError as exc:
            raise DataError(str(exc) if unit.uri in str(exc) else f"{unit.uri}: {exc}") from exc
        scored.units[unit.index] = writer.close() if writer is not None else []
    return scored, columns or scorer.columns({n: FLOAT for n in scorer.request.passthrough})


def describe(
    request: PredictRequest, model: artifact.ModelArtifact, data: Data, columns: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """What made the parts: shards and the manifest must agree on it."""
    made: dict[str, Any] = {
        "model": {"uri": request.model, "sha256": model.sha256},
        "data": data.description,
        "outputs": [name for name in ANSWER_OUTPUTS if name in request.outputs],
        "passthrough": list(request.passthrough),
        "columns": [{"name": name, "type": kind} for name, kind in columns],
    }
    if "lower" in request.outputs or "upper" in request.outputs:
        made["level"] = request.level
    return made


def predict_command(request: PredictRequest) -> dict[str, Any]:
    model = artifact.load(request.model, request.sha256)
    scorer = Scorer(model, request)
    data = open_data(request)
    if request.phase == "manifest":
        return {**write_manifest_of_shards(request, model, data, request.shards), **memory_used()}
    index, shards = shard_of(request)
    mine = [unit for unit in data.units if unit.index % shards == index]
    total = sum(unit.rows or 0 for unit in mine) if all(unit.rows is not None for unit in mine) else None
    name = "marina predict" if shards == 1 else f"marina predict shard {index}"
    uri = (
        request.progress
        if shards == 1 or not request.progress
        else progress.shard_uri(request.progress, index)
    )
    reporter = Progress(name, total, uri)
    with blas_beside_a_reader():
        scored, columns = score_units(scorer, mine, storage.join(request.output, PARTS_FOLDER), reporter)
    reporter.done()
    made = describe(request, model, data, columns)
    if request.phase == "shard":
        record = write_shard(request, made, scored, index, shards)
        parts = sum(len(p) for p in scored.units.values())
        return {
            "shard": index,
            "shards": shards,
            "record": record,
            "rows": scored.tally.rows,
            "parts": parts,
            **memory_used(),
        }
    return {**write_manifest(request, made, scored), **memory_used()}


def write_shard(
    request: PredictRequest, made: dict[str, Any], scored: Scored, index: int, shards: int
) -> str:
    document = {
        "format": SHARD_FORMAT,
        **made,
        "shards": shards,
        "index": index,
        "units": [
            {"index": u, "parts": [p.to_dict() for p in parts]} for u, parts in sorted(scored.units.items())
        ],
        "tally": scored.tally.to_dict(),
    }
    body = _canonical(document)
    uri = storage.join(
        request.output, SHARDS_FOLDER, f"shard-{index}-of-{shards}-{hashlib.sha256(body).hexdigest()}.json"
    )
    if not storage.exists(uri):
        storage.write_bytes(uri, body, "application/json")
    return uri


def write_manifest_of_shards(
    request: PredictRequest, model: artifact.ModelArtifact, data: Data, shards: int
) -> dict[str, Any]:
    """The manifest of N shards' records (one per index, each made by this model from this data)."""
    folder = storage.join(request.output, SHARDS_FOLDER)
    names = storage.list_folder(folder)
    scored = Scored()
    made: dict[str, Any] | None = None
    for index in range(shards):
        prefix = f"shard-{index}-of-{shards}-"
        found = sorted({n for n in names if n.startswith(prefix) and n.endswith(".json")})
        if len(found) != 1:
            raise DataError(f"{folder}: expected one {prefix}<sha256>.json, found {len(found)}")
        body = storage.read_bytes(storage.join(folder, found[0]))
        if not found[0].endswith(f"-{hashlib.sha256(body).hexdigest()}.json"):
            raise DataError(f"{folder}/{found[0]}: its content does not hash to the sha256 in its name")
        document = json.loads(body)
        shard_made = {
            key: document.get(key) for key in ("model", "data", "outputs", "passthrough", "columns", "level")
        }
        shard_made = {key: value for key, value in shard_made.items() if value is not None}
        if shard_made["model"]["sha256"] != model.sha256 or shard_made["data"] != data.description:
            raise DataError(
                f"{folder}/{found[0]}: made by another model or from other data than this manifest's"
            )
        if made is not None and shard_made != made:
            raise DataError(f"{folder}/{found[0]}: made with other outputs or columns than shard 0")
        made = shard_made
        for unit in document["units"]:
            scored.units[int(unit["index"])] = [PartRecord(p["name"], int(p["rows"])) for p in unit["parts"]]
        scored.tally.add(document["tally"]["outside"], int(document["tally"]["rows"]))
    missing = [unit.index for unit in data.units if unit.index not in scored.units]
    if missing or made is None:
        raise DataError(f"{folder}: no shard scored input part {missing[0] if missing else 0}")
    return write_manifest(request, made, scored)


def write_manifest(request: PredictRequest, made: dict[str, Any], scored: Scored) -> dict[str, Any]:
    """`<output>/manifest.json`, written once; its sha256 is that of its content (not the time)."""
    parts = [part for _, unit in sorted(scored.units.items()) for part in unit]
    content = {
        "format": FORMAT,
        **made,
        "parts": [part.to_dict() for part in parts],
        "partsFolder": PARTS_FOLDER,
        "rows": sum(part.rows for part in parts),
        "extrapolated": dict(sorted(scored.tally.outside.items())),
    }
    digest = hashlib.sha256(_canonical(content)).hexdigest()
    uri = storage.join(request.output, MANIFEST_NAME)
    reused = storage.exists(uri)
    if reused:
        stored = _stored_sha256(uri)
        if stored != digest:
            raise DataError(
                f"{uri} describes other predictions ({stored}); refusing to overwrite it with {digest}"
            )
    else:
        document = {**content, "sha256": digest, "created": utc_now(), "codeVersion": __version__}
        storage.write_bytes(
            uri, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n", "application/json"
        )
    return {
        "manifest": uri,
        "sha256": digest,
        "rows": content["rows"],
        "parts": len(parts),
        "outputs": made["outputs"],
        "columns": [column["name"] for column in made["columns"]],
        "extrapolated": content["extrapolated"],
        "reused": reused,
    }


def _stored_sha256(uri: str) -> str | None:
    try:
        return str(json.loads(storage.read_bytes(uri))["sha256"])
    except (ValueError, KeyError, TypeError):
        return None


def _canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
