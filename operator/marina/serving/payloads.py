"""Payload logs and ground truth: answered rows and true targets kept as Parquet parts in object storage.

On the request's path a sampled request costs one tuple appended to a bounded list under an uncontended
lock: no copy (the arrays a request hands over are never written afterwards, as for `recording`), no
Parquet, no I/O. One background thread takes what is pending when `flush_rows` rows are waiting or
`flush_seconds` have passed, builds the table and writes it through `marina.storage` (the pod's own
storage identity). `recording.Recorder` joins its batches on the request path, which suits its
microsecond sinks; here the join, the encoding and the upload all happen on the writer thread, so the
rows are handed over as they came (with their request id and arrival time, which the Recorder's sinks
never see).

Back-pressure: each stream holds at most `2 * flush_rows` rows (and never fewer than one feedback
request's limit). A request whose rows do not fit is not logged, and its rows count as dropped; a part
that cannot be written after `attempts` tries counts its rows as failed. Both are in
`marina_payload_rows_total`. Feedback is different: a client that is told 503 can send it again, so a
full feedback buffer refuses the request instead of dropping it.

Layout under the prefix (`s3://<bucket>/logs/<namespace>/<name>/` on a cluster):

    predictions/date=YYYY-MM-DD/<UTC time>-<pod>-<seq>.parquet
        id, row, time, model, track, one column per raw input, prediction
    feedback/date=YYYY-MM-DD/<UTC time>-<pod>-<seq>.parquet
        id, row, time, target

`date` is the UTC day of the rows' `time` (a part never spans two days). An input named like one of the
fixed columns is stored as `input.<name>`. `marina.data.served` reads them back and joins them.
"""

from __future__ import annotations

import io
import logging
import math
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from marina import storage
from marina.data.served import FEEDBACK, PREDICTIONS, logged_name
from marina.serving.errors import BadRequest
from marina.serving.model import ServedModel

STREAMS = (PREDICTIONS, FEEDBACK)
WRITTEN, DROPPED, FAILED = "written", "dropped", "failed"
OUTCOMES = (WRITTEN, DROPPED, FAILED)
STABLE, CANARY = "stable", "canary"
TRACKS = (STABLE, CANARY)
#: Feedback rows one request may carry (more are refused with a 400 naming the limit).
FEEDBACK_MAX_ROWS = 10_000
#: The longest request id a feedback entry may name.
MAX_ID_LENGTH = 256
#: On shutdown, the pending rows get this long to reach storage (inside the pod's grace period).
SHUTDOWN_SECONDS = 4.0
PARQUET_TYPE = "application/vnd.apache.parquet"
log = logging.getLogger("marina.serving.payloads")


@dataclass(frozen=True)
class LogSettings:
    """Where and how much to log (the server's `--log-*` flags)."""

    prefix: str  # ends in `/`
    sample_rate: float = 1.0
    flush_rows: int = 10_000
    flush_seconds: float = 60.0
    track: str = STABLE
    pod: str = field(default_factory=socket.gethostname)
    attempts: int = 3  # tries per part before its rows count as failed
    retry_seconds: float = 0.5  # the first pause between tries (doubling)

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(f"the sample rate must be in [0, 1], got {self.sample_rate}")
        if self.flush_rows < 1 or not self.flush_seconds > 0:
            raise ValueError("flush rows and flush seconds must be positive")
        if self.track not in TRACKS:
            raise ValueError(f"the track must be one of {', '.join(TRACKS)}, got {self.track!r}")
        if not self.prefix.endswith("/"):
            object.__setattr__(self, "prefix", self.prefix + "/")


#: One sampled request as the request path hands it over: (request id, arrival in seconds since the
#: epoch, (rows, n_features) float64 features, the raw columns in input order for a model with categories
#: or None, predictions). A plain tuple: a NamedTuple's constructor cost 0.3 us on the request's path.
Prediction = tuple[str, float, np.ndarray, Sequence[Any] | None, np.ndarray]


class Feedback(NamedTuple):
    """One feedback request, validated."""

    ids: list[str]
    rows: np.ndarray  # int32: the row of the request each target belongs to
    targets: np.ndarray  # float64
    arrived: float


class _Buffer:
    """One stream's pending entries, bounded in rows. Without a lock: only the event loop's thread offers
    (appends, and counts what it added and dropped), only the writer takes (pops from the other end, and
    counts what it took, wrote and failed); each counter has one writer, and a stale read of the other
    side's only overstates what is pending (the bound holds)."""

    def __init__(self, capacity: int, size: Callable[[Any], int]) -> None:
        self.capacity = capacity
        self.size = size  # an entry's rows
        self.entries: deque[Any] = deque()
        self.added = 0
        self.taken = 0
        self.counts = dict.fromkeys(OUTCOMES, 0)

    @property
    def rows(self) -> int:
        return self.added - self.taken

    def offer(self, entry: Any, rows: int) -> int:
        """Add an entry of `rows` rows; the rows now pending, or -1 (and the rows counted as dropped)
        when they do not fit."""
        pending = self.added - self.taken + rows
        if pending > self.capacity:
            self.counts[DROPPED] += rows
            return -1
        self.entries.append(entry)
        self.added += rows
        return pending

    def take(self) -> list[Any]:
        """What is pending now (entries offered meanwhile stay for the next take)."""
        popleft = self.entries.popleft
        entries = [popleft() for _ in range(len(self.entries))]
        self.taken += sum(map(self.size, entries))
        return entries


def sampler(rate: float) -> Callable[[str], bool]:
    """Whether a request id is logged: its CRC-32 below `rate` of the range, so every pod (and every
    retry of one request) decides the same and a request's rows are kept or left together."""
    if rate >= 1.0:
        return lambda request_id: True
    if rate <= 0.0:
        return lambda request_id: False
    threshold = int(rate * 2**32)
    return lambda request_id: zlib.crc32(request_id.encode()) < threshold


class PayloadLog(Collector):
    """The payload log and the feedback of one served model, with their writer thread (started by
    `start`, stopped by `close`, which writes what is pending)."""

    def __init__(
        self,
        settings: LogSettings,
        model: ServedModel,
        write: Callable[[str, bytes], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.model = model
        self.sampled = sampler(settings.sample_rate)
        self.samples = settings.sample_rate < 1.0  # whether `sampled` must be asked at all
        self.clock = clock
        # one try per call: the log's own tries (`attempts`) keep within the shutdown's deadline
        self._write = write or (
            lambda uri, data: storage.write_bytes(uri, data, PARQUET_TYPE, retrying=False)
        )
        capacity = 2 * settings.flush_rows
        self.buffers = {
            PREDICTIONS: _Buffer(capacity, _prediction_rows),
            FEEDBACK: _Buffer(max(capacity, 2 * FEEDBACK_MAX_ROWS), _feedback_rows),
        }
        self.predictions, self.flush_rows = self.buffers[PREDICTIONS], settings.flush_rows
        self.failed_writes = 0
        self._sequence = 0
        self._writing = threading.Lock()  # one part at a time, whoever flushes
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._columns = _input_columns(model)

    # ---------------------------------------------------------------- the request path

    def add(
        self,
        request_id: str,
        features: np.ndarray,
        predictions: np.ndarray,
        columns: Sequence[Any] | None = None,
    ) -> None:
        """An answered request's rows, when its id is sampled; dropped and counted when they do not fit."""
        if self.samples and not self.sampled(request_id):
            return
        entry = (request_id, self.clock(), features, columns, predictions)
        if self.predictions.offer(entry, len(predictions)) >= self.flush_rows:
            self._wake.set()

    def add_feedback(self, feedback: Feedback) -> bool:
        """Feedback rows; False (nothing kept) when the buffer is full."""
        pending = self.buffers[FEEDBACK].offer(feedback, len(feedback.ids))
        if pending >= self.settings.flush_rows:
            self._wake.set()
        return pending >= 0

    # ---------------------------------------------------------------- the writer

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="marina-payload-log", daemon=True)
        self._thread.start()

    def close(self, seconds: float = SHUTDOWN_SECONDS) -> None:
        """Stop the writer and write the pending rows (one try each, within `seconds`); what is left
        after that counts as failed."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(seconds)
            if thread.is_alive():
                log.warning("payload log: pending rows not written within %.0f s of shutdown", seconds)
        else:
            self.flush(deadline=time.monotonic() + seconds)

    def flush(self, deadline: float = math.inf) -> None:
        """Write every pending row now (the writer thread does this on its own)."""
        for stream in STREAMS:
            self._flush(stream, deadline)

    def _run(self) -> None:
        period = self.settings.flush_seconds
        due = time.monotonic() + period
        while not self._stopping:
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._stopping:
                break
            now = time.monotonic()
            for stream in STREAMS:
                if now >= due or self.buffers[stream].rows >= self.settings.flush_rows:
                    self._flush(stream)
            if now >= due:
                due = now + period
        self.flush(deadline=time.monotonic() + SHUTDOWN_SECONDS)

    def _flush(self, stream: str, deadline: float = math.inf) -> None:
        with self._writing:
            self._flush_now(stream, deadline)

    def _flush_now(self, stream: str, deadline: float) -> None:
        buffer = self.buffers[stream]
        entries = buffer.take()
        if not entries:
            return
        try:
            tables = list(self._tables(stream, entries))
        except Exception:  # a bug: keep serving, and say so
            log.exception("payload log: cannot build the %s table", stream)
            buffer.counts[FAILED] += sum(map(buffer.size, entries))
            return
        for day, table in tables:
            written = self._put(stream, day, table, deadline)
            buffer.counts[WRITTEN if written else FAILED] += table.num_rows

    def _put(self, stream: str, day: str, table: Any, deadline: float) -> bool:
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue()
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        name = f"{stamp}Z-{self.settings.pod}-{self._sequence:06d}.parquet"
        uri = f"{self.settings.prefix}{stream}/date={day}/{name}"
        pause = self.settings.retry_seconds
        for attempt in range(1, self.settings.attempts + 1):
            try:
                self._write(uri, data)
                return True
            except Exception as exc:  # storage down, denied, or a bug: never the request's problem
                self.failed_writes += 1
                log.warning("payload log: cannot write %s (try %d): %s", uri, attempt, exc)
            last = attempt == self.settings.attempts or self._stopping
            if last or time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)
            pause *= 2
        return False

    def _tables(self, stream: str, entries: list[Any]) -> Iterator[tuple[str, Any]]:
        """Each UTC day's rows of `entries` as one Arrow table."""
        table = self._predictions(entries) if stream == PREDICTIONS else _feedback(entries)
        yield from _by_day(table)

    def _predictions(self, entries: list[Prediction]) -> Any:
        import pyarrow as pa

        ids, arrived, features, columns, predictions = zip(*entries, strict=True)  # transposed in C
        counts = np.fromiter(map(len, predictions), np.int64, len(entries))
        total = int(counts.sum())
        single = total == len(entries)  # one row a request: nothing to repeat
        matrix = np.concatenate(features)
        table: dict[str, Any] = {
            "id": pa.array(ids if single else np.repeat(np.array(ids, dtype=object), counts), pa.string()),
            "row": _rows_within(counts),
            "time": _timestamps(np.array(arrived) if single else np.repeat(np.array(arrived), counts)),
            "model": pa.repeat(pa.scalar(self.model.sha256), total),
            "track": pa.repeat(pa.scalar(self.settings.track), total),
        }
        for index, (column, offset, category) in enumerate(self._columns):
            if category:
                values = [value for raw in columns for value in raw[index]]
                table[column] = pa.array(values, type=pa.string())
            else:
                table[column] = pa.array(matrix[:, offset])
        table["prediction"] = pa.array(np.concatenate(predictions))
        return pa.table(table)

    # ---------------------------------------------------------------- metrics

    def collect(self) -> Iterator[Metric]:
        rows = CounterMetricFamily(
            "marina_payload_rows_total",
            "Payload-log and feedback rows: written to storage, dropped (buffer full) or failed (not "
            "written after every try), by stream.",
            labels=("stream", "outcome"),
        )
        pending = GaugeMetricFamily(
            "marina_payload_buffered_rows",
            "Rows waiting in the buffer to be written, by stream.",
            labels=("stream",),
        )
        for stream, buffer in self.buffers.items():
            for outcome, count in buffer.counts.items():
                rows.add_metric([stream, outcome], count)
            pending.add_metric([stream], buffer.rows)
        yield rows
        yield pending
        yield CounterMetricFamily(
            "marina_payload_write_errors_total",
            "Tries to write a payload-log or feedback part that failed.",
            value=self.failed_writes,
        )


def _input_columns(model: ServedModel) -> list[tuple[str, int, bool]]:
    """(column name, feature offset, is a category) per raw input, in input order."""
    raw = model.raw_inputs
    return [
        (logged_name(item.name), offset, item.is_category)
        for item, offset in zip(raw.items, raw.offsets, strict=False)
    ]


def _prediction_rows(entry: Prediction) -> int:
    return len(entry[4])


def _feedback_rows(entry: Feedback) -> int:
    return len(entry.ids)


def _rows_within(counts: np.ndarray) -> Any:
    """Each row's index within its request: 0..count-1 per request."""
    import pyarrow as pa

    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return pa.array((np.arange(int(counts.sum())) - starts).astype(np.int32))


def _timestamps(seconds: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.array((seconds * 1e6).astype(np.int64), type=pa.timestamp("us", tz="UTC"))


def _feedback(entries: list[Feedback]) -> Any:
    import pyarrow as pa

    counts = np.fromiter((len(entry.ids) for entry in entries), np.int64, len(entries))
    return pa.table(
        {
            "id": pa.array([request_id for entry in entries for request_id in entry.ids], type=pa.string()),
            "row": pa.array(np.concatenate([entry.rows for entry in entries])),
            "time": _timestamps(np.repeat(np.array([entry.arrived for entry in entries]), counts)),
            "target": pa.array(np.concatenate([entry.targets for entry in entries])),
        }
    )


def _by_day(table: Any) -> Iterator[tuple[str, Any]]:
    """The table's rows per UTC day of their `time`, as (YYYY-MM-DD, rows of that day)."""
    import pyarrow as pa

    days = table.column("time").cast("int64").to_numpy() // 86_400_000_000
    for day in np.unique(days).tolist():
        rows = table if days[0] == days[-1] == day else table.filter(pa.array(days == day))
        yield datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d"), rows


def parse_feedback(payload: Any, arrived: float) -> Feedback:
    """`[{"id": ..., "target": ..., "row": ...}, ...]` or `{"feedback": [...]}` → Feedback, or a
    BadRequest naming the entry and the field. `row` (default 0) is the row within the request."""
    items = payload.get("feedback") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise BadRequest(
            'feedback must be a JSON array of {"id": ..., "target": ...} objects (or an object whose '
            f"'feedback' field is one), got {_kind(items)}"
        )
    if not items:
        raise BadRequest("feedback holds no entries")
    if len(items) > FEEDBACK_MAX_ROWS:
        raise BadRequest(f"feedback holds {len(items)} entries; send at most {FEEDBACK_MAX_ROWS} per request")
    ids: list[str] = []
    rows = np.zeros(len(items), dtype=np.int32)
    targets = np.empty(len(items))
    for index, item in enumerate(items):
        where = f"feedback[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be a JSON object with 'id' and 'target', got {_kind(item)}")
        request_id, target, row = item.get("id"), item.get("target"), item.get("row", 0)
        if not isinstance(request_id, str) or not request_id:
            raise BadRequest(f"{where}.id must be a request id (a non-empty string), got {_kind(request_id)}")
        if len(request_id) > MAX_ID_LENGTH:
            raise BadRequest(f"{where}.id is {len(request_id)} characters long; at most {MAX_ID_LENGTH}")
        if not _finite_number(target):
            raise BadRequest(f"{where}.target must be a finite number, got {_kind(target)}")
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < 2**31:
            raise BadRequest(f"{where}.row must be a non-negative integer (the row within the request)")
        ids.append(request_id)
        rows[index] = row
        targets[index] = target
    return Feedback(ids, rows, targets, arrived)


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float64
        return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", dict: "an object", list: "an array"}
    return names.get(type(value), repr(value) if isinstance(value, int | float) else type(value).__name__)
