"""Reading a ModelDeployment's payload logs and feedback for a live-accuracy check, within bounds.

Only the `date=YYYY-MM-DD` folders that can hold rows of the window are listed: feedback of the days
from the window's start to now, predictions from `label_delay_hours` before the window's start (truth
arrives later than the answer). Feedback is read first, then predictions, each newest part first (part
names begin with their UTC time), and only the columns the join needs. Once `max_rows` rows have been
read the remaining parts are skipped (counted, with their bytes): a check reads at most `max_rows` rows
plus one part (a serving pod writes at most twice its flush rows per part). Feedback rows received
before the window's start are dropped after reading (a day's folder holds the whole day). A part that is
not Parquet with the needed columns (written by hand, cut short) is skipped and counted as unreadable,
so one bad file cannot stop every check until retention deletes it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from marina import storage
from marina.controller.modeldeployments.performance import FEEDBACK_COLUMNS, PREDICTION_COLUMNS
from marina.serving.payloads import FEEDBACK, PREDICTIONS


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
class Read:
    """What a check read: Arrow tables of predictions and feedback, and what the cap left out."""

    predictions: Any
    feedback: Any
    rows_read: int
    skipped_parts: int
    skipped_bytes: int
    unreadable: tuple[str, ...] = ()  # parts that could not be read as the servers write them


def days(start: float, end: float) -> list[str]:
    """The `date=YYYY-MM-DD` folder names of the UTC days from `start` to `end`, newest first."""
    first = datetime.fromtimestamp(start, UTC).date()
    last = datetime.fromtimestamp(end, UTC).date()
    count = (last - first).days + 1
    return [f"date={(last - timedelta(days=back)).isoformat()}" for back in range(max(count, 0))]


def read(prefix: str, window: Window, max_rows: int) -> Read:
    """Read the window's feedback and the predictions it may join (StorageError when storage fails)."""
    budget = _Budget(max_rows)
    feedback = budget.read(_parts(f"{prefix}{FEEDBACK}/", days(window.start, window.end)), FEEDBACK_COLUMNS)
    feedback = _received_since(feedback, window.start)
    predictions = budget.read(
        _parts(f"{prefix}{PREDICTIONS}/", days(window.predictions_from, window.end)), PREDICTION_COLUMNS
    )
    return Read(
        predictions,
        feedback,
        budget.rows,
        budget.skipped_parts,
        budget.skipped_bytes,
        tuple(budget.unreadable),
    )


def _parts(folder: str, day_names: list[str]) -> list[storage.StoredObject]:
    """The Parquet parts of those days, newest first."""
    found: list[storage.StoredObject] = []
    for day in day_names:
        parts = [o for o in storage.list_objects(f"{folder}{day}/") if o.uri.endswith(".parquet")]
        found.extend(sorted(parts, key=lambda o: o.uri, reverse=True))
    return found


class _Budget:
    """Rows read so far against the cap, and the parts skipped beyond it."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows, self.rows, self.skipped_parts, self.skipped_bytes = max_rows, 0, 0, 0
        self.unreadable: list[str] = []

    def read(self, parts: list[storage.StoredObject], columns: tuple[str, ...]) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        for part in parts:
            if self.rows >= self.max_rows:
                self.skipped_parts += 1
                self.skipped_bytes += part.size
                continue
            data = storage.read_bytes(part.uri)
            try:
                table = pq.read_table(io.BytesIO(data), columns=list(columns)).select(list(columns))
                table = table.cast(_empty(columns).schema)
            except (pa.ArrowException, KeyError, ValueError):
                self.unreadable.append(part.uri)
                continue
            self.rows += table.num_rows
            tables.append(table)
        if not tables:
            return _empty(columns)
        return pa.concat_tables(tables)


def _empty(columns: tuple[str, ...]) -> Any:
    import pyarrow as pa

    types = {
        "id": pa.string(),
        "row": pa.int32(),
        "time": pa.timestamp("us", tz="UTC"),
        "model": pa.string(),
        "prediction": pa.float64(),
        "target": pa.float64(),
    }
    return pa.schema([(name, types[name]) for name in columns]).empty_table()


def _received_since(feedback: Any, start: float) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    since = pa.scalar(int(start * 1e6), pa.timestamp("us", tz="UTC"))
    return feedback.filter(pc.greater_equal(feedback.column("time"), since))
