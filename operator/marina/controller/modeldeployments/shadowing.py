"""The shadow phase's decision, as pure functions: the stable pods' comparisons merged, and judged.

Each stable pod that mirrors to the challenger counts, since it started, the copies it sent and what
became of them, and for the compared rows the sums of |challenger - champion| and of its square, its
largest value, and the champion's predictions' count, mean and sum of squared deviations
(`GET /v2/models/<m>/shadow`, `marina.serving.shadow`). The stable pods are new when a shadow phase
starts (their template gained the `--shadow-*` flags), so their counters cover this phase alone; a pod
that reports another challenger version is left out.

The decision rule. With n compared rows, d_i = |challenger_i - champion_i| / s where s is the champion's
standard deviation over the same rows, D their mean and SE = sd(d) / sqrt(n) its standard error: once
durationSeconds have passed and at least minRequests copies were compared, the challenger is aborted
when D - z * SE > maxDifference, z the normal quantile with P(Z > z) = alpha (a one-sided test of "the
mean difference is at most maxDifference" at level alpha), and passes into the canary otherwise. Its
false-abort rate is alpha (by the central limit theorem, for n large) for a challenger whose true mean
difference is exactly maxDifference, less for one closer to the champion, and 0 for one that answers
the same. A challenger whose mean difference is delta above maxDifference is caught with probability
Phi(delta / SE - z). SE comes from the delta method (both the mean |difference| and s are estimated
on the same n rows; s's share assumes roughly normal predictions); the rows of one request are counted
as independent. The decision is taken once, at the first reading with enough copies
after the duration (a stopping rule on the count, not on the outcome, so alpha holds).
Copies that got no usable answer (refused, timed out, not predictions) count against the challenger:
more than analysis.maxErrorRate of the answered-or-failed copies aborts it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from marina.contract import SHADOW_VERDICTS
from marina.controller.modeldeployments.spec import Shadow

WAITING, AGREED, DISAGREED = SHADOW_VERDICTS


@dataclass(frozen=True)
class PodComparison:
    """One stable pod's shadow counters (or several pods' merged)."""

    challenger: str = ""
    mirrored: int = 0
    dropped: int = 0
    compared: int = 0
    rejected: int = 0
    failed: int = 0
    rows: int = 0
    abs_sum: float = 0.0
    abs_squares: float = 0.0
    abs_max: float = 0.0
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def parse(cls, document: Any) -> PodComparison:
        """ValueError (or KeyError, TypeError) when the answer is not a shadow document."""
        if not isinstance(document, Mapping):
            raise ValueError("not a JSON object")
        differences, champion = document["absDifference"], document["champion"]
        return cls(
            str(document["challenger"]),
            int(document["mirrored"]),
            int(document["dropped"]),
            int(document["compared"]),
            int(document["rejected"]),
            int(document["failed"]),
            int(document["rows"]),
            float(differences["sum"]),
            float(differences["sumSquares"]),
            float(differences["max"]),
            int(champion["count"]),
            float(champion["mean"]),
            float(champion["m2"]),
        )

    def merged(self, other: PodComparison) -> PodComparison:
        """Both pods' counts; the champion's moments merged as Chan et al. do."""
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / count if count else 0.0
        m2 = self.m2 + other.m2 + (delta * delta * self.count * other.count / count if count else 0.0)
        return PodComparison(
            other.challenger,
            self.mirrored + other.mirrored,
            self.dropped + other.dropped,
            self.compared + other.compared,
            self.rejected + other.rejected,
            self.failed + other.failed,
            self.rows + other.rows,
            self.abs_sum + other.abs_sum,
            self.abs_squares + other.abs_squares,
            max(self.abs_max, other.abs_max),
            count,
            mean,
            m2,
        )

    @property
    def champion_std(self) -> float:
        return math.sqrt(max(self.m2, 0.0) / self.count) if self.count else 0.0

    @property
    def errors(self) -> int:
        return self.rejected + self.failed

    def in_sd(self, value: float) -> float:
        """`value` in the champion's standard deviations (inf when it never varied and value is not 0)."""
        std = self.champion_std
        if std > 0:
            return value / std
        return 0.0 if value == 0 else math.inf

    @property
    def mean_difference(self) -> float:
        return self.in_sd(self.abs_sum / self.rows) if self.rows else 0.0

    @property
    def standard_error(self) -> float:
        """The standard error of `mean_difference` = m / s by the delta method: the mean |difference| m
        (its sample variance over n - 1) and the champion's standard deviation s (relative variance
        1 / 2n, as for normal predictions), independent of each other."""
        if self.rows < 2:
            return math.inf
        mean = self.abs_sum / self.rows
        variance = max(self.abs_squares - self.rows * mean * mean, 0.0) / (self.rows - 1)
        error = math.sqrt(variance / self.rows)
        if mean == 0:
            return self.in_sd(error)
        ratio = self.mean_difference
        return (
            ratio * math.sqrt((error / mean) ** 2 + 1.0 / (2 * self.count)) if math.isfinite(ratio) else ratio
        )


def merge(readings: Iterable[PodComparison], challenger: str) -> PodComparison:
    """The readings of the pods that mirror to `challenger` (a model version), merged."""
    total = PodComparison(challenger)
    for reading in readings:
        if reading.challenger == challenger:
            total = total.merged(reading)
    return total


def z_of(alpha: float) -> float:
    """The one-sided normal quantile: P(Z > z) = alpha."""
    return NormalDist().inv_cdf(1.0 - alpha)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # Waiting, Agreed or Disagreed
    comparison: PodComparison
    message: str

    def to_status(self, started: str | None) -> dict[str, Any]:
        c = self.comparison
        status: dict[str, Any] = {
            "verdict": self.verdict,
            "startedAt": started,
            "requests": c.compared,
            "rows": c.rows,
            "mirrored": c.mirrored,
            "dropped": c.dropped,
            "failed": c.errors,
            "championStd": round(c.champion_std, 6),
            "message": self.message,
        }
        for key, value in (
            ("meanDifference", c.mean_difference),
            ("standardError", c.standard_error),
            ("maxDifference", c.in_sd(c.abs_max)),
        ):
            if c.rows and math.isfinite(value):  # Kubernetes' JSON has no infinity
                status[key] = round(value, 6)
        return status


def judge(comparison: PodComparison, shadow: Shadow, max_error_rate: float, elapsed: float) -> Verdict:
    """The shadow phase's verdict (see the module's decision rule)."""
    c = comparison
    tried = c.compared + c.errors
    counts = f"{c.compared} copies compared ({c.rows} rows), {c.errors} failed, {c.dropped} dropped"
    if elapsed < shadow.duration_seconds:
        left = shadow.duration_seconds - elapsed
        return Verdict(WAITING, c, f"judged in {left:.0f} s; {counts}")
    if tried >= shadow.min_requests and c.errors > max_error_rate * tried:
        said = (
            f"the challenger gave no usable answer to {c.errors} of {tried} copies "
            f"({c.errors / tried:.2%} > maxErrorRate {max_error_rate:g})"
        )
        return Verdict(DISAGREED, c, said)
    if c.compared < shadow.min_requests:
        return Verdict(WAITING, c, f"waiting for copies: {counts}, {shadow.min_requests} needed")
    z = z_of(shadow.alpha)
    mean, error = c.mean_difference, c.standard_error
    lower = mean - z * error if math.isfinite(error) else mean
    described = (
        f"mean |challenger - champion| {mean:.4g} sd (standard error {error:.3g}), largest "
        f"{c.in_sd(c.abs_max):.4g} sd; {counts}"
    )
    if lower > shadow.max_difference:
        said = (
            f"mean difference {mean:.4g} sd exceeds maxDifference {shadow.max_difference:g} "
            f"(by more than {z:.3g} standard errors: alpha {shadow.alpha:g}); {described}"
        )
        return Verdict(DISAGREED, c, said)
    return Verdict(AGREED, c, described)
