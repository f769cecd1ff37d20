"""Drift of a ModelDeployment's inputs: the serving pods' bin counts against the training reference.

Pure functions; the HTTP collection is `collector`, the check `drift`, the status write `monitor.tick`.

**The window.** Each serving pod counts its rows into the training split's quantile bins per
wall-clock window of 60 s (`server.histograms`) and reports every window it keeps. The pods only know
their own windows, and 60 s would be too coarse for a check every 10 s: a shift in the middle of a
window would be diluted by the rows before it. So the operator remembers what each pod reported last
time and cuts each window at that moment: the rows a pod counted since the previous check form a new
span, and the cuts of earlier checks stay (`history`). A check then takes the newest spans of every
pod, newest first, until they hold at least `minRows` rows (`select`), and sums them (`merge`). With steady
traffic of at least minRows rows per interval the window is exactly the last interval; with little
traffic it reaches back as far as needed (up to the hour the pods keep); with no traffic at all it
stays the same, so silence neither raises nor clears an alarm.

**The decision** (`drifts`). A feature drifts when its PSI is at least `psiThreshold` *and* its
p-value (`distribution.psi_p_value`) is below `SIGNIFICANCE` divided by the number of features. Both
are needed. PSI is an effect size, but a biased one: without any drift it is about
(B - 1)·(1/n_reference + 1/n_serving), 0.09 for 100 serving rows in 10 bins, and noise on small windows
crosses 0.2 often. The p-value says whether the difference is beyond sampling noise, but on a large
window every negligible shift is significant. Together: large enough to matter, and too large to be
chance. The division by the number of features (Bonferroni) keeps the chance that noise alone flags
any feature in a check below SIGNIFICANCE, however many features the model has.

**Levels** (`status.monitoring.level`): Drifted (a feature drifts), Moderate (no feature drifts, but
one has a significant PSI of at least half the threshold: worth watching), Stable, InsufficientData
(fewer than minRows rows: Drifted is Unknown, not False, since nothing is known) and Unavailable (no
ready pod answered, or the model carries no reference distribution: Drifted is Unknown too).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marina.contract import DRIFT_LEVELS
from marina.controller.modeldeployments.spec import Monitoring
from marina.data.distribution import (
    Reference,
    jensen_shannon_distance,
    population_stability_index,
    psi_p_value,
)

SIGNIFICANCE = 1e-3
TOP_FEATURES = 5
#: How often the timer looks whether a check is due; intervals are kept to within half a tick.
TICK_SECONDS = 5.0
#: Windows that ended this long before a check keep no cuts (coarser, and bounded memory).
FINE_SECONDS = 600.0
DRIFTED = "Drifted"  # the condition type


class Level(enum.StrEnum):
    STABLE = "Stable"
    MODERATE = "Moderate"
    DRIFTED = "Drifted"
    INSUFFICIENT_DATA = "InsufficientData"
    UNAVAILABLE = "Unavailable"


assert tuple(Level) == DRIFT_LEVELS, "status.monitoring.level: the contract lists the levels"


@dataclass(frozen=True)
class Span:
    """Rows counted from `start` to `end` (epoch seconds): per feature and for the predictions, the
    rows in each reference bin."""

    start: float
    end: float
    rows: int
    features: tuple[tuple[int, ...], ...]
    prediction: tuple[int, ...]

    def minus(self, earlier: Span, since: float) -> Span | None:
        """The rows counted after `earlier` (the same window read before); None when any count went
        down (the pod restarted and counts afresh)."""
        pairs = [*zip(self.features, earlier.features, strict=True), (self.prediction, earlier.prediction)]
        differences = [tuple(a - b for a, b in zip(after, before, strict=True)) for after, before in pairs]
        if self.rows < earlier.rows or any(d < 0 for counts in differences for d in counts):
            return None
        return Span(since, self.end, self.rows - earlier.rows, tuple(differences[:-1]), differences[-1])


@dataclass(frozen=True)
class PodCounts:
    """What one pod's distribution endpoint answered at `at`: its model version, reference and windows."""

    pod: str
    version: str
    feature_names: tuple[str, ...]
    reference: Reference
    windows: tuple[Span, ...]
    at: float


def parse_counts(document: Any, pod: str, at: float) -> PodCounts:
    """Read `GET /v2/models/<m>/distribution`; ValueError naming the part that is malformed."""
    if not isinstance(document, Mapping) or not isinstance(document.get("reference"), Mapping):
        raise ValueError("expected an object with a reference and windows")
    features = document["reference"].get("features")
    if not isinstance(features, Mapping) or not features:
        raise ValueError("reference.features: expected one histogram per feature")
    names = tuple(str(name) for name in features)
    reference = Reference.from_dict(document["reference"], names)
    windows = document.get("windows")
    if not isinstance(windows, list):
        raise ValueError("windows: expected a list")
    spans = tuple(_window(w, names, reference, f"windows[{i}]") for i, w in enumerate(windows))
    return PodCounts(pod, str(document.get("version") or ""), names, reference, spans, at)


def _window(window: Any, names: Sequence[str], reference: Reference, where: str) -> Span:
    if not isinstance(window, Mapping) or not isinstance(window.get("features"), Mapping):
        raise ValueError(f"{where}: expected an object with features")
    counted = [
        _counts(window["features"].get(name), len(h.counts), f"{where}.features.{name}")
        for name, h in zip(names, reference.features, strict=True)
    ]
    prediction = _counts(window.get("prediction"), len(reference.prediction.counts), f"{where}.prediction")
    start, end, rows = window.get("start"), window.get("end"), window.get("rows")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (start, end, rows)):
        raise ValueError(f"{where}: expected numbers start, end and rows")
    assert isinstance(start, int | float) and isinstance(end, int | float) and isinstance(rows, int | float)
    return Span(float(start), float(end), int(rows), tuple(counted), prediction)


def _counts(value: Any, bins: int, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != bins:
        raise ValueError(f"{where}: expected {bins} counts, one per reference bin")
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value):
        raise ValueError(f"{where}: expected non-negative integers")
    return tuple(value)


# -- the window --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """One pod's last reading and its rows cut into spans at every check that saw them arrive."""

    reading: PodCounts
    spans: tuple[Span, ...]


def history(current: PodCounts, previous: History | None) -> History:
    """Cut the pod's windows where earlier checks read them (module docstring): the cuts known before
    stay, and the rows counted since the previous check become one new span.

    Without a previous reading of the same model (a new pod, a new model, the operator restarted), or
    when a window's counts went down (the pod restarted), a window is one span ending at the reading.
    Windows that ended FINE_SECONDS before the reading are one span again, which bounds the memory.
    """
    earlier = previous if previous is not None and previous.reading.version == current.version else None
    found: list[Span] = []
    for window in current.windows:
        cut = _cut(_ending_by(window, current.at), earlier)
        if window.end <= current.at - FINE_SECONDS and len(cut) > 1:
            cut = [_ending_by(window, current.at)]
        found.extend(s for s in cut if s.rows > 0)
    return History(current, tuple(found))


def _cut(window: Span, earlier: History | None) -> list[Span]:
    if earlier is None:
        return [window]
    before = next((w for w in earlier.reading.windows if w.start == window.start), None)
    since = window.minus(before, earlier.reading.at) if before is not None else None
    if before is None or since is None:
        return [window]
    known = [s for s in earlier.spans if window.start <= s.start < window.end]
    if sum(s.rows for s in known) != before.rows:  # not the cuts of this window: start it afresh
        known = [_ending_by(before, earlier.reading.at)]
    return [*known, since]


def select(candidates: Iterable[Span], min_rows: int) -> list[Span]:
    """The newest spans (by end, then start) until they hold `min_rows` rows; all of them when they
    never do. Spans of different pods cut at the same check end together and are taken together."""
    ordered = sorted(candidates, key=lambda s: (s.end, s.start), reverse=True)
    chosen: list[Span] = []
    rows = 0
    for index, span in enumerate(ordered):
        same_cut = index > 0 and (span.end, span.start) == (ordered[index - 1].end, ordered[index - 1].start)
        if rows >= min_rows and not same_cut:
            break
        chosen.append(span)
        rows += span.rows
    return chosen


def merge(chosen: Sequence[Span]) -> Span | None:
    """One span summing the counts of `chosen` (None when there is nothing)."""
    if not chosen:
        return None
    return Span(
        min(s.start for s in chosen),
        max(s.end for s in chosen),
        sum(s.rows for s in chosen),
        tuple(_sum(counts) for counts in zip(*(s.features for s in chosen), strict=True)),
        _sum([s.prediction for s in chosen]),
    )


def serving_version(readings: Sequence[PodCounts], preferred: str | None) -> str | None:
    """The model version to judge: the one the ModelDeployment reports serving when a pod runs it (a
    rollout mixes versions, whose references differ), else the one most pods run."""
    versions = [r.version for r in readings]
    if preferred in versions:
        return preferred
    return max(versions, key=versions.count) if versions else None


# -- scoring and the decision -----------------------------------------------------------------------


@dataclass(frozen=True)
class Shift:
    """How far one feature's (or the predictions') serving histogram is from the reference."""

    name: str
    psi: float
    p_value: float
    js_distance: float
    drifted: bool = False

    def to_status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "psi": _round(self.psi),
            "pValue": _round(self.p_value),
            "jsDistance": _round(self.js_distance),
            "drifted": self.drifted,
        }


def shift(name: str, reference: Sequence[int], serving: Sequence[int]) -> Shift:
    return Shift(
        name,
        population_stability_index(reference, serving),
        psi_p_value(reference, serving),
        jensen_shannon_distance(reference, serving),
    )


def drifts(measured: Shift, psi_threshold: float, features: int) -> bool:
    """Large enough to matter and too large to be chance (module docstring)."""
    return measured.psi >= psi_threshold and measured.p_value < SIGNIFICANCE / max(features, 1)


@dataclass(frozen=True)
class Assessment:
    """One check's result: what `status.monitoring` and the Drifted condition say."""

    level: Level
    message: str
    version: str = ""
    pods: int = 0
    window: Span | None = None
    features: tuple[Shift, ...] = ()  # largest PSI first
    prediction: Shift | None = None

    @property
    def drifted(self) -> tuple[Shift, ...]:
        return tuple(f for f in self.features if f.drifted)

    @property
    def score(self) -> float:
        return max((f.psi for f in self.features), default=0.0)


def assess(
    reading: PodCounts, window: Span | None, pods: int, psi_threshold: float, min_rows: int
) -> Assessment:
    """Score the merged window of the pods running `reading`'s model against its reference."""
    rows = window.rows if window is not None else 0
    if window is None or rows < min_rows:
        message = (
            f"{rows} serving rows of model {reading.version}, {min_rows} needed (spec.monitoring.minRows)"
        )
        return Assessment(Level.INSUFFICIENT_DATA, message, reading.version, pods, window)
    count = len(reading.feature_names)
    histograms = zip(reading.feature_names, reading.reference.features, window.features, strict=True)
    measured = sorted(
        (shift(name, histogram.counts, counts) for name, histogram, counts in histograms),
        key=lambda s: s.psi,
        reverse=True,
    )
    features = tuple(
        Shift(s.name, s.psi, s.p_value, s.js_distance, drifts(s, psi_threshold, count)) for s in measured
    )
    level = _level(features, psi_threshold, count)
    return Assessment(
        level,
        _message(level, features, rows, psi_threshold),
        reading.version,
        pods,
        window,
        features,
        shift("prediction", reading.reference.prediction.counts, window.prediction),
    )


def judge(histories: Sequence[History], preferred: str | None, monitoring: Monitoring) -> Assessment | None:
    """The whole check on what the pods answered (cut by `history`); None when no pod answered."""
    version = serving_version([h.reading for h in histories], preferred)
    judged = [h for h in histories if h.reading.version == version]
    if not judged:
        return None
    first = judged[0].reading
    same = [
        h
        for h in judged
        if h.reading.reference == first.reference and h.reading.feature_names == first.feature_names
    ]
    window = merge(select([s for h in same for s in h.spans], monitoring.min_rows))
    return assess(first, window, len(same), monitoring.psi_threshold, monitoring.min_rows)


def _level(features: Sequence[Shift], psi_threshold: float, count: int) -> Level:
    if any(f.drifted for f in features):
        return Level.DRIFTED
    if any(drifts(f, psi_threshold / 2, count) for f in features):
        return Level.MODERATE
    return Level.STABLE


def _message(level: Level, features: Sequence[Shift], rows: int, psi_threshold: float) -> str:
    where = f"over the last {rows} serving rows (PSI threshold {psi_threshold:g})"
    if level is Level.DRIFTED:
        named = ", ".join(f"{f.name} (PSI {f.psi:.3g}, p {f.p_value:.2g})" for f in features if f.drifted)
        return f"drifted from the training data: {named} {where}"
    top = features[0]
    return f"no feature drifted {where}; largest shift {top.name} (PSI {top.psi:.3g}, p {top.p_value:.2g})"


def unavailable(message: str, version: str = "") -> Assessment:
    return Assessment(Level.UNAVAILABLE, message, version=version)


# -- status -----------------------------------------------------------------------------------------


def to_status(assessment: Assessment, checked: str) -> dict[str, Any]:
    """`status.monitoring`; fields a check did not measure are removed (None in a merge patch)."""
    window = assessment.window
    return {
        "level": str(assessment.level),
        "message": assessment.message,
        "modelVersion": assessment.version or None,
        "pods": assessment.pods,
        "rows": window.rows if window is not None else 0,
        "windowStart": timestamp(window.start) if window is not None else None,
        "windowEnd": timestamp(window.end) if window is not None else None,
        "score": _round(assessment.score) if assessment.features else None,
        "topFeatures": [f.to_status() for f in assessment.features[:TOP_FEATURES]] or None,
        "prediction": _prediction_status(assessment.prediction),
        "lastChecked": checked,
    }


def condition(assessment: Assessment) -> tuple[str, str, str]:
    """(status, reason, message) of the Drifted condition."""
    if assessment.level is Level.DRIFTED:
        names = ", ".join(f.name for f in assessment.drifted)
        return "True", "DriftDetected", f"features {names} {assessment.message}"
    if assessment.level in (Level.STABLE, Level.MODERATE):
        return "False", "NoDrift", assessment.message
    reason = "InsufficientData" if assessment.level is Level.INSUFFICIENT_DATA else "Unavailable"
    return "Unknown", reason, assessment.message


def due(last_check: float | None, interval_seconds: float, now: float) -> bool:
    """Whether a check is due on this tick (`now`, `last_check`: a monotonic clock). Half a tick of
    slack, so ticks that come a little early do not stretch an interval by a whole tick."""
    return last_check is None or now - last_check >= interval_seconds - TICK_SECONDS / 2


def timestamp(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prediction_status(prediction: Shift | None) -> dict[str, Any] | None:
    if prediction is None:
        return None
    return {k: v for k, v in prediction.to_status().items() if k in ("psi", "pValue", "jsDistance")}


def _ending_by(span: Span, moment: float) -> Span:
    """A window still being filled ends, as far as anyone knows, when it was read."""
    return span if span.end <= moment else Span(span.start, moment, span.rows, span.features, span.prediction)


def _sum(counts: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    return tuple(sum(column) for column in zip(*counts, strict=True))


def _round(value: float) -> float:
    """Six significant digits: enough to read, and a status that does not churn on float noise."""
    return float(f"{value:.6g}")
