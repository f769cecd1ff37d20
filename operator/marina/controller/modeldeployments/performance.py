"""Live accuracy of a ModelDeployment (spec.monitoring.performance): the serving model's logged answers
joined with the true targets clients reported, and whether its error grew beyond the margin.

Pure functions; reading the parts and the join are `marina.data.served` (shared with a Dataset's
servedLogs source, so the rows scored here are the rows retraining learns from), the check and its status
`degraded`, the write `monitor.tick`.

**The join** (`join`, `served.join`). Feedback rows are keyed by (id, row): the request id the server
answered with and the row within that request. A key reported twice counts once, with its latest target;
a key logged twice (a client reusing an id) takes its latest prediction. Feedback with no logged
prediction read is `unmatched` (its request was not sampled, was answered before the predictions read, or
never existed); feedback of a row another model answered (before a rollout) is `other_models`. Neither
enters the error.

**The decision** (`decide`). Let r0 be the model's rmse on its test split, m the margin and
d_i = e_i² the n live squared errors. The question is whether E[d] > (1 + m)²·r0², the mean squared
error of a model whose rmse is (1 + m) times its test rmse. One-sided z-test on the mean of d:

    z = (mean(d) - (1 + m)²·r0²) / √(s²/n + ((1 + m)²·r0²·c)²/N),    Degraded when z > Φ⁻¹(1 - alpha)

with s = max(sample standard deviation of d, (1 + m)²·r0²·c), c the coefficient of variation of the
squared held-out residuals the artifact carries (`answers.calibration`; √2, that of normal errors,
when it carries none), and N the rows of the test split r0 was measured on (`calibration.splitRows`).
The second term of s is the spread d has at the boundary if the errors keep their held-out shape
scaled by (1 + m); taking the larger of the two keeps a heavy-tailed live sample from looking precise.
The second term under the root is the test rmse's own sampling error: r0 is an estimate from N rows,
and without it a large live sample would be judged against a bound that is itself off by chance (with
N = 2,000 and n = 5,000 that alone raised the boundary's alarm rate from 1 % to 10 %). A v1 artifact
without calibration has no N: its r0 is taken as exact. By the central limit theorem, at the boundary
the chance of Degraded True is about alpha (`falseAlarmRate`), and less for any smaller live error:
with no change at all (live errors like the held-out ones, margin 0.1) it is far below alpha.
Assumptions: the labelled rows are independent draws of the traffic (feedback not chosen by the size
of the error), and n is large enough for the CLT on a skewed variable (squared normal errors have
skewness 2.8, so the mean of 100 has 0.28); benchmarks/degraded_bench.py measures the rates.

Fewer than minRows labelled rows: Degraded Unknown (NotEnoughFeedback), never False.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from marina.controller.modeldeployments.spec import Performance
from marina.data import served

DEGRADED = "Degraded"  # the condition type
ABOVE_MARGIN = "ErrorAboveMargin"
WITHIN_MARGIN = "WithinMargin"
NOT_ENOUGH_FEEDBACK = "NotEnoughFeedback"
UNAVAILABLE = "Unavailable"
#: The coefficient of variation of e² for normal errors (Var e² = 2 Var(e)²): the fallback shape.
NORMAL_SQUARED_CV = math.sqrt(2.0)


@dataclass(frozen=True)
class Reference:
    """What the live error is compared with: the model's test rmse and the coefficient of variation of
    its squared held-out residuals."""

    rmse: float
    squared_cv: float = NORMAL_SQUARED_CV
    test_rows: int | None = None  # rows of the test split the rmse was measured on (None: taken as exact)

    @classmethod
    def of(cls, rmse: float, residuals: np.ndarray | None, test_rows: int | None = None) -> Reference:
        """From the test rmse and (when the artifact has them) the held-out absolute residuals and the
        size of the test split they were sampled from."""
        if residuals is None or len(residuals) < 2:
            return cls(rmse, test_rows=test_rows)
        squared = np.square(np.asarray(residuals, dtype=np.float64))
        mean = float(squared.mean())
        return cls(rmse, float(squared.std(ddof=1)) / mean if mean > 0 else NORMAL_SQUARED_CV, test_rows)


@dataclass(frozen=True)
class Labelled:
    """The join's result: the serving model's errors (prediction - target) and what did not count."""

    errors: np.ndarray
    feedback_rows: int  # distinct (id, row) keys of feedback in the window
    unmatched: int
    other_models: int

    @property
    def rows(self) -> int:
        return len(self.errors)

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.errors)))) if self.rows else math.nan

    @property
    def mae(self) -> float:
        return float(np.mean(np.abs(self.errors))) if self.rows else math.nan


def join(predictions: Any, feedback: Any, model: str) -> Labelled:
    """Join Arrow tables of predictions (id, row, time, model, prediction) and feedback (id, row, time,
    target) on (id, row) (`marina.data.served.join`, the join retraining reads too); the errors of the
    rows `model` (a sha256) answered."""
    import pyarrow as pa
    import pyarrow.compute as pc

    joined = served.join(predictions, feedback)
    mine = joined.table.filter(pc.equal(joined.table.column("model"), pa.scalar(model)))
    errors = _floats(mine.column("prediction")) - _floats(mine.column(served.TRUTH))
    return Labelled(errors, joined.feedback_rows, joined.unmatched, joined.rows - mine.num_rows)


def _floats(column: Any) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclass(frozen=True)
class Assessment:
    """A check's verdict: the Degraded condition's (status, reason, message) and the numbers behind it."""

    status: str
    reason: str
    message: str
    rows: int = 0
    rmse: float | None = None
    mae: float | None = None
    threshold: float | None = None
    z_score: float | None = None

    @property
    def condition(self) -> tuple[str, str, str]:
        return self.status, self.reason, self.message


def threshold_z(false_alarm_rate: float) -> float:
    """Φ⁻¹(1 - alpha): the z above which the live error counts as beyond the margin."""
    return NormalDist().inv_cdf(1.0 - false_alarm_rate)


def z_score(errors: np.ndarray, reference: Reference, margin: float) -> float:
    """How far the live mean squared error is above ((1 + margin)·rmse)², in standard errors (of the
    live mean, and of the test split's own estimate of the bound when its size is known)."""
    squared = np.square(errors)
    bound = ((1.0 + margin) * reference.rmse) ** 2
    spread = max(float(squared.std(ddof=1)) if len(squared) > 1 else 0.0, bound * reference.squared_cv)
    variance = spread**2 / len(squared)
    if reference.test_rows:
        variance += (bound * reference.squared_cv) ** 2 / reference.test_rows
    excess = float(squared.mean()) - bound
    if variance == 0.0:
        return math.inf if excess > 0 else (0.0 if excess == 0 else -math.inf)
    return excess / math.sqrt(variance)


def decide(labelled: Labelled, reference: Reference, settings: Performance) -> Assessment:
    """Degraded True, False or Unknown for the serving model's labelled rows."""
    n = labelled.rows
    if n < settings.min_rows:
        return Assessment(
            "Unknown",
            NOT_ENOUGH_FEEDBACK,
            f"{n} labelled rows of the serving model in the window, {settings.min_rows} needed "
            f"({_ignored(labelled)})",
            rows=n,
            rmse=_rounded(labelled.rmse) if n else None,
            mae=_rounded(labelled.mae) if n else None,
        )
    threshold = (1.0 + settings.margin) * reference.rmse
    z, critical = z_score(labelled.errors, reference, settings.margin), threshold_z(settings.false_alarm_rate)
    numbers = (
        f"live rmse {_g(labelled.rmse)} over {n} labelled rows, test rmse {_g(reference.rmse)} "
        f"x {_g(1 + settings.margin)} = {_g(threshold)} (z {_g(z)}, alarm above {_g(critical)} "
        f"for a false-alarm rate of {_g(settings.false_alarm_rate)})"
    )
    degraded = z > critical
    return Assessment(
        "True" if degraded else "False",
        ABOVE_MARGIN if degraded else WITHIN_MARGIN,
        ("error above the margin: " if degraded else "error within the margin: ") + numbers,
        rows=n,
        rmse=_rounded(labelled.rmse),
        mae=_rounded(labelled.mae),
        threshold=_rounded(threshold),
        z_score=_rounded(z) if math.isfinite(z) else None,
    )


def unavailable(message: str) -> Assessment:
    """No judgement possible (no served model, no test rmse, storage unreadable)."""
    return Assessment("Unknown", UNAVAILABLE, message)


def _ignored(labelled: Labelled) -> str:
    return (
        f"of {labelled.feedback_rows} feedback rows, {labelled.unmatched} matched no logged prediction and "
        f"{labelled.other_models} were answered by another model"
    )


def to_status(
    assessment: Assessment,
    labelled: Labelled | None,
    reference: Reference | None,
    window: tuple[str, str] | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """`status.monitoring.performance` (fields a check did not measure are removed)."""
    return {
        "rows": assessment.rows,
        "rmse": assessment.rmse,
        "mae": assessment.mae,
        "referenceRmse": _rounded(reference.rmse) if reference is not None else None,
        "threshold": assessment.threshold,
        "zScore": assessment.z_score,
        "windowStart": window[0] if window else None,
        "windowEnd": window[1] if window else None,
        "feedbackRows": labelled.feedback_rows if labelled is not None else None,
        "unmatched": labelled.unmatched if labelled is not None else None,
        "otherModels": labelled.other_models if labelled is not None else None,
        "message": assessment.message,
        **extra,
    }


def _rounded(value: float) -> float:
    """Six significant digits: enough to read, and a status that does not churn on float noise."""
    return float(f"{value:.6g}")


def _g(value: float) -> str:
    return f"{value:.4g}"
