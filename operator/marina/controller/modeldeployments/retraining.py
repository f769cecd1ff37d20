"""When a ModelDeployment refreshes the Dataset behind its TrainingJob: on drift or a schedule, in limits.

Pure functions; `retrain` decides on them and reads the objects, `monitor.tick` writes the status and sets
the annotation.

**The mechanism** is the one a person uses: the Dataset's `marina.dev/refresh` annotation
(`marina.contract.REFRESH_ANNOTATION`) gets a new value, the Dataset reads its source again, and a new version
makes the TrainingJob train again (the same data gives the same version, and no retrain). The operator
writes nothing else on the user's Dataset, and only when the ModelDeployment asks for it.

**Triggers.** `Drift`: a drift check judged the inputs Drifted and `spec.monitoring.onDrift` is Retrain.
`Degraded`: a live-accuracy check judged the error beyond its margin (`performance.decide`) and
`spec.monitoring.performance.onDegraded` is Retrain; it retrains on the Dataset as drift does.
`Schedule`: `spec.retraining.everySeconds` passed since the last refresh (or since the ModelDeployment
was created). The schedule lives on the ModelDeployment, not the Dataset, so both triggers draw on one
budget, are recorded in one place and run from the same leader-only loop; a Dataset followed by several
TrainingJobs is refreshed by whichever deployment asks, which reads its source again for all of them.

**Limits** (`spec.retraining`), whatever the trigger: `cooldownSeconds` between two refreshes and
`maxPerDay` refreshes per UTC day. A trigger inside them is held: `status.retraining.held` says why and
until when (an event when it starts being held), and nothing is written on the Dataset.

**State** is `status.retraining` (last trigger, reason, the day's count, next allowed), so it survives
an operator restart and a change of leader; nothing is kept in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marina.contract import API_VERSION, REFRESH_ANNOTATION, RETRAIN_HOLDS, RETRAIN_TRIGGERS
from marina.controller.modeldeployments.spec import ModelDeploymentSpec, Retraining
from marina.system.clock import parse_timestamp

DRIFT, SCHEDULE, DEGRADED = RETRAIN_TRIGGERS  # status.retraining.reason
COOLDOWN, DAILY_LIMIT, NO_DATASET = RETRAIN_HOLDS  # status.retraining.held.reason
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def stamp(moment: datetime) -> str:
    return moment.strftime(STAMP)


@dataclass(frozen=True)
class Record:
    """What `status.retraining` says of the refreshes so far."""

    last: datetime | None = None
    day: str = ""
    count: int = 0  # refreshes on `day`
    total: int = 0
    held: str | None = None  # the reason of the hold last written, if a trigger is held

    @classmethod
    def of(cls, status: Mapping[str, Any] | None) -> Record:
        recorded = (status or {}).get("retraining") or {}
        last = recorded.get("lastTrigger")
        return cls(
            last=parse_timestamp(str(last)) if last else None,
            day=str(recorded.get("day") or ""),
            count=int(recorded.get("countToday") or 0),
            total=int(recorded.get("total") or 0),
            held=str((recorded.get("held") or {}).get("reason") or "") or None,
        )

    def count_on(self, moment: datetime) -> int:
        """Refreshes on the UTC day of `moment` (the count starts again each day)."""
        return self.count if self.day == moment.date().isoformat() else 0


def due(
    spec: ModelDeploymentSpec,
    record: Record,
    drifted: bool,
    now: datetime,
    created: datetime,
    degraded: bool = False,
) -> str | None:
    """Which trigger fires now, if any: drift first, then degradation (they say why), then the schedule."""
    if drifted and spec.monitoring is not None and spec.monitoring.on_drift == "Retrain":
        return DRIFT
    if degraded and spec.retrains_on_degraded:
        return DEGRADED
    every = spec.retraining.every_seconds
    if every is not None and now >= (record.last or created) + timedelta(seconds=every):
        return SCHEDULE
    return None


@dataclass(frozen=True)
class Hold:
    """Why a trigger does not refresh now: COOLDOWN or DAILY_LIMIT until a moment, or NO_DATASET."""

    reason: str
    message: str
    until: datetime | None = None


def hold(record: Record, limits: Retraining, now: datetime) -> Hold | None:
    """Why a trigger may not refresh now (the daily limit first: it lasts longer), or None."""
    if record.count_on(now) >= limits.max_per_day:
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), now.tzinfo)
        return Hold(
            DAILY_LIMIT, f"{limits.max_per_day} refreshes today (maxPerDay) until {stamp(midnight)}", midnight
        )
    cooled = record.last + timedelta(seconds=limits.cooldown_seconds) if record.last else None
    if cooled is not None and now < cooled:
        return Hold(
            COOLDOWN, f"within cooldownSeconds {limits.cooldown_seconds} until {stamp(cooled)}", cooled
        )
    return None


def next_allowed(last: datetime, count: int, limits: Retraining) -> datetime:
    """The first moment after a refresh at `last` (the day's `count`-th) when another may come."""
    stopped = hold(Record(last, last.date().isoformat(), count), limits, last)
    until = stopped.until if stopped is not None and stopped.until is not None else last
    return max(last + timedelta(seconds=limits.cooldown_seconds), until)


def token(name: str, now: datetime) -> str:
    """The refresh annotation's new value: who asked, and when (unique per refresh)."""
    return f"{name}-{now.strftime('%Y%m%dT%H%M%SZ')}"


def triggered(
    record: Record, reason: str, why: str, dataset: str, value: str, now: datetime, limits: Retraining
) -> dict[str, Any]:
    """`status.retraining` after a refresh."""
    count = record.count_on(now) + 1
    return {
        "lastTrigger": stamp(now),
        "reason": reason,
        "message": why,
        "dataset": dataset,
        "refresh": value,
        "day": now.date().isoformat(),
        "countToday": count,
        "total": record.total + 1,
        "nextAllowed": stamp(next_allowed(now, count, limits)),
        "held": None,
    }


def held(trigger: str, stopped: Hold, now: datetime) -> dict[str, Any]:
    """`status.retraining` while a trigger is held (the rest of the record stays)."""
    return {
        "held": {
            "trigger": trigger,
            "reason": stopped.reason,
            "message": stopped.message,
            "since": stamp(now),
        }
    }


def refresh(namespace: str, dataset: str, value: str) -> dict[str, Any]:
    """What is applied to the Dataset (server-side, so only this annotation is Marina's): the refresh."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Dataset",
        "metadata": {"name": dataset, "namespace": namespace, "annotations": {REFRESH_ANNOTATION: value}},
    }
