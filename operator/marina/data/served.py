"""Served rows: a ModelDeployment's payload log joined with the truth, the one join that live accuracy
(the operator's check) and retraining (a Dataset's `servedLogs` source, in the prepare Job) share, so the
rows live accuracy scores are the rows a retrained model learns from.

**Layout.** The serving pods write under the ModelDeployment's logs prefix
(`s3://<bucket>/logs/<namespace>/<name>/`, `marina.serving.payloads`):

    predictions/date=YYYY-MM-DD/<UTC time>-<pod>-<seq>.parquet
        id, row, time, model, track, one column per raw input, prediction
    feedback/date=YYYY-MM-DD/<UTC time>-<pod>-<seq>.parquet
        id, row, time, target

A team may also upload the truth as files under its raw area, `s3://<bucket>/raw/<namespace>/feedback/<name>/`
(any folders below): CSV (optionally gzip-compressed) or Parquet with columns `id` and `target`, and
optionally `row` (the row within the request, default 0); other columns are ignored, and so are files not
named `.csv`, `.csv.gz`, `.parquet` or `.pq`. An uploaded row was received when its file was last written
(its last-modified time). A file that cannot be read so gives an error naming the file, the column and
the row.

**The window** (`Window`). Feedback received in [start, end] counts (endpoint parts of those UTC days,
uploaded files last written since start); predictions made from `label_delay_hours` before the start
(the truth arrives later than the answer) are read to join it. Feedback is read first, then the uploads,
then predictions, each newest first, until `max_rows` rows are read; later parts are skipped and counted.

**The join** (`join`). Rows are keyed by (id, row): the request id the server answered with and the row
within that request. Feedback reported twice for one key counts once: the latest `time` wins (for equal
times, the one read from the later part or file name, then the later row in it); the same rule picks
one prediction for a key logged twice (a client reusing an id). Feedback with no logged prediction read
is `unmatched`. The joined rows come out ordered by (prediction time, id, row), whatever the order the
parts were listed or read in, so the same logs and feedback always give the same rows.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from marina import storage
from marina.data.table import DataError
from marina.system.modules import Lazy
from marina.system.text import one_line

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq
else:  # the operator imports this module for its names; pyarrow only once it reads served rows
    pa, pc, pa_csv, pq = (Lazy(f"pyarrow{part}") for part in ("", ".compute", ".csv", ".parquet"))

PREDICTIONS, FEEDBACK = "predictions", "feedback"
#: The logged columns that are not raw inputs (an input named like one is logged as `input.<name>`).
FIXED_COLUMNS = ("id", "row", "time", "model", "track", "prediction")
INPUT_PREFIX = "input."
PREDICTION_COLUMNS = ("id", "row", "time", "model", "prediction")
FEEDBACK_COLUMNS = ("id", "row", "time", "target")
#: Where a team uploads truth files, below its raw area: `raw/<namespace>/feedback/<modeldeployment>/`.
UPLOADS_FOLDER = "feedback"
UPLOADS = "uploads"  # the stream of uploaded truth files, as lineage names it
UPLOAD_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


@cache
def _types() -> dict[str, pa.DataType]:
    """The fixed columns' Arrow types (made on first use: pyarrow is imported then)."""
    return {
        "id": pa.string(),
        "row": pa.int32(),
        "time": pa.timestamp("us", tz="UTC"),
        "model": pa.string(),
        "prediction": pa.float64(),
        "target": pa.float64(),
    }


TRUTH = "_truth"  # the joined rows' target column
_SEQUENCE = "_sequence"  # (part rank, row in part): the tie-break of equal times, then dropped
_INDEX = "_index"  # a row's number in the table read, while only keys are sorted and joined
_PART_ROWS = 1 << 32


def logged_name(name: str) -> str:
    """The column a raw input is logged under."""
    return f"{INPUT_PREFIX}{name}" if name in FIXED_COLUMNS else name


def input_name(column: str) -> str:
    """The raw input a logged column holds (the inverse of `logged_name`)."""
    name = column.removeprefix(INPUT_PREFIX)
    return name if name in FIXED_COLUMNS else column


@dataclass(frozen=True)
class Window:
    """Feedback received in [start, end] counts; predictions are read from `predictions_from` on."""

    start: float  # seconds since the epoch
    end: float
    predictions_from: float

    @classmethod
    def of(cls, now: float, window_hours: int, label_delay_hours: int) -> Window:
        start = now - window_hours * 3600.0
        return cls(start, now, start - label_delay_hours * 3600.0)


@dataclass(frozen=True)
class Part:
    """One object read: where, its content's sha256, and its rows (for lineage)."""

    uri: str
    sha256: str
    rows: int
    stream: str  # PREDICTIONS, FEEDBACK, or UPLOADS for an uploaded file

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "rows": self.rows, "stream": self.stream}


@dataclass(frozen=True)
class Read:
    """What was read: Arrow tables of predictions and feedback, the parts, and what the cap left out."""

    predictions: Any
    feedback: Any
    rows_read: int
    skipped_parts: int
    skipped_bytes: int
    unreadable: tuple[str, ...] = ()  # "<uri>: why", for each object that could not be read
    parts: tuple[Part, ...] = ()


def days(start: float, end: float) -> list[str]:
    """The `date=YYYY-MM-DD` folder names of the UTC days from `start` to `end`, newest first."""
    first = datetime.fromtimestamp(start, UTC).date()
    last = datetime.fromtimestamp(end, UTC).date()
    count = (last - first).days + 1
    return [f"date={(last - timedelta(days=back)).isoformat()}" for back in range(max(count, 0))]


def read(logs: str, window: Window, max_rows: int, uploads: str | None = None, inputs: bool = False) -> Read:
    """Read the window's feedback (the endpoint's parts under `logs`, and the files under `uploads`) and
    the predictions it may join: only the join's columns, or with `inputs` every raw input too.
    StorageError when storage fails; an object that cannot be read is skipped and named in `unreadable`."""
    budget = _Budget(max_rows)
    folder = f"{logs}{FEEDBACK}/"
    received = budget.read(
        _parts(folder, days(window.start, window.end)), FEEDBACK, FEEDBACK_COLUMNS, window.start
    )
    if uploads is not None:
        received += budget.read(_uploaded(uploads, window.start), UPLOADS, FEEDBACK_COLUMNS, window.start)
    feedback = _ranked(received, FEEDBACK_COLUMNS)
    folders = days(window.predictions_from, window.end)
    answered = budget.read(
        _parts(f"{logs}{PREDICTIONS}/", folders),
        PREDICTIONS,
        PREDICTION_COLUMNS,
        window.predictions_from,
        inputs,
    )
    predictions = _ranked(answered, PREDICTION_COLUMNS)
    return Read(
        predictions,
        feedback,
        budget.rows,
        budget.skipped_parts,
        budget.skipped_bytes,
        tuple(budget.unreadable),
        tuple(part for part, _ in sorted(received + answered, key=lambda found: found[0].uri)),
    )


def _parts(folder: str, day_names: list[str]) -> list[storage.StoredObject]:
    """The Parquet parts of those days, newest first."""
    found: list[storage.StoredObject] = []
    for day in day_names:
        parts = [o for o in storage.list_objects(f"{folder}{day}/") if o.uri.endswith(".parquet")]
        found.extend(sorted(parts, key=lambda o: o.uri, reverse=True))
    return found


def _uploaded(prefix: str, since: float) -> list[storage.StoredObject]:
    """The truth files uploaded under `prefix` since the window's start, newest first."""
    files = [
        o
        for o in storage.list_objects(prefix)
        if o.uri.lower().endswith(UPLOAD_SUFFIXES) and (o.modified is None or o.modified.timestamp() >= since)
    ]
    return sorted(files, key=lambda o: (_modified(o), o.uri), reverse=True)


def _modified(found: storage.StoredObject) -> float:
    return found.modified.timestamp() if found.modified is not None else 0.0


class _Budget:
    """Rows read so far against the cap, the parts skipped beyond it, and those that could not be read."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows, self.rows, self.skipped_parts, self.skipped_bytes = max_rows, 0, 0, 0
        self.unreadable: list[str] = []

    def read(
        self,
        objects: list[storage.StoredObject],
        stream: str,
        columns: tuple[str, ...],
        since: float,
        inputs: bool = False,
    ) -> list[tuple[Part, Any]]:
        """Each object's rows of `time` at `since` or later as `columns` in their types (with `inputs`, the
        raw inputs too), filtered part by part so that the rows read are never all copied at once."""
        found = []
        for stored in objects:
            if self.rows >= self.max_rows:
                self.skipped_parts += 1
                self.skipped_bytes += stored.size
                continue
            data = storage.read_bytes(stored.uri)
            try:
                if stream == UPLOADS:
                    table = upload_table(stored.uri, data, _modified(stored))
                else:
                    table = _conform(_parquet(data, columns, inputs), columns, inputs)
            except DataError as error:
                self.unreadable.append(str(error))
                continue
            except (pa.ArrowException, KeyError, ValueError) as error:
                self.unreadable.append(
                    f"{stored.uri}: not a {stream} part with columns {', '.join(columns)} "
                    f"({one_line(str(error), 200)})"
                )
                continue
            self.rows += table.num_rows
            part = Part(stored.uri, hashlib.sha256(data).hexdigest(), table.num_rows, stream)
            found.append((part, _since(table, since)))
        return found


def _parquet(data: bytes, columns: tuple[str, ...], inputs: bool) -> Any:
    """A part's columns: the join's alone, or with `inputs` all of them (the model as a dictionary)."""
    if not inputs:
        return pq.read_table(io.BytesIO(data), columns=list(columns))
    return pq.read_table(io.BytesIO(data), read_dictionary=["model"])


def _conform(table: Any, columns: tuple[str, ...], inputs: bool) -> Any:
    """`columns` cast to their types, then (with `inputs`) every other column but `track`, numbers as
    float64 and text as strings."""
    schema = _empty(columns).schema
    if not inputs:
        return table.select(list(columns)).cast(schema)
    # One answering model for thousands of rows: kept as a dictionary, not a 64-byte string a row.
    schema = schema.set(
        schema.get_field_index("model"), pa.field("model", pa.dictionary(pa.int32(), pa.string()))
    )
    fixed = table.select(list(columns)).cast(schema)
    for name in table.column_names:
        if name in FIXED_COLUMNS:
            continue
        column = table.column(name)
        kind = (
            pa.string() if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) else None
        )
        fixed = fixed.append_column(name, column.cast(kind or pa.float64()))
    return fixed


def _ranked(found: list[tuple[Part, Any]], columns: tuple[str, ...]) -> Any:
    """The parts as one table with the tie-break sequence: the rank of the part's URI, then the row within
    it (so the order parts were listed or read in does not matter)."""
    if not found:
        return _with_sequence(_empty(columns), 0)
    ranks = {uri: rank for rank, uri in enumerate(sorted(part.uri for part, _ in found))}
    tables = [_with_sequence(table, ranks[part.uri]) for part, table in found]
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowException, ValueError) as error:
        raise DataError(
            f"the logged inputs differ in type between parts ({one_line(str(error), 200)})"
        ) from error


def _with_sequence(table: Any, rank: int) -> Any:
    sequence = rank * _PART_ROWS + np.arange(table.num_rows, dtype=np.int64)
    return table.append_column(_SEQUENCE, pa.array(sequence, pa.int64()))


def _empty(columns: tuple[str, ...]) -> Any:
    return pa.schema([(name, _types()[name]) for name in columns]).empty_table()


def _since(table: Any, start: float) -> Any:
    """The rows whose `time` is at `start` or later (a day's folder holds the whole day); the table itself
    when they all are."""
    since = pa.scalar(int(start * 1e6), pa.timestamp("us", tz="UTC"))
    kept = pc.greater_equal(table.column("time"), since)
    return table if pc.all(kept).as_py() is not False else table.filter(kept)


# --- uploaded truth files ---------------------------------------------------------------------------------


def upload_table(uri: str, data: bytes, modified: float) -> Any:
    """An uploaded truth file as feedback rows (id, row, time, target), every row received at `modified`;
    DataError naming the file, the column and the row when it cannot be."""
    try:
        table = _upload_columns(uri, data)
    except (pa.ArrowException, OSError, EOFError) as error:
        raise DataError(f"{uri}: not a readable CSV or Parquet file ({one_line(str(error), 200)})") from error
    missing = [name for name in ("id", "target") if name not in table.column_names]
    if missing:
        raise DataError(
            f"{uri}: no column {missing[0]!r}; an uploaded truth file needs columns id and target "
            f"(and optionally row), it has: {', '.join(table.column_names) or 'none'}"
        )
    rows = table.num_rows
    return pa.table(
        {
            "id": _ids(uri, table.column("id")),
            "row": _rows(uri, table.column("row"))
            if "row" in table.column_names
            else pa.array(np.zeros(rows, np.int32)),
            "time": pa.array(np.full(rows, int(modified * 1e6), np.int64), _types()["time"]),
            "target": _targets(uri, table.column("target")),
        }
    )


def _upload_columns(uri: str, data: bytes) -> Any:
    if uri.lower().endswith((".parquet", ".pq")) or data[:4] == b"PAR1":
        return pq.read_table(io.BytesIO(data))
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = dict.fromkeys(("id", "row", "target"), pa.string())
    return pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(use_threads=False),
        convert_options=pa_csv.ConvertOptions(column_types=text, strings_can_be_null=True),
    )


def _cells(column: Any) -> list[Any]:
    return column.to_pylist()  # type: ignore[no-any-return]


def _bad(uri: str, name: str, row: int, cell: Any, what: str) -> DataError:
    shown = "empty" if cell is None or cell == "" else repr(cell)
    return DataError(f"{uri}: column {name!r} row {row + 1}: {shown} is not {what}")


def _ids(uri: str, column: Any) -> Any:
    if not (pa.types.is_string(column.type) or pa.types.is_integer(column.type)):
        raise DataError(f"{uri}: column 'id' holds {column.type}; it must hold request ids (text)")
    ids = column.cast(pa.string())
    if ids.null_count or pc.any(pc.equal(ids, "")).as_py():
        row = next(i for i, cell in enumerate(_cells(ids)) if not cell)
        raise _bad(uri, "id", row, None, "a request id")
    return ids.combine_chunks()


def _targets(uri: str, column: Any) -> Any:
    try:
        values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowException, ValueError):
        values = None
    if values is None or column.null_count or not np.isfinite(values).all():
        for row, cell in enumerate(_cells(column)):
            if not _finite(cell):
                raise _bad(uri, "target", row, cell, "a finite number")
    return pa.array(values, pa.float64())


def _rows(uri: str, column: Any) -> Any:
    cells = _cells(column)
    rows = np.zeros(len(cells), np.int32)
    for index, cell in enumerate(cells):
        try:
            value = int(str(cell).strip()) if isinstance(cell, str) else cell
        except ValueError:
            value = None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise _bad(uri, "row", index, cell, "a row within the request (a non-negative integer)")
        rows[index] = value
    return pa.array(rows)


def _finite(cell: Any) -> bool:
    try:
        return cell is not None and not isinstance(cell, bool) and bool(np.isfinite(float(cell)))
    except (TypeError, ValueError):
        return False


# --- the join -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Joined:
    """The labelled rows: one per (id, row) with feedback and a logged prediction, ordered by (prediction
    time, id, row), with the prediction's columns and the latest target (column TRUTH, apart from any
    logged input); and what did not join."""

    table: Any
    feedback_rows: int  # distinct (id, row) keys of feedback
    unmatched: int  # of those, the keys no logged prediction was read for

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)


def join(predictions: Any, feedback: Any) -> Joined:
    """Join Arrow tables of predictions (id, row, time, model, prediction, inputs...) and feedback (id,
    row, time, target) on (id, row) by the rules of the module's docstring. Only the keys are sorted,
    grouped and joined; the predictions' columns are copied once, by the final take (a prepare Job
    holds every raw input of up to maxRows rows)."""
    truth = feedback.select(["id", "row", "target"]).take(latest(feedback))
    targets = truth.rename_columns(["id", "row", TRUTH])
    chosen = latest(predictions)
    keys = predictions.select(["id", "row", "time"]).take(chosen).append_column(_INDEX, chosen)
    joined = keys.join(targets, keys=["id", "row"], join_type="inner", use_threads=False)
    ordered = joined.sort_by([("time", "ascending"), ("id", "ascending"), ("row", "ascending")])
    columns = [name for name in predictions.column_names if name != _SEQUENCE]
    table = predictions.select(columns).take(ordered.column(_INDEX))
    table = table.append_column(TRUTH, ordered.column(TRUTH))
    return Joined(table, targets.num_rows, targets.num_rows - joined.num_rows)


def latest(table: Any) -> Any:
    """The row numbers of one row per (id, row): the one of the latest `time`, then of the latest
    sequence. Only the order of (time, sequence) is sorted; the keys are grouped by hash on it."""
    sequence = (
        table.column(_SEQUENCE)
        if _SEQUENCE in table.column_names
        else pa.array(np.zeros(table.num_rows, np.int64))
    )
    ordering = pa.table({"time": table.column("time"), _SEQUENCE: sequence})
    keys_order = [("time", "ascending"), (_SEQUENCE, "ascending")]
    order = np.asarray(pc.sort_indices(ordering, sort_keys=keys_order).to_numpy(), dtype=np.int64)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order), dtype=np.int64)
    keys = pa.table({"id": table.column("id"), "row": table.column("row"), _INDEX: pa.array(rank)})
    latest_rank = keys.group_by(["id", "row"], use_threads=False).aggregate([(_INDEX, "max")])
    return pa.array(order[latest_rank.column(f"{_INDEX}_max").to_numpy()])


def digest(parts: Sequence[Part]) -> str:
    """One sha256 over the parts read (URI and content digest, in URI order): what lineage names."""
    lines = "".join(f"{part.uri} {part.sha256}\n" for part in sorted(parts, key=lambda p: p.uri))
    return hashlib.sha256(lines.encode()).hexdigest()
