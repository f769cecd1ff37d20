"""A Dataset's `servedLogs` source: the rows a ModelDeployment served joined with their truth
(`marina.data.served`, the join its live accuracy makes), as a table of its raw inputs and the target;
alone, or after the rows of another source (`union`).

Columns: every raw input the payload log holds (an input logged as `input.<name>` is `<name>` again), then
the truth under the Dataset's target name. Rows: one per labelled (id, row), in the join's order (prediction
time, id, row), so the same logs and feedback give the same rows, hence the same dataset version; more
feedback gives more rows and a new version. A text input is a category column, its values coded in order
of first appearance (as the file sources decode text). Which rows are read is the live check's window:
feedback received in the last `window_hours` before the preparation, predictions from `label_delay_hours`
before that.

Memory: the parts' rows as read (about 130 bytes a row with 10 numeric inputs), filtered part by part;
only the keys are sorted, grouped and joined; the joined rows are copied once, then to float64 (8 bytes a
cell) once the parts are let go. Measured with 10 inputs (`marina prepare --source served`, VmHWM): 245
MiB for 100,000 rows read, 360 MiB for 400,000, so about 200 MiB plus 400 bytes a row: the default
maxRows of 500,000 fits the prepare Job's default limit of 512Mi; raise spec.resources.limits.memory with
maxRows.

Every object read is named in the source's description, which dataset.json keeps as its `source`: the
prefixes, the window, the rows, and each part with its sha256 (`read`), plus one sha256 over them; a model
trained on the dataset carries the same without the list (`lineage`). An object that cannot be read (a
part cut short, a malformed upload) fails the preparation, naming it: a model is never trained on rows
silently left out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from marina.data import served
from marina.data.sources import CHUNK_CELLS, Source
from marina.data.table import DataError, Table, check_columns

#: The Dataset field these rows come from: errors name it.
FIELD = "spec.source.servedLogs"
TYPE = "servedLogs"
UNION = "union"
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class ServedLogs:
    """Which served rows to read: the ModelDeployment's logs prefix, its uploads prefix, and the window."""

    logs: str  # s3://<bucket>/logs/<namespace>/<name>/
    uploads: str | None
    window_hours: int
    label_delay_hours: int
    max_rows: int

    @property
    def deployment(self) -> str:
        return self.logs.rstrip("/").rsplit("/", 1)[-1]


def open_served(logs: ServedLogs, target: str, now: float | None = None, required: bool = True) -> Source:
    """The labelled rows as a source; DataError naming FIELD when an object cannot be read, when an input is
    named like the target, or (when `required`) when there are no labelled rows yet."""
    window = served.Window.of(time.time() if now is None else now, logs.window_hours, logs.label_delay_hours)
    read = served.read(logs.logs, window, logs.max_rows, logs.uploads, inputs=True)
    if read.unreadable:
        raise DataError(
            f"{FIELD}: {len(read.unreadable)} object(s) of ModelDeployment {logs.deployment}'s logs or truth "
            f"cannot be read; fix or remove them (first: {read.unreadable[0]})"
        )
    joined = served.join(read.predictions, read.feedback)
    if required and joined.rows == 0:
        raise DataError(f"{FIELD}: no labelled rows yet: {_counts(logs, read, joined)}")
    description = _description(logs, window, read, joined)
    del read  # the parts as read: only the joined rows are needed from here (memory, see the docstring)
    table = _table(joined.table, target) if joined.rows else Table((target,), np.empty((0, 1)))
    del joined

    def reader(selected: tuple[str, ...]) -> Iterator[Table]:
        index = [table.columns.index(column) for column in selected]
        step = max(1, CHUNK_CELLS // max(len(index), 1))
        for start in range(0, table.rows, step):
            yield Table(selected, table.values[start : start + step][:, index], table.dictionaries)

    return Source(table.columns, description, logs.deployment, reader, table.rows)


def _counts(logs: ServedLogs, read: served.Read, joined: served.Joined) -> str:
    return (
        f"{joined.feedback_rows} feedback rows in the last {logs.window_hours} hours, {joined.unmatched} of "
        f"them matching no logged prediction; {read.predictions.num_rows} predictions read under {logs.logs} "
        f"(and truth files under {logs.uploads}); is spec.logging.sampleRate above 0 on ModelDeployment "
        f"{logs.deployment}, and has its feedback arrived?"
    )


def _table(joined: Any, target: str) -> Table:
    """The raw inputs and the truth as float64, text inputs as codes into their dictionaries."""
    logged = [name for name in joined.column_names if name not in (*served.PREDICTION_COLUMNS, served.TRUTH)]
    inputs = [served.input_name(name) for name in logged]
    if target in inputs:
        raise DataError(
            f"{FIELD}: the served model has an input named {target!r}, the Dataset's target; name another "
            "target (spec.target)"
        )
    columns = check_columns([*inputs, target])
    values = np.empty((joined.num_rows, len(columns)))
    dictionaries: dict[str, list[str]] = {}
    for j, name in enumerate([*logged, served.TRUTH]):
        column = joined.column(name)
        if pa.types.is_string(column.type):
            values[:, j], dictionaries[columns[j]] = _codes(column)
        else:
            values[:, j] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return Table(columns, values, dictionaries)


def _codes(column: Any) -> tuple[np.ndarray, list[str]]:
    """Codes of a text column's cells into its values in order of first appearance (NaN: no value)."""
    values = pc.unique(column.drop_null()).combine_chunks()
    codes = pc.index_in(column, value_set=values).cast(pa.float64())
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.float64), values.to_pylist()


def _description(
    logs: ServedLogs, window: served.Window, read: served.Read, joined: served.Joined
) -> dict[str, Any]:
    models = sorted(set(joined.table.column("model").to_pylist())) if joined.rows else []
    return {
        "type": TYPE,
        "modelDeployment": logs.deployment,
        "logs": logs.logs,
        "uploads": logs.uploads,
        "window": {
            "start": _stamp(window.start),
            "end": _stamp(window.end),
            "predictionsFrom": _stamp(window.predictions_from),
        },
        "rows": joined.rows,
        "feedbackRows": joined.feedback_rows,
        "unmatched": joined.unmatched,
        "models": models,
        "parts": len(read.parts),
        "skippedParts": read.skipped_parts,
        "sha256": served.digest(read.parts),
        "read": [part.to_dict() for part in read.parts],
    }


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(_STAMP)


def lineage(description: dict[str, Any]) -> dict[str, Any] | None:
    """The served logs a prepared dataset came from, as a model artifact names them (the parts' list is
    left in dataset.json); None for a dataset of other sources."""
    found = description if description.get("type") == TYPE else None
    if description.get("type") == UNION:
        found = next((s for s in description.get("sources", []) if s.get("type") == TYPE), None)
    if found is None:
        return None
    return {key: value for key, value in found.items() if key != "read"}


# --- the union of another source's rows and the served ones ----------------------------------------------


def union(first: Source, second: Source) -> Source:
    """`first`'s rows, then `second`'s (the served rows), under `first`'s columns. A text column's codes of
    `second` are recoded into `first`'s dictionary (extended by the values it lacks); a column that is text
    on one side and numbers on the other, or one `second` lacks, is a DataError naming FIELD."""

    def reader(selected: tuple[str, ...]) -> Iterator[Table]:
        dictionaries: dict[str, list[str]] = {}
        for chunk in first.reader(selected):
            dictionaries = {name: list(values) for name, values in chunk.dictionaries.items()}
            yield chunk
        if not second.expected_rows:
            return
        missing = [name for name in selected if name not in second.columns]
        if missing:
            raise DataError(
                f"{FIELD}: the served rows have no column {missing[0]!r} of the Dataset's other source; they "
                f"have {', '.join(second.columns)} (list the served model's inputs in spec.features)"
            )
        for chunk in second.reader(selected):
            yield _recoded(chunk, dictionaries)

    description = {"type": UNION, "sources": [first.description, second.description]}
    expected = None if first.expected_rows is None else first.expected_rows + (second.expected_rows or 0)
    return Source(first.columns, description, first.default_name, reader, expected)


def _recoded(chunk: Table, dictionaries: dict[str, list[str]]) -> Table:
    """The served chunk's text codes as codes into `dictionaries` (extended in place)."""
    values = chunk.values.copy()
    for j, name in enumerate(chunk.columns):
        text_here, text_there = name in chunk.dictionaries, name in dictionaries
        if text_here != text_there:
            kinds = ("text", "numbers") if text_here else ("numbers", "text")
            raise DataError(
                f"{FIELD}: column {name!r} holds {kinds[0]} in the served rows but {kinds[1]} in the "
                "Dataset's other source"
            )
        if not text_here:
            continue
        merged = dictionaries[name]
        position = {value: code for code, value in enumerate(merged)}
        for value in chunk.dictionaries[name]:
            if value not in position:
                position[value] = len(merged)
                merged.append(value)
        mapping = np.array([position[value] for value in chunk.dictionaries[name]], dtype=np.float64)
        column = values[:, j]
        present = ~np.isnan(column)
        column[present] = mapping[column[present].astype(np.intp)]
    return Table(chunk.columns, values, dictionaries)
