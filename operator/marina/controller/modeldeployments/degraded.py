"""Live-accuracy checks (spec.monitoring.performance): read the labelled rows (`marina.data.served`),
judge them (`performance`, pure), and say what status.monitoring.performance and the Degraded condition
become and which event that earns; `monitor.tick` writes it.

A check reads object storage, which may take seconds, so it runs *before* the tick takes the object's
lock (`measure`): the reconciler never waits on it. What it needs (the settings and the serving model)
was noted in the loop's memory by the previous tick (`note`), under the lock; the verdict is written
under the lock only if the same model still serves, else the next tick measures again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from marina import storage
from marina.controller.modeldeployments import monitoring, performance
from marina.controller.modeldeployments.performance import DEGRADED, Assessment, Labelled, Reference
from marina.controller.modeldeployments.spec import Monitoring, Performance
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.conditions import find_condition, with_condition, without_condition
from marina.controller.shared.plan import Post
from marina.data import served
from marina.model import artifact
from marina.system.clock import utc_now
from marina.system.text import one_line

WANTED = "performance-wanted"  # key in the loop's memory: the `Wanted` of the next check
LAST_CHECK = "performance-last-check"  # time.monotonic() of the last check
REFERENCES = "performance-reference"  # (sha256, Reference or the reason there is none) of the served model


@dataclass(frozen=True)
class Wanted:
    """What a check needs, noted under the lock: the settings and the serving model."""

    settings: Performance
    model: ModelReference


@dataclass(frozen=True)
class Measured:
    """A check's result for `model` (a sha256): the verdict and status.monitoring.performance."""

    model: str
    assessment: Assessment
    fields: Mapping[str, Any]


#: (what a check needs, now in seconds since the epoch) -> its result.
Measure = Callable[[Wanted, float], Measured]


@dataclass(frozen=True)
class Check:
    """What the Degraded verdict changes: status fields and the event a change of the condition earns."""

    fields: Mapping[str, Any]
    events: tuple[Post, ...] = ()
    assessment: Assessment | None = None


def measurer(prefix: str, memory: MutableMapping[str, Any], uploads: str | None = None) -> Measure:
    """The check on real storage: the logs under `prefix` and the truth files uploaded under `uploads`,
    the reference from the model's artifact (cached in `memory` by sha256, read once per model)."""

    def measure(wanted: Wanted, now: float) -> Measured:
        reference = _reference(wanted.model, memory)
        return evaluate(wanted, now, prefix, reference, uploads)

    return measure


def evaluate(
    wanted: Wanted, now: float, prefix: str, reference: Reference | str, uploads: str | None = None
) -> Measured:
    """Read the window under `prefix` (and `uploads`) and judge the serving model's rows against
    `reference` (or say why there is none)."""
    sha256 = wanted.model.sha256
    if isinstance(reference, str):
        return _unavailable(sha256, reference, now)
    window = served.Window.of(now, wanted.settings.window_hours, wanted.settings.label_delay_hours)
    try:
        read = served.read(prefix, window, wanted.settings.max_rows, uploads)
    except storage.StorageError as error:
        return _unavailable(sha256, one_line(f"cannot read the payload logs: {error}", 1000), now)
    labelled = performance.join(read.predictions, read.feedback, sha256)
    assessment = performance.decide(labelled, reference, wanted.settings)
    if read.skipped_parts:
        skipped = f"; {read.skipped_parts} parts ({read.skipped_bytes} bytes) not read past maxRows"
        assessment = dataclasses.replace(assessment, message=assessment.message + skipped)
    if read.unreadable:
        bad = f"; {len(read.unreadable)} parts unreadable, skipped (first: {read.unreadable[0]})"
        assessment = dataclasses.replace(assessment, message=one_line(assessment.message + bad, 2000))
    fields = performance.to_status(
        assessment,
        labelled,
        reference,
        (monitoring.timestamp(window.start), monitoring.timestamp(window.end)),
        {
            "modelVersion": wanted.model.version,
            "rowsRead": read.rows_read,
            "skippedParts": read.skipped_parts,
            "skippedBytes": read.skipped_bytes,
            "unreadableParts": len(read.unreadable),
            "checked": monitoring.timestamp(now),
        },
    )
    return Measured(sha256, assessment, fields)


def _unavailable(sha256: str, message: str, now: float) -> Measured:
    assessment = performance.unavailable(message)
    empty = Labelled(np.empty(0), 0, 0, 0)
    unread = dict.fromkeys(("modelVersion", "rowsRead", "skippedParts", "skippedBytes", "unreadableParts"))
    fields = performance.to_status(
        assessment, empty, None, None, {**unread, "checked": monitoring.timestamp(now)}
    )
    return Measured(sha256, assessment, fields)


def _reference(model: ModelReference, memory: MutableMapping[str, Any]) -> Reference | str:
    """The served model's test rmse and residual shape; a sentence when it has none or cannot be read."""
    cached = memory.get(REFERENCES)
    if cached is not None and cached[0] == model.sha256:
        return cached[1]  # type: ignore[no-any-return]
    try:
        loaded = artifact.load(model.uri, model.sha256)
    except (storage.StorageError, artifact.ArtifactError) as error:
        return one_line(f"cannot read the served model {model.uri}: {error}", 1000)  # tried again next time
    found = reference_of(loaded)
    memory[REFERENCES] = (model.sha256, found)
    return found


def reference_of(loaded: artifact.ModelArtifact) -> Reference | str:
    """The test rmse and the held-out residuals an artifact carries, or why it cannot be judged."""
    rmse = loaded.metrics.get("rmse")
    if not isinstance(rmse, int | float) or not rmse >= 0:
        return "the served model records no test rmse to compare the live error with; retrain it"
    record = loaded.answers_record()
    if record is None:
        return Reference(float(rmse))
    return Reference.of(float(rmse), record.calibration.residuals, record.calibration.split_rows)


def measure(
    memory: MutableMapping[str, Any], measure_with: Measure | None, clock: Callable[[], float]
) -> Measured | None:
    """Outside the lock: the check, when one is wanted and due (None otherwise)."""
    wanted: Wanted | None = memory.get(WANTED)
    if wanted is None or measure_with is None:
        return None
    if not monitoring.due(memory.get(LAST_CHECK), wanted.settings.interval_seconds, time.monotonic()):
        return None
    memory[LAST_CHECK] = time.monotonic()
    return measure_with(wanted, clock())


def check(
    body: Mapping[str, Any],
    conditions: list[Any],
    spec: Monitoring | None,
    measured: Measured | None,
    memory: MutableMapping[str, Any],
    clock: Callable[[], str] = utc_now,
) -> Check | None:
    """Under the lock: note what the next check needs, and the status a fresh verdict gives (None when
    there is nothing to write). `conditions` is the list as this tick writes it (the drift check's)."""
    status = body.get("status") or {}
    serving = ModelReference.of(status.get("model"))
    settings = spec.performance if spec is not None else None
    if settings is None or serving is None:
        memory.pop(WANTED, None)
        if settings is None:
            return forgotten(status, conditions)
        return None
    memory[WANTED] = Wanted(settings, serving)
    if measured is None or measured.model != serving.sha256:
        return None  # nothing measured, or measured for a model that no longer serves
    return degraded_status(body, conditions, measured, clock)


def degraded_status(
    body: Mapping[str, Any], conditions: list[Any], measured: Measured, clock: Callable[[], str] = utc_now
) -> Check:
    """status.monitoring.performance and the Degraded condition; an event when its status changes."""
    state = measured.assessment.condition
    generation = int(body["metadata"].get("generation") or 0)
    fields = {
        "monitoring": {"performance": dict(measured.fields)},
        "conditions": with_condition(conditions, DEGRADED, state, generation, clock),
    }
    before = find_condition({"conditions": conditions}, DEGRADED).get("status", "Unknown")
    if before == state[0]:
        return Check(fields, assessment=measured.assessment)
    warning = state[0] == "True" or state[1] == performance.UNAVAILABLE
    event = Post("Warning" if warning else "Normal", state[1], f"Degraded {state[0]}: {state[2]}")
    return Check(fields, (event,), measured.assessment)


def forgotten(status: Mapping[str, Any], conditions: list[Any]) -> Check | None:
    """Performance switched off: status.monitoring.performance and the Degraded condition go."""
    performance_status = (status.get("monitoring") or {}).get("performance")
    if not (performance_status or find_condition({"conditions": conditions}, DEGRADED)):
        return None
    fields: dict[str, Any] = {"conditions": without_condition(conditions, DEGRADED)}
    if performance_status:
        fields["monitoring"] = {"performance": None}
    return Check(fields)
