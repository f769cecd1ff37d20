"""What a model answers beside its prediction: an explanation, a prediction interval and a verdict on
whether the row lies inside the training data. Serving and batch scoring run exactly this code.

Explanation. For a linear model the exact attribution of a row x (interventional SHAP, as
shap.LinearExplainer documents) is βⱼ·(xⱼ - μⱼ) with μ the training means; a category input's
contribution is the sum over its one-hot columns. With the base value b + β·μ (the prediction at the
means) they add up to the prediction: exactly in algebra, to rounding in floating point.

Intervals, at any level L a request asks for:
- least squares without a penalty (`student-t`): ŷ ± t(n - p, (1 + L)/2)·s·√(1 + h), h the row's
  leverage, s² = RSS/(n - p): the exact interval for a new observation under the linear model with
  Gaussian errors (statsmodels' `obs_ci_lower/upper`);
- every other model (`split-conformal`): ŷ ± the ⌈(m + 1)·L⌉-th smallest of m absolute residuals
  of held-out (test split) rows, a seeded sample of at most `CALIBRATION_ROWS`; covers a new row
  exchangeable with them with probability at least L (and below L + 1/(m + 1)), whatever the
  model and the error distribution. Levels with ⌈(m + 1)·L⌉ > m cannot be promised and are refused.

The extrapolation guard checks every row three ways, each a statement with an error rate:
- leverage: with h₀ the row's leverage, h₀/(1 + h₀) is what its leverage would be were it added to
  the training rows, and for an in-distribution row it exceeds the largest of m training leverages with
  probability at most 1/(m + 1) (exchangeability). The row is flagged beyond √h_max + c·s in units of
  √h (a distance; s the standard deviation of √hᵢ over those rows, c = `MARGIN_SDS`);
- range: a number input below min - c·sd or above max + c·sd of its n training values; beyond the
  strict range the rate is at most 1/(n + 1) per side;
- category: a category input whose value is unseen in training (or null, when every training row had a
  known category), which encodes as a one-hot block of zeros.
Beyond the strict statements the margins are what keep in-distribution rows inside: when the
excess of a statistic over its training maximum is no heavier-tailed than an exponential with the
statistic's training standard deviation as scale (exact for exponential data; Gaussian and bounded
data are lighter), a margin of c standard deviations multiplies the rate by e^-c. So a row is flagged
falsely with probability at most e^-c·(1/(m + 1) + 2·(number inputs)/(n + 1)) under that assumption,
and (1/(m + 1) + 2·(number inputs)/(n + 1)) whatever the distribution. benchmarks/guard_bench.py
measures both rates and the detection of shifted rows.

Artifacts written before this (format v1) have no `answers` section: they explain when their feature
statistics hold every feature's mean (numbers-only models), check ranges and categories, and say that
intervals and leverage need a retrain.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from marina.data.encoding import Inputs
from marina.model import student
from marina.solver import StatisticsFormatError
from marina.solver.design import DesignFactor

FORMAT = "marina.dev/model-answers/v1"
STUDENT_T = "student-t"
CONFORMAL = "split-conformal"
INTERVAL_METHODS = (STUDENT_T, CONFORMAL)
DEFAULT_LEVEL = 0.95
#: Held-out rows whose residuals calibrate conformal intervals, at most (a seeded sample of the test
#: split): the coverage of one calibration varies around its promise by about √(L(1-L)/m), 0.33 points
#: at 90 % with all of them.
CALIBRATION_ROWS = 8192
#: The guard's margin beyond the training maximum, in the statistic's training standard deviations.
MARGIN_SDS = 3.0
INSIDE = "inside"
LEVERAGE, RANGE, CATEGORY = "leverage", "range", "category"
REASONS = (LEVERAGE, RANGE, CATEGORY)
#: Kinds of one-row request (outputs and levels asked for) whose answerer a model remembers, at most.
ONE_ROW_KINDS = 64


class AnswerError(ValueError):
    """A model cannot answer this (it was trained before Marina recorded what it needs, or the level
    cannot be promised); the message says why and what helps."""


# -------------------------------------------------------------------------------- the artifact section


@dataclass(frozen=True)
class Calibration:
    """Sorted absolute residuals of `rows` held-out rows, a seeded sample of `split_rows` test rows."""

    residuals: np.ndarray
    split_rows: int
    seed: int

    @property
    def rows(self) -> int:
        return len(self.residuals)

    def largest_level(self) -> float:
        """The largest level m rows can promise: m/(m + 1)."""
        return self.rows / (self.rows + 1)

    def half_width(self, level: float) -> float:
        """The ⌈(m + 1)·level⌉-th smallest residual."""
        k = math.ceil((self.rows + 1) * level - 1e-9)
        if k > self.rows:
            raise AnswerError(
                f"level {level:g} needs more than the {self.rows} held-out rows the model was calibrated on; "
                f"the largest level it can promise is {self.largest_level():.6g}"
            )
        return float(self.residuals[max(k, 1) - 1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": CONFORMAL,
            "split": "test",
            "rows": self.rows,
            "splitRows": self.split_rows,
            "seed": self.seed,
            "residuals": self.residuals.tolist(),
        }

    @classmethod
    def from_dict(cls, document: Any) -> Calibration:
        if not isinstance(document, Mapping):
            raise AnswerError("answers.calibration: expected an object")
        residuals = _floats(document.get("residuals"), "answers.calibration.residuals")
        if (
            residuals.ndim != 1
            or not residuals.size
            or (residuals < 0).any()
            or (np.diff(residuals) < 0).any()
        ):
            raise AnswerError(
                "answers.calibration.residuals: expected non-negative numbers in increasing order"
            )
        return cls(
            residuals,
            _integer(document.get("splitRows"), "answers.calibration.splitRows", len(residuals)),
            _integer(document.get("seed"), "answers.calibration.seed", 0),
        )


@dataclass(frozen=True)
class Record:
    """The artifact's `answers` section: what training recorded for explanations, intervals and the guard."""

    means: np.ndarray  # training mean of every feature (one-hot columns too), feature order
    design: DesignFactor
    method: str  # STUDENT_T or CONFORMAL
    calibration: Calibration
    leverage_rows: int  # training rows the leverage maximum is taken over (all, or a seeded sample)
    leverage_maximum: float
    leverage_spread: float  # standard deviation of √h over those rows
    dof: int | None = None  # STUDENT_T: n - p
    variance: float | None = None  # STUDENT_T: s² = RSS/(n - p)
    margin: float = MARGIN_SDS

    @property
    def rows(self) -> int:
        return self.design.n_samples

    def to_dict(self) -> dict[str, Any]:
        intervals: dict[str, Any] = {"method": self.method}
        if self.method == STUDENT_T:
            intervals.update(dof=self.dof, variance=self.variance)
        return {
            "format": FORMAT,
            "rows": self.rows,
            "means": self.means.tolist(),
            "design": self.design.to_dict(),
            "intervals": intervals,
            "calibration": self.calibration.to_dict(),
            "guard": {
                "margin": self.margin,
                "leverage": {
                    "rows": self.leverage_rows,
                    "maximum": self.leverage_maximum,
                    "spread": self.leverage_spread,
                },
            },
        }

    @classmethod
    def from_dict(cls, document: Any, n_features: int) -> Record:
        """Parse and check what `to_dict` wrote; AnswerError names the part that is wrong."""
        if not isinstance(document, Mapping) or document.get("format") != FORMAT:
            raise AnswerError(f"answers.format: expected {FORMAT!r}")
        means = _floats(document.get("means"), "answers.means")
        if means.shape != (n_features,):
            raise AnswerError(f"answers.means: expected {n_features} numbers, got shape {means.shape}")
        try:
            design = DesignFactor.from_dict(document.get("design"), n_features)
        except StatisticsFormatError as exc:
            raise AnswerError(f"answers.{exc}") from exc
        intervals, guard = document.get("intervals"), document.get("guard")
        if not isinstance(intervals, Mapping) or intervals.get("method") not in INTERVAL_METHODS:
            raise AnswerError(f"answers.intervals.method: expected one of {', '.join(INTERVAL_METHODS)}")
        if not isinstance(guard, Mapping) or not isinstance(guard.get("leverage"), Mapping):
            raise AnswerError("answers.guard: expected an object with leverage")
        leverage = guard["leverage"]
        method = str(intervals["method"])
        dof = variance = None
        if method == STUDENT_T:
            dof = _integer(intervals.get("dof"), "answers.intervals.dof", 1)
            variance = _number(intervals.get("variance"), "answers.intervals.variance")
        return cls(
            means,
            design,
            method,
            Calibration.from_dict(document.get("calibration")),
            _integer(leverage.get("rows"), "answers.guard.leverage.rows", 1),
            _number(leverage.get("maximum"), "answers.guard.leverage.maximum"),
            _number(leverage.get("spread"), "answers.guard.leverage.spread"),
            dof,
            variance,
            _number(guard.get("margin"), "answers.guard.margin"),
        )


def _floats(value: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnswerError(f"{where}: expected numbers") from exc
    if not np.isfinite(array).all():
        raise AnswerError(f"{where}: expected finite numbers")
    return array


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise AnswerError(f"{where}: expected a finite non-negative number, got {value!r}")
    return float(value)


def _integer(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AnswerError(f"{where}: expected an integer of at least {minimum}, got {value!r}")
    return value


# -------------------------------------------------------------------------------- what training records


def leverage_summary(design: DesignFactor, rows: np.ndarray) -> tuple[int, float, float]:
    """(rows, max hᵢ, standard deviation of √hᵢ) over training rows: the guard's reference."""
    leverages = design.leverages(rows)
    return len(leverages), float(leverages.max()), float(np.sqrt(leverages).std())


def calibration_of(residuals: np.ndarray, split_rows: int, seed: int) -> Calibration:
    """Sorted absolute residuals (of a sample of held-out rows, drawn by the caller)."""
    return Calibration(np.sort(np.abs(np.asarray(residuals, dtype=np.float64))), split_rows, seed)


def record(
    means: np.ndarray,
    design: DesignFactor,
    least_squares: bool,
    residual_sum_squares: float,
    calibration: Calibration,
    leverage_rows: np.ndarray,
) -> Record:
    """What training stores: Student-t intervals for an unpenalised least-squares fit with degrees of
    freedom left, conformal ones otherwise."""
    dof = design.n_samples - design.rank
    counted, maximum, spread = leverage_summary(design, leverage_rows)
    if least_squares and dof >= 1:
        return Record(
            means, design, STUDENT_T, calibration, counted, maximum, spread, dof, residual_sum_squares / dof
        )
    return Record(means, design, CONFORMAL, calibration, counted, maximum, spread)


# -------------------------------------------------------------------------------- answering


class HasAnswers(Protocol):
    """What `Answers.of` reads from a model artifact."""

    @property
    def coefficients(self) -> list[float]: ...

    @property
    def intercept(self) -> float: ...

    @property
    def feature_names(self) -> list[str]: ...

    @property
    def inputs(self) -> list[dict[str, Any]]: ...

    @property
    def feature_statistics(self) -> dict[str, Any]: ...

    def answers_record(self) -> Record | None: ...


@dataclass(frozen=True)
class Reason:
    """Why a row is outside: the check, and the input it concerns (none for leverage)."""

    check: str
    input: str | None = None

    def __str__(self) -> str:
        return self.check if self.input is None else f"{self.check}:{self.input}"


class Answered(NamedTuple):
    """What `Answers.answer` computed: contributions (rows x inputs; one row's as a flat list),
    half-widths per level, verdicts (None: not asked)."""

    contributions: np.ndarray | list[float] | None
    widths: dict[float, np.ndarray | float]
    verdicts: Verdicts | None


#: One row's answer, with everything that does not depend on the row settled (see `Answers.one_row`).
OneRow = Callable[[np.ndarray], Answered]


class Verdicts(NamedTuple):
    """The guard's verdict on each of a batch's rows (a tuple: made on every request that asks)."""

    leverage: np.ndarray  # (rows,) bool; all False when the model has no leverage reference
    range: np.ndarray  # (rows, number inputs) bool
    category: np.ndarray  # (rows, category inputs) bool
    range_inputs: tuple[str, ...]
    category_inputs: tuple[str, ...]
    outside: np.ndarray  # (rows,) bool: any of the above
    any_outside: bool

    def reasons(self, row: int) -> list[Reason]:
        found = [
            Reason(RANGE, name) for name, bad in zip(self.range_inputs, self.range[row], strict=True) if bad
        ]
        found += [
            Reason(CATEGORY, name)
            for name, bad in zip(self.category_inputs, self.category[row], strict=True)
            if bad
        ]
        if self.leverage[row]:
            found.append(Reason(LEVERAGE))
        return found

    def labels(self) -> list[str]:
        """Per row `inside`, or its reasons joined by `;` (e.g. `range:bmi;leverage`)."""
        labels = [INSIDE] * len(self.leverage)
        if not self.any_outside:
            return labels
        for row in np.flatnonzero(self.outside).tolist():
            labels[row] = ";".join(map(str, self.reasons(row)))
        return labels

    def counts(self) -> dict[Reason, int]:
        """Rows flagged per reason and input (a row flagged twice counts under both)."""
        counted: dict[Reason, int] = {}
        if not self.any_outside:
            return counted
        if self.leverage.any():
            counted[Reason(LEVERAGE)] = int(self.leverage.sum())
        for kind, names, flags in (
            (RANGE, self.range_inputs, self.range),
            (CATEGORY, self.category_inputs, self.category),
        ):
            if flags.size and flags.any():
                for name, count in zip(names, flags.sum(axis=0).tolist(), strict=True):
                    if count:
                        counted[Reason(kind, name)] = count
        return counted


class Answers:
    """A model's explanations, intervals and guard, with everything precomputed for the request path."""

    def __init__(self, artifact: HasAnswers) -> None:
        self.inputs = Inputs.of(artifact)
        self.input_names = self.inputs.names
        self.coefficients = np.asarray(artifact.coefficients, dtype=np.float64)
        self.intercept = float(artifact.intercept)
        self.record = artifact.answers_record()
        names = list(artifact.feature_names)
        self.means = self._means(artifact, names)
        self.base = None if self.means is None else float(self.intercept + self.coefficients @ self.means)
        self._grouping = self._grouping_matrix() if self.inputs.has_categories else None
        self._multipliers: dict[float, float | tuple[float]] = {}
        self._one_rows: dict[tuple[bool, tuple[float, ...], bool], OneRow] = {}
        self._guard_setup(artifact, names)

    # -- explanations

    def _means(self, artifact: HasAnswers, names: list[str]) -> np.ndarray | None:
        if self.record is not None:
            return self.record.means
        statistics = artifact.feature_statistics
        means = [
            statistics.get(name, {}).get("mean") if isinstance(statistics.get(name), Mapping) else None
            for name in names
        ]
        if all(isinstance(m, int | float) and not isinstance(m, bool) and math.isfinite(m) for m in means):
            return np.asarray(means, dtype=np.float64)
        return None

    def _grouping_matrix(self) -> np.ndarray:
        """(features, inputs): 1 where a feature belongs to an input (its one-hot block, or itself)."""
        grouping = np.zeros((self.inputs.n_features, len(self.inputs.items)))
        offsets = self.inputs.offsets
        for k in range(len(self.inputs.items)):
            grouping[offsets[k] : offsets[k + 1], k] = 1.0
        return grouping

    @property
    def explains(self) -> bool:
        return self.means is not None

    def contributions(self, features: np.ndarray, centred: np.ndarray | None = None) -> np.ndarray:
        """(rows, inputs): each raw input's share of each row's prediction beyond the base value
        (`centred`: features - means, when it is at hand)."""
        if self.means is None:
            raise AnswerError(
                "this model was trained before Marina recorded the training means of every feature; "
                "retrain it to explain its predictions"
            )
        per_feature: np.ndarray = (features - self.means if centred is None else centred) * self.coefficients
        if self._grouping is None:
            return per_feature
        grouped: np.ndarray = per_feature @ self._grouping
        return grouped

    def explanations(
        self, features: np.ndarray, predictions: np.ndarray, level: float = DEFAULT_LEVEL
    ) -> list[dict[str, Any]]:
        """Per row: the prediction, the base value, one contribution per raw input (adding up to the
        prediction), the interval at `level` when the model records one, and the guard's verdict."""
        contributions = self.contributions(features)
        width = self.half_widths(features, level) if self.record is not None else None
        verdicts = self.verdicts(features)
        explanations = []
        for row, (prediction, shares) in enumerate(
            zip(predictions.tolist(), contributions.tolist(), strict=True)
        ):
            explanation: dict[str, Any] = {
                "prediction": prediction,
                "base": self.base,
                "contributions": dict(zip(self.input_names, shares, strict=True)),
            }
            if width is not None:
                half = width if isinstance(width, float) else float(width[row])
                explanation["interval"] = {
                    "lower": prediction - half,
                    "upper": prediction + half,
                    "level": level,
                }
            reasons = verdicts.reasons(row)
            explanation["extrapolation"] = {"inside": not reasons, "reasons": [str(r) for r in reasons]}
            explanations.append(explanation)
        return explanations

    # -- intervals

    @property
    def interval_method(self) -> str | None:
        return None if self.record is None else self.record.method

    def _needs_record(self, what: str) -> Record:
        if self.record is None:
            raise AnswerError(
                f"this model was trained before Marina recorded what {what} need (artifact format v1); "
                "retrain it to get them"
            )
        return self.record

    def half_widths(
        self, features: np.ndarray, level: float, leverages: np.ndarray | None = None
    ) -> np.ndarray | float:
        """How far each row's interval reaches either side of its prediction at `level` (the rows'
        leverages may be given, when they are at hand)."""
        multiplier = self._multipliers.get(level)
        if multiplier is None:
            multiplier = self._multiplier(level)
        if isinstance(multiplier, tuple):  # conformal: the same width for every row
            return multiplier[0]
        if leverages is None:
            leverages = self.leverages(features)
        widths: np.ndarray = multiplier * np.sqrt(leverages + 1.0)
        return widths

    def _multiplier(self, level: float) -> float | tuple[float]:
        """t·s for least squares (times √(1 + h) per row), or (the conformal half-width,); remembered
        for the few levels a server is asked for."""
        check_level(level)
        record = self._needs_record("prediction intervals")
        multiplier: float | tuple[float]
        if record.method == CONFORMAL:
            multiplier = (record.calibration.half_width(level),)
        else:
            assert record.dof is not None and record.variance is not None
            multiplier = student.two_sided(level, record.dof) * math.sqrt(record.variance)
        if len(self._multipliers) < 64:
            self._multipliers[level] = multiplier
        return multiplier

    def leverages(self, features: np.ndarray, centred: np.ndarray | None = None) -> np.ndarray:
        """Each row's leverage; from `features - means` when it is at hand and the design is centred there."""
        if self._root is None:
            self._needs_record("leverages")
        assert self._root is not None
        if centred is not None and self._centred_design:
            projected = centred.dot(self._root)
        else:
            projected = features.dot(self._root)
            projected -= self._offset_root
        projected *= projected
        leverage = _sum_rows(projected)
        leverage += self._leverage_floor
        return leverage

    def answer(
        self, features: np.ndarray, contributions: bool, levels: Sequence[float], verdicts: bool
    ) -> Answered:
        """What a request asks for at once, sharing what the pieces share: x - μ (contributions, and the
        leverage of a design centred at μ, and the range check) and the leverages (intervals, guard)."""
        if len(features) == 1 and self._fused is not None:
            return self.one_row(contributions, levels, verdicts)(features)
        return self._answer_rows(features, contributions, levels, verdicts)

    def _answer_rows(
        self, features: np.ndarray, contributions: bool, levels: Sequence[float], verdicts: bool
    ) -> Answered:
        """The vectorised answer, any number of rows."""
        needs_leverage = self._needs_leverage(contributions, levels, verdicts)
        centred = features - self.means if self.means is not None else None
        leverages = self.leverages(features, centred) if needs_leverage else None
        widths = {level: self.half_widths(features, level, leverages) for level in levels}
        judged = self.verdicts(features, leverages, centred) if verdicts else None
        return Answered(self.contributions(features, centred) if contributions else None, widths, judged)

    def _needs_leverage(self, contributions: bool, levels: Sequence[float], verdicts: bool) -> bool:
        """Intervals of least squares scale with the leverage, and the guard checks it (when recorded)."""
        return self._has_leverage and (
            (verdicts and self._leverage_limit is not None) or (bool(levels) and self._student)
        )

    def one_row(self, contributions: bool, levels: Sequence[float], verdicts: bool) -> OneRow:
        """What answers one row with these outputs, made once per kind of request and remembered (a
        server sees the same few): everything that does not depend on the row is settled here, so a request
        pays for its arithmetic and little else. Raises AnswerError for a level the model cannot give."""
        key = (contributions, tuple(levels), verdicts)
        answerer = self._one_rows.get(key)
        if answerer is None:
            answerer = self._compile_one_row(*key)
            if len(self._one_rows) < ONE_ROW_KINDS:
                self._one_rows[key] = answerer
        return answerer

    def _compile_one_row(self, contributions: bool, levels: tuple[float, ...], verdicts: bool) -> OneRow:
        if self._fused is None:  # no training means (an old artifact): the vectorised path, in one row's form
            return functools.partial(self._one_of_rows, contributions, levels, verdicts)
        return self._fused_one_row(contributions, levels, verdicts)

    def _one_of_rows(
        self, contributions: bool, levels: tuple[float, ...], verdicts: bool, features: np.ndarray
    ) -> Answered:
        answered = self._answer_rows(features, contributions, levels, verdicts)
        shares = answered.contributions
        return Answered(
            None if shares is None else np.asarray(shares)[0].tolist(),
            {level: float(np.ravel(width)[0]) for level, width in answered.widths.items()},
            answered.verdicts,
        )

    def _fused_one_row(self, contributions: bool, levels: tuple[float, ...], verdicts: bool) -> OneRow:
        """One row, the usual online request: one product of x - μ with the fused matrix gives its
        contributions, its projection on the design's factor and its centred inputs, and the rest is C-level
        iteration over Python floats (on a busy server each numpy call on a row of ten costs microseconds,
        more than its arithmetic, and so does Python bytecode per value). Contributions and the centred
        inputs are the same IEEE operations as the vectorised path's (a product with a 0/1 matrix adds only
        exact zeros); the leverage's sum of squares may add in another order (a few ulps). Everything the
        answer reads is a local of the closure: no attribute or dictionary look-up per request."""
        assert self._fused is not None
        means, fused = self.means, self._fused
        shares = self._contributions if contributions else None
        needs_leverage = self._needs_leverage(contributions, levels, verdicts)
        projection, shift = self._projection, self._projection_shift
        floor = self._leverage_floor if needs_leverage else 0.0  # set only with a leverage reference
        constant: dict[float, np.ndarray | float] = {}  # conformal: the same half-width for every row
        scaled: list[tuple[float, float]] = []  # least squares: t·s, times √(1 + h) per row
        for level in dict.fromkeys(levels):
            multiplier = self._multipliers.get(level)
            if multiplier is None:
                multiplier = self._multiplier(level)
            if isinstance(multiplier, tuple):
                constant[level] = multiplier[0]
            else:
                scaled.append((level, multiplier))
        centred_inputs, limit = self._centred_inputs, self._leverage_limit_value
        lows, highs, blocks = self._lows_centred, self._highs_centred, self._blocks_of_categories
        inside, vectorised = self._one_inside, self.verdicts
        mul, le, sqrt = operator.mul, operator.le, math.sqrt

        def answer(features: np.ndarray) -> Answered:
            values = (features[0] - means).dot(fused).tolist()
            leverage = None
            if needs_leverage:
                projected = values[projection]
                if shift is not None:  # a design not centred at the means
                    projected = list(map(operator.add, projected, shift))
                leverage = sum(map(mul, projected, projected)) + floor
            widths = constant.copy() if constant else {}
            if scaled:
                assert leverage is not None
                root = sqrt(leverage + 1.0)
                for level, multiplier in scaled:
                    widths[level] = multiplier * root
            judged = None
            if verdicts:
                centred = values[centred_inputs]
                if (
                    (leverage is None or leverage <= limit)
                    and all(map(le, lows, centred))
                    and all(map(le, centred, highs))
                    and (not blocks or _has_categories(features, blocks))
                ):
                    judged = inside
                else:  # outside: the vectorised path says why
                    judged = vectorised(features, None if leverage is None else np.array([leverage]))
            return _new_tuple(Answered, (values[shares] if shares is not None else None, widths, judged))

        return answer

    # -- the guard

    def _guard_setup(self, artifact: HasAnswers, names: list[str]) -> None:
        margin = self._margin = MARGIN_SDS if self.record is None else self.record.margin
        statistics = artifact.feature_statistics
        number_inputs = [item.name for item in self.inputs.items if not item.is_category]
        checked = []
        for name in number_inputs:
            stats = statistics.get(name)
            if isinstance(stats, Mapping) and all(_is_number(stats.get(k)) for k in ("min", "max", "std")):
                checked.append((name, float(stats["min"]), float(stats["max"]), float(stats["std"])))
        self.range_inputs = tuple(name for name, *_ in checked)
        counts = [statistics[name].get("count") for name in self.range_inputs]
        self._range_rows = (
            self.record.rows
            if self.record is not None
            else min((int(c) for c in counts if _is_number(c)), default=0)
        )
        self._range_columns = np.array([names.index(name) for name in self.range_inputs], dtype=np.intp)
        self._low = np.array([low - margin * sd for _, low, _, sd in checked])
        self._high = np.array([high + margin * sd for _, _, high, sd in checked])
        # one comparison per value: |x - middle| > half the widened range
        self._middle, self._half_range = (self._low + self._high) / 2, (self._high - self._low) / 2
        self._all_columns = len(self._range_columns) == len(names) and bool(
            (self._range_columns == np.arange(len(names))).all()
        )
        blocks = [
            (item.name, self.inputs.offsets[k], self.inputs.offsets[k + 1])
            for k, item in enumerate(self.inputs.items)
            if item.is_category
        ]
        if self.means is not None:  # an input whose training rows all had a category: its nulls are outside
            rows = self.record.rows if self.record is not None else 1
            blocks = [(n, a, b) for n, a, b in blocks if self.means[a:b].sum() > 1.0 - 0.5 / rows]
        self.category_inputs = tuple(name for name, _, _ in blocks)
        self._blocks = np.zeros((len(names), len(blocks)))
        for k, (_, start, stop) in enumerate(blocks):
            self._blocks[start:stop, k] = 1.0
        self._leverage_limit: float | None = None
        self._has_leverage = self.record is not None
        self._student = self.record is not None and self.record.method == STUDENT_T
        self._root: np.ndarray | None = None
        self._centred_design = False
        if self.record is not None:
            design = self.record.design
            self._root = design.root
            self._offset_root = design.offset.dot(self._root)
            self._leverage_floor = 1.0 / design.n_samples if design.intercept else 0.0
            self._centred_design = self.means is not None and bool(np.array_equal(design.offset, self.means))
        if self.record is not None:
            record = self.record
            root = math.sqrt(record.leverage_maximum) + margin * record.leverage_spread
            augmented = root * root  # h/(1 + h) above this is outside; as a bound on h itself:
            self._leverage_limit = math.inf if augmented >= 1.0 else augmented / (1.0 - augmented)
        self._mid_c = (
            self._middle - self.means[self._range_columns] if self.means is not None else self._middle
        )
        # for one row at a time: (column, middle, half-range) of each checked input, and the verdict of
        # a row inside (shared: nothing in it is ever written)
        self._fuse(names)
        self._leverage_limit_value = math.inf if self._leverage_limit is None else self._leverage_limit
        no = np.zeros(1, dtype=bool)
        self._one_inside = Verdicts(
            no,
            np.zeros((1, len(self.range_inputs)), dtype=bool),
            np.zeros((1, len(self.category_inputs)), dtype=bool),
            self.range_inputs,
            self.category_inputs,
            no,
            False,
        )
        for flags in (*self._one_inside[:3], no):
            flags.setflags(write=False)

    def _fuse(self, names: list[str]) -> None:
        """The fused matrix of one-row answers, applied to x - μ: [diag(β)·G | R-root | the checked
        inputs' columns of I] (G the inputs' grouping), with the slices of its product and the bounds of
        the checked inputs about the means. None without training means (an old artifact)."""
        self._fused: np.ndarray | None = None
        if self.means is None:
            return
        d = len(names)
        grouping = self._grouping if self._grouping is not None else np.eye(d)
        blocks = [self.coefficients[:, None] * grouping]
        self._contributions = slice(0, grouping.shape[1])
        start = grouping.shape[1]
        self._projection = slice(start, start)
        self._projection_shift: list[float] | None = None
        if self.record is not None and self._root is not None:
            blocks.append(self._root)
            self._projection = slice(start, start + d)
            start += d
            if not self._centred_design:
                self._projection_shift = ((self.means - self.record.design.offset) @ self._root).tolist()
        blocks.append(np.eye(d)[:, self._range_columns])
        self._centred_inputs = slice(start, start + len(self._range_columns))
        self._fused = np.ascontiguousarray(np.hstack(blocks))
        means = self.means[self._range_columns]
        self._lows_centred = (self._low - means).tolist()
        self._highs_centred = (self._high - means).tolist()
        offsets = self.inputs.offsets
        self._blocks_of_categories = [
            (offsets[k], offsets[k + 1])
            for k, item in enumerate(self.inputs.items)
            if item.is_category and item.name in self.category_inputs
        ]

    def guard_description(self) -> dict[str, Any]:
        """What the guard checks and its false-alarm rates, for metadata endpoints and results."""
        margin = MARGIN_SDS if self.record is None else self.record.margin
        shrink = math.exp(-margin)
        checks: dict[str, Any] = {}
        rate = 0.0
        strict = 0.0
        if self.record is not None and self._leverage_limit is not None:
            m = self.record.leverage_rows
            checks[LEVERAGE] = {
                "rows": m,
                "maximum": self.record.leverage_maximum,
                "limit": self._leverage_limit,
                "falseAlarmRate": shrink / (m + 1),
            }
            rate += shrink / (m + 1)
            strict += 1 / (m + 1)
        else:
            checks[LEVERAGE] = {
                "available": False,
                "reason": "trained before Marina recorded leverages; retrain",
            }
        if self.range_inputs:
            n = self._range_rows
            per_input = 2 * shrink / (n + 1) if n else None
            checks[RANGE] = {
                "inputs": {
                    name: [float(low), float(high)]
                    for name, low, high in zip(self.range_inputs, self._low, self._high, strict=True)
                },
                "falseAlarmRatePerInput": per_input,
            }
            if n:
                rate += len(self.range_inputs) * 2 * shrink / (n + 1)
                strict += len(self.range_inputs) * 2 / (n + 1)
        if self.category_inputs:
            checks[CATEGORY] = {"inputs": list(self.category_inputs)}
        return {
            "marginSds": margin,
            "checks": checks,
            "falseAlarmRate": rate,
            "falseAlarmRateAnyDistribution": min(strict, 1.0),
        }

    def explain_reason(self, reason: Reason, row: np.ndarray) -> str:
        """A reason in words, with the row's value and the bound it crossed."""
        if reason.check == RANGE and reason.input is not None:
            k = self.range_inputs.index(reason.input)
            value = float(row[self._range_columns[k]])
            return (
                f"input '{reason.input}' is {value:.6g}, beyond [{self._low[k]:.6g}, {self._high[k]:.6g}] "
                f"(its training range widened by {self._margin:g} standard deviations)"
            )
        if reason.check == CATEGORY:
            return f"input '{reason.input}' has a category training never saw (or none)"
        leverage = float(self.leverages(row[None, :])[0])
        limit = math.nan if self._leverage_limit is None else self._leverage_limit
        return (
            f"its leverage {leverage:.6g} is beyond {limit:.6g} (the training maximum widened by "
            f"{self._margin:g} standard deviations): an unusual combination of inputs"
        )

    def verdicts(
        self, features: np.ndarray, leverages: np.ndarray | None = None, centred: np.ndarray | None = None
    ) -> Verdicts:
        """Each row's verdict (the rows' leverages, and features - means, may be given when at hand)."""
        rows = len(features)
        outside: np.ndarray
        if self._range_columns.size:
            if centred is not None:
                values, middle = (
                    (centred if self._all_columns else centred[:, self._range_columns]),
                    self._mid_c,
                )
            else:
                values = features if self._all_columns else features[:, self._range_columns]
                middle = self._middle
            distance = values - middle
            np.abs(distance, out=distance)
            outside_range = distance > self._half_range
            outside = _any_in_rows(outside_range)
        else:
            outside_range = np.zeros((rows, 0), dtype=bool)
            outside = np.zeros(rows, dtype=bool)
        if self._blocks.shape[1]:
            outside_category = (features @ self._blocks) == 0.0
            outside |= _any_in_rows(outside_category)
        else:
            outside_category = np.zeros((rows, 0), dtype=bool)
        if self._leverage_limit is not None:
            leverage = (
                self.leverages(features, centred) if leverages is None else leverages
            ) > self._leverage_limit
            outside |= leverage
        else:
            leverage = np.zeros(rows, dtype=bool)
        return Verdicts(
            leverage,
            outside_range,
            outside_category,
            self.range_inputs,
            self.category_inputs,
            outside,
            bool(_ANY(outside)) if rows else False,
        )


_new_tuple = tuple.__new__  # a named tuple made by a C call, not its Python __new__
# ufunc reductions called directly: ndarray.any/sum pass through Python wrappers that cost a microsecond
# each, a tenth of what a one-row request's guard did
_ANY = np.logical_or.reduce


def _has_categories(features: np.ndarray, blocks: list[tuple[int, int]]) -> bool:
    """Whether one row has a known category in each checked one-hot block (an unseen one encodes as zeros)."""
    row = features[0].tolist()
    return all(any(row[start:stop]) for start, stop in blocks)


def _any_in_rows(flags: np.ndarray) -> np.ndarray:
    found: np.ndarray = np.logical_or.reduce(flags, axis=1)
    return found


def _sum_rows(values: np.ndarray) -> np.ndarray:
    total: np.ndarray = np.add.reduce(values, axis=1)
    return total


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_level(level: float) -> None:
    if not (isinstance(level, int | float) and not isinstance(level, bool) and 0.0 < level < 1.0):
        raise AnswerError(f"level: must be a number in (0, 1), like 0.9 or 0.95, got {level!r}")
