"""The contract between the CRDs, the operator and its Jobs, in one place (pure Python: no numpy, no kopf).

- What a spec may say: the enumerations, patterns and ranges the CRD schemas state (`SCHEMA`, checked
  against crds/*.yaml by tests/test_contract.py), used by the controller's spec parsers and the commands.
- What the operator asks a Job to do: `PrepareRequest`, `TrainRequest` and `PredictRequest`, turned into
  the container's argv by `to_argv()` and parsed back by the command with `from_args()`.
- What a Job answers: one JSON object in the result file (the pod's termination message) and an exit
  code. Success is the command's summary; failure is

      {"format": "marina.dev/result/v1", "error": {"kind": "storage-unavailable", "message": "..."}}

  with exit code 1 for a permanent failure (fix the data or the spec), 75 (EX_TEMPFAIL) for one worth
  retrying (object storage down, credentials refused or missing) and 70 (EX_SOFTWARE) for a bug. The
  operator decides from `kind`, never from the message text.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from marina.system.text import one_line

# --- enumerations ----------------------------------------------------------------------------------

PENALTIES = ("none", "l2", "l1", "elasticnet")
L1_PENALTIES = ("l1", "elasticnet")  # penalties with an l1 term: only L1_SOLVERS minimise them
SOLVERS = ("auto", "normal", "qr", "cd", "gd")
L1_SOLVERS = ("auto", "cd", "gd")
SEARCH_PENALTIES = ("l2", "l1", "elasticnet")  # a search varies alpha, which `none` does not have
L1_RATIO_PENALTIES = ("elasticnet",)  # the only penalty that reads l1_ratio
MISSING_POLICIES = ("drop", "mean", "median", "fail")
BUILTIN_DATASETS = ("diabetes",)
SOURCE_KINDS = ("builtin", "csv", "inline", "parquet", "synthetic")
DRIFT_ACTIONS = ("Alert", "Retrain")  # ModelDeployment spec.monitoring.onDrift
PROMOTION_POLICIES = ("Always", "IfBetter")  # ModelDeployment spec.promotion.policy
PROMOTION_METRICS = ("rmse", "mae", "r2")  # spec.promotion.metric: lower is better, but r2 higher
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"
DATASET_VERSION_PATTERN = r"^[0-9a-f]{16}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
#: Hex digits of a model artifact's sha256 that name its version (status, pod labels, served metadata).
MODEL_VERSION_LENGTH = 12


# --- failure kinds and exit codes -----------------------------------------------------------------

RESULT_FORMAT = "marina.dev/result/v1"
EXIT_SUCCESS = 0
EXIT_PERMANENT = 1  # the Job fails at once (podFailurePolicy FailJob): only a new spec or data helps
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug; failing again would teach nothing, so also FailJob
EXIT_RETRYABLE = 75  # EX_TEMPFAIL: the environment, not the input; retried (pod, then a new Job)


class FailureKind(enum.StrEnum):
    DATA = "data"  # the data cannot be used (a bad cell, too few rows, a corrupted prepared set)
    SPEC = "spec"  # a request or parameter value is wrong
    TRAINING = "training"  # the fit itself failed (diverged, produced no usable model)
    STORAGE_NOT_FOUND = "storage-not-found"  # an object or bucket named in the request does not exist
    STORAGE_REJECTED = "storage-rejected"  # object storage refused the request itself (e.g. a bad name)
    STORAGE_UNAVAILABLE = "storage-unavailable"  # unreachable, overloaded, full, answering 5xx
    STORAGE_DENIED = "storage-denied"  # the credentials were refused
    STORAGE_CONFIG = "storage-config"  # the endpoint or the credentials are missing from the environment
    INTERNAL = "internal"  # a bug, or a failure without a machine-readable kind (an old image, a crash)

    @property
    def retryable(self) -> bool:
        return self in RETRYABLE_KINDS

    @property
    def exit_code(self) -> int:
        if self.retryable:
            return EXIT_RETRYABLE
        return EXIT_INTERNAL if self is FailureKind.INTERNAL else EXIT_PERMANENT


RETRYABLE_KINDS = frozenset(
    {FailureKind.STORAGE_UNAVAILABLE, FailureKind.STORAGE_DENIED, FailureKind.STORAGE_CONFIG}
)


class JobError(Exception):
    """A failure a command expects and explains; its class says which `FailureKind` it is."""

    kind: ClassVar[FailureKind] = FailureKind.INTERNAL


class SpecError(JobError, ValueError):
    """A request or parameter value breaks the contract; the message names the flag or field."""

    kind = FailureKind.SPEC


# --- ranges ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A closed, open or half-open interval, as a JSON schema's minimum/maximum/exclusive* state it."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def __contains__(self, value: float) -> bool:
        low, high = self.minimum, self.maximum
        above = low is None or (value > low if self.exclusive_minimum else value >= low)
        below = high is None or (value < high if self.exclusive_maximum else value <= high)
        return above and below

    def __str__(self) -> str:
        low = "-inf" if self.minimum is None else _plain(self.minimum)
        high = "inf" if self.maximum is None else _plain(self.maximum)
        opening = "(" if self.exclusive_minimum or self.minimum is None else "["
        closing = ")" if self.exclusive_maximum or self.maximum is None else "]"
        return f"{opening}{low}, {high}{closing}"

    def problem(self, value: float) -> str | None:
        """Why `value` is outside, in words a status or an error message can carry; None when inside."""
        return None if value in self else f"must be in {self}, got {value!r}"

    def check(self, where: str, value: float) -> None:
        problem = self.problem(value)
        if problem:
            raise SpecError(f"{where}: {problem}")


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


SPLIT_TEST_FRACTION = Bound(0, 1, exclusive_minimum=True, exclusive_maximum=True)
SEED = Bound(0)
MAX_CATEGORIES = Bound(1, 10000)
SHARDS = Bound(1, 64)
TRAIN_PHASES = ("all", "shard", "reduce")
# Batch scoring (`marina predict`): what each row may be answered with, and the phases of a sharded run.
ANSWER_OUTPUTS = ("predict", "contribution", "lower", "upper", "extrapolation")
PREDICT_PHASES = ("all", "shard", "manifest")
SCORED_SPLITS = ("test", "train")
LEVEL = Bound(0, 1, exclusive_minimum=True, exclusive_maximum=True)
ALPHA = Bound(0)
L1_RATIO = Bound(0, 1)
MAX_ITER = Bound(1)
TOL = Bound(0, exclusive_minimum=True)
FOLDS = Bound(2, 20)
BACKOFF_LIMIT = Bound(0, 10)
ACTIVE_DEADLINE_SECONDS = Bound(10)
SYNTHETIC_ROWS = Bound(2, 10_000_000)
SYNTHETIC_FEATURES = Bound(1, 1000)
SYNTHETIC_NOISE = Bound(0)
SYNTHETIC_MISSING = Bound(0, 1, exclusive_maximum=True)
INLINE_ROWS = Bound(2, 5000)
REPLICAS = Bound(0, 100)
MIN_REPLICAS = Bound(1)
MAX_REPLICAS = Bound(1, 100)
TARGET_CPU_PERCENT = Bound(1, 100)
SCALE_DOWN_STABILIZATION_SECONDS = Bound(0, 3600)  # the HPA API's own limit
PROGRESS_DEADLINE_SECONDS = Bound(10, 3600)
MONITORING_INTERVAL_SECONDS = Bound(10, 86400)
MONITORING_MIN_ROWS = Bound(100, 100_000_000)  # fewer rows leave most of 10 bins nearly empty
PSI_THRESHOLD = Bound(0, exclusive_minimum=True)
NON_EMPTY = Bound(1)
KEEP_LAST = Bound(1)  # spec.retention.keepLast: the current version always stays
# ModelDeployment spec.rollout (Canary): steps of canary weight (percent of spec.replicas) and pause.
ROLLOUT_STRATEGIES = ("RollingUpdate", "Canary")
CANARY_STEPS = Bound(1, 20)
CANARY_WEIGHT = Bound(1, 100)
CANARY_PAUSE_SECONDS = Bound(0, 86400)
MAX_ERROR_RATE = Bound(0, 1)
MAX_P99_LATENCY_SECONDS = Bound(0, 10, exclusive_minimum=True)  # the servers' largest latency bucket
MAX_PREDICTION_SHIFT = Bound(0, exclusive_minimum=True)
MIN_CANARY_REQUESTS = Bound(0, 1_000_000)
PROMOTION_TOLERANCE = Bound(0, 1)  # relative for rmse and mae, absolute for r2
RETRAIN_COOLDOWN_SECONDS = Bound(0, 7 * 86400)
RETRAINS_PER_DAY = Bound(1, 1440)
RETRAIN_EVERY_SECONDS = Bound(60, 366 * 86400)


@dataclass(frozen=True)
class Rule:
    """What a CRD schema says about one field: allowed values, a pattern, a range, a size (items/length)."""

    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    bound: Bound | None = None
    size: Bound | None = None


# Every constraint the CRD schemas state on a spec field, by kind and path (`[]` marks a list's items).
SCHEMA: dict[str, dict[str, Rule]] = {
    "Dataset": {
        "spec.source.builtin": Rule(choices=BUILTIN_DATASETS),
        "spec.source.csv.uri": Rule(pattern=S3_URI_PATTERN),
        "spec.source.parquet.uri": Rule(pattern=S3_URI_PATTERN),
        "spec.source.inline.columns": Rule(size=Bound(2, 200)),
        "spec.source.inline.columns[]": Rule(size=NON_EMPTY),
        "spec.source.inline.rows": Rule(size=INLINE_ROWS),
        "spec.source.inline.rows[]": Rule(size=Bound(maximum=200)),
        "spec.source.synthetic.rows": Rule(bound=SYNTHETIC_ROWS),
        "spec.source.synthetic.features": Rule(bound=SYNTHETIC_FEATURES),
        "spec.source.synthetic.noise": Rule(bound=SYNTHETIC_NOISE),
        "spec.source.synthetic.seed": Rule(bound=SEED),
        "spec.source.synthetic.missing": Rule(bound=SYNTHETIC_MISSING),
        "spec.target": Rule(size=NON_EMPTY),
        "spec.features[]": Rule(size=NON_EMPTY),
        "spec.cleaning.missing": Rule(choices=MISSING_POLICIES),
        "spec.cleaning.maxCategories": Rule(bound=MAX_CATEGORIES),
        "spec.split.testFraction": Rule(bound=SPLIT_TEST_FRACTION),
        "spec.split.seed": Rule(bound=SEED),
        "spec.retention.keepLast": Rule(bound=KEEP_LAST),
    },
    "TrainingJob": {
        "spec.dataset.name": Rule(size=NON_EMPTY),
        "spec.dataset.version": Rule(pattern=DATASET_VERSION_PATTERN),
        "spec.model.penalty": Rule(choices=PENALTIES),
        "spec.model.alpha": Rule(bound=ALPHA),
        "spec.model.l1Ratio": Rule(bound=L1_RATIO),
        "spec.model.solver": Rule(choices=SOLVERS),
        "spec.model.maxIter": Rule(bound=MAX_ITER),
        "spec.model.tol": Rule(bound=TOL),
        "spec.search.alphas": Rule(size=Bound(1, 100)),
        "spec.search.alphas[]": Rule(bound=ALPHA),
        "spec.search.l1Ratios": Rule(size=Bound(1, 20)),
        "spec.search.l1Ratios[]": Rule(bound=L1_RATIO),
        "spec.search.folds": Rule(bound=FOLDS),
        "spec.backoffLimit": Rule(bound=BACKOFF_LIMIT),
        "spec.parallelism": Rule(bound=SHARDS),
        "spec.activeDeadlineSeconds": Rule(bound=ACTIVE_DEADLINE_SECONDS),
        "spec.retention.keepLast": Rule(bound=KEEP_LAST),
    },
    "ModelDeployment": {
        "spec.model.trainingJob": Rule(size=NON_EMPTY),
        "spec.model.uri": Rule(pattern=S3_URI_PATTERN),
        "spec.model.sha256": Rule(pattern=SHA256_PATTERN),
        "spec.replicas": Rule(bound=REPLICAS),
        "spec.autoscaling.minReplicas": Rule(bound=MIN_REPLICAS),
        "spec.autoscaling.maxReplicas": Rule(bound=MAX_REPLICAS),
        "spec.autoscaling.targetCPUUtilizationPercentage": Rule(bound=TARGET_CPU_PERCENT),
        "spec.autoscaling.scaleDownStabilizationSeconds": Rule(bound=SCALE_DOWN_STABILIZATION_SECONDS),
        "spec.rollout.progressDeadlineSeconds": Rule(bound=PROGRESS_DEADLINE_SECONDS),
        "spec.rollout.strategy": Rule(choices=ROLLOUT_STRATEGIES),
        "spec.rollout.steps": Rule(size=CANARY_STEPS),
        "spec.rollout.steps[].weight": Rule(bound=CANARY_WEIGHT),
        "spec.rollout.steps[].pauseSeconds": Rule(bound=CANARY_PAUSE_SECONDS),
        "spec.rollout.analysis.maxErrorRate": Rule(bound=MAX_ERROR_RATE),
        "spec.rollout.analysis.maxP99LatencySeconds": Rule(bound=MAX_P99_LATENCY_SECONDS),
        "spec.rollout.analysis.maxPredictionShift": Rule(bound=MAX_PREDICTION_SHIFT),
        "spec.rollout.analysis.minRequests": Rule(bound=MIN_CANARY_REQUESTS),
        "spec.monitoring.intervalSeconds": Rule(bound=MONITORING_INTERVAL_SECONDS),
        "spec.monitoring.minRows": Rule(bound=MONITORING_MIN_ROWS),
        "spec.monitoring.psiThreshold": Rule(bound=PSI_THRESHOLD),
        "spec.monitoring.onDrift": Rule(choices=DRIFT_ACTIONS),
        "spec.retraining.cooldownSeconds": Rule(bound=RETRAIN_COOLDOWN_SECONDS),
        "spec.retraining.maxPerDay": Rule(bound=RETRAINS_PER_DAY),
        "spec.retraining.everySeconds": Rule(bound=RETRAIN_EVERY_SECONDS),
        "spec.promotion.policy": Rule(choices=PROMOTION_POLICIES),
        "spec.promotion.metric": Rule(choices=PROMOTION_METRICS),
        "spec.promotion.tolerance": Rule(bound=PROMOTION_TOLERANCE),
    },
}


def check_choice(where: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SpecError(f"{where}: must be one of {', '.join(choices)}, got {value!r}")


def either(values: Sequence[str]) -> str:
    """`a, b or c`, for messages."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def l1_solver_problem(penalty: str, solver: str) -> str | None:
    """Why this solver cannot minimise this penalty (coordinate or gradient descent is needed for l1)."""
    if penalty in L1_PENALTIES and solver not in L1_SOLVERS:
        return f"{penalty} needs one of {', '.join(L1_SOLVERS)}, got {solver!r}"
    return None


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str

    @property
    def exit_code(self) -> int:
        return self.kind.exit_code

    def to_json(self) -> dict[str, Any]:
        return {"format": RESULT_FORMAT, "error": {"kind": str(self.kind), "message": self.message}}


@dataclass(frozen=True)
class Success:
    summary: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.summary, "format": RESULT_FORMAT}


def encode(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def kind_for_exit_code(exit_code: int | None) -> FailureKind:
    """The kind of a failure that did not say one: retryable by its exit code, else internal (permanent)."""
    return FailureKind.STORAGE_UNAVAILABLE if exit_code == EXIT_RETRYABLE else FailureKind.INTERNAL


def parse_result(text: str | None, exit_code: int | None = None) -> Success | Failure | None:
    """Read a result file. Text without a kind — the old `{"error": "text"}`, or a log tail written by
    FallbackToLogsOnError after a crash — is a failure of the kind its exit code implies, never one
    guessed from its words. None when there is nothing to read."""
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return Failure(kind_for_exit_code(exit_code), one_line(text, keep_end=True))
    if "error" not in value:
        return Success({k: v for k, v in value.items() if k != "format"})
    error = value["error"]
    if not isinstance(error, dict):
        return Failure(kind_for_exit_code(exit_code), one_line(str(error)))
    kind = str(error.get("kind", ""))
    known = kind in FailureKind.__members__.values()
    message = one_line(str(error.get("message", "")))
    return Failure(FailureKind(kind) if known else kind_for_exit_code(exit_code), message)


# --- requests --------------------------------------------------------------------------------------

T = TypeVar("T")


def _scalar(kind: Callable[[str], T], name: str) -> Callable[[str, str], T]:
    def parse(flag: str, text: str) -> T:
        try:
            return kind(text.strip())
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{flag}: {text!r} is not a valid {name}") from exc

    return parse


def _word(flag: str, text: str) -> str:
    return text.strip().lower()


def _text(flag: str, text: str) -> str:
    return text.strip()


def _names(flag: str, text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _numbers(flag: str, text: str) -> tuple[float, ...]:
    values = tuple(_scalar(float, "number")(flag, part) for part in text.split(",") if part.strip())
    if not values:
        raise SpecError(f"{flag}: give at least one value, like 0.1,1,10")
    return values


def _render_number(value: Any) -> str:
    return repr(float(value))  # repr round-trips every float exactly


@dataclass(frozen=True)
class Flag:
    """How one request field travels on the command line."""

    name: str
    help: str
    metavar: str | None = None
    parse: Callable[[str, str], Any] = _text
    render: Callable[[Any], str] = str
    aliases: tuple[str, ...] = ()
    switch: bool = False


def flag(name: str, help: str, *, default: Any = dataclasses.MISSING, **options: Any) -> Any:
    """A request field and its flag; without a default the flag is required."""
    return field(default=default, metadata={"flag": Flag(name, help, **options)})


def integer_flag(name: str, help: str, default: int | None, metavar: str = "N") -> Any:
    return flag(name, help, default=default, metavar=metavar, parse=_scalar(int, "integer"))


def number_flag(name: str, help: str, default: float | None, metavar: str = "F") -> Any:
    return flag(
        name, help, default=default, metavar=metavar, parse=_scalar(float, "number"), render=_render_number
    )


def numbers_flag(name: str, help: str) -> Any:
    render = ",".join
    return flag(
        name,
        help,
        default=(),
        metavar="A,B,C",
        parse=_numbers,
        render=lambda v: render(map(_render_number, v)),
    )


def switch(name: str, help: str, aliases: tuple[str, ...] = ()) -> Any:
    return flag(name, help, default=False, switch=True, aliases=aliases)


def result_file_flag() -> Any:
    """`--result-file`, which every command the operator runs in a Job takes."""
    return flag(
        "--result-file",
        "also write the result JSON here (the operator uses /dev/termination-log)",
        default=None,
        metavar="PATH",
    )


def progress_flag() -> Any:
    """`--progress`, which every long command takes."""
    return flag(
        "--progress",
        "file or s3:// object rewritten every few seconds with the command's progress (JSON)",
        default=None,
        metavar="URI",
    )


def phase_flag(phases: Sequence[str], what: str) -> Any:
    """`--phase` of a command an Indexed Job shards: `what` says what each phase does."""
    return flag("--phase", f"{' | '.join(phases)}: {what}", default="all", metavar="PHASE", parse=_word)


def shard_index_flag() -> Any:
    return integer_flag(
        "--shard-index", "this pod's shard, 0-based (default: $JOB_COMPLETION_INDEX)", None, "I"
    )


def json_flag(name: str, help: str) -> Any:
    """A flag whose text is a document, taken as given (not stripped)."""
    return flag(name, help, default=None, metavar="JSON", parse=lambda _, text: text)


def model_flag() -> Any:
    return flag("--model", "the model artifact (path or s3:// URI)", metavar="URI")


def sha256_flag() -> Any:
    return flag(
        "--sha256", "the artifact's sha256; refuse the model on a mismatch", default=None, metavar="HEX"
    )


def split_flag() -> Any:
    return flag(
        "--split",
        f"{' | '.join(SCORED_SPLITS)}: the split of a prepared dataset",
        default="test",
        parse=_word,
    )


def check_sha256(where: str, digest: str | None) -> None:
    if digest is not None and not re.fullmatch(SHA256_PATTERN, digest):
        raise SpecError(f"{where}: expected 64 lowercase hex digits, got {digest!r}")


R = TypeVar("R", bound="Request")


class Request:
    """A command's typed request: `add_arguments` declares its flags, `to_argv` writes them (for a Job's
    container) and `from_args` reads them back. Flags are strings to argparse and parsed here, so a bad
    value becomes a SpecError in the result file rather than argparse's usage message and exit code 2."""

    COMMAND: ClassVar[str]

    @classmethod
    def _flags(cls) -> list[tuple[str, Flag, bool]]:
        """(field name, flag, required) for every field."""
        return [
            (f.name, f.metadata["flag"], f.default is dataclasses.MISSING)
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        ]

    @classmethod
    def _help(cls, name: str, spec: Flag, required: bool) -> str:
        if required:
            return f"{spec.help} (required)"
        default = getattr(cls, name, None)  # a dataclass keeps each field's default as a class attribute
        if default is None or default is False or default == ():
            return spec.help
        return f"{spec.help} (default: {spec.render(default)})"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for name, spec, required in cls._flags():
            text = cls._help(name, spec, required)
            if spec.switch:
                parser.add_argument(spec.name, *spec.aliases, dest=name, action="store_true", help=text)
            else:
                parser.add_argument(spec.name, *spec.aliases, dest=name, metavar=spec.metavar, help=text)

    @classmethod
    def from_args(cls: type[R], args: argparse.Namespace) -> R:
        values: dict[str, Any] = {}
        for name, spec, required in cls._flags():
            raw = getattr(args, name, None)
            if raw is None or raw is False:
                if required:
                    raise SpecError(f"{spec.name} is required")
                continue
            values[name] = True if spec.switch else spec.parse(spec.name, raw)
        return cls(**values)  # type: ignore[call-arg]

    def to_argv(self) -> list[str]:
        argv = [self.COMMAND]
        for name, spec, _ in self._flags():
            value = getattr(self, name)
            if value is None or value is False or value == ():
                continue
            argv += [spec.name] if spec.switch else [spec.name, spec.render(value)]
        return argv


@dataclass(frozen=True)
class PrepareRequest(Request):
    """`marina prepare`: read a source, clean, split and version it under `<output>/<version>/`."""

    COMMAND: ClassVar[str] = "prepare"

    source: str = flag(
        "--source",
        "builtin:diabetes | synthetic:rows=N,features=N,noise=F,seed=N,missing=F | inline | "
        "s3://bucket/key.csv[.gz] | s3://bucket/key.parquet | s3://bucket/prefix/ | local file or folder",
        metavar="SPEC",
    )
    output: str = flag(
        "--output", "folder or s3:// prefix; the dataset goes to <output>/<version>/", metavar="DIR_OR_S3"
    )
    target: str = flag("--target", "target column", default="target", metavar="COLUMN")
    name: str | None = flag(
        "--name",
        "dataset name recorded in dataset.json (default: from the source)",
        default=None,
        metavar="NAME",
    )
    test_fraction: float = number_flag(
        "--test-fraction", "share of rows held out for testing, in (0, 1)", 0.2
    )
    seed: int = integer_flag("--seed", "seed of the train/test split", 42)
    missing: str = flag(
        "--missing",
        f"missing values: {' | '.join(MISSING_POLICIES)}",
        default="drop",
        metavar="POLICY",
        parse=_word,
    )
    max_categories: int = integer_flag(
        "--max-categories", "most distinct values a text (category) column may hold", 100
    )
    features: tuple[str, ...] | None = flag(
        "--features",
        "comma-separated feature columns to keep (default: every column but the target)",
        default=None,
        metavar="A,B,C",
        parse=_names,
        render=",".join,
    )
    inline_rows: str | None = json_flag(
        "--inline-rows", 'rows for --source inline, as a JSON/YAML list of objects: [{"x":1,"y":2}]'
    )
    rows_file: str | None = flag(
        "--rows-file",
        "file or s3:// object holding the rows for --source inline",
        default=None,
        metavar="PATH_OR_S3",
    )
    progress: str | None = progress_flag()
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        SPLIT_TEST_FRACTION.check("--test-fraction", self.test_fraction)
        SEED.check("--seed", self.seed)
        check_choice("--missing", self.missing, MISSING_POLICIES)
        if self.inline_rows is not None and self.rows_file is not None:
            raise SpecError("give inline rows either with --inline-rows or with --rows-file, not both")


@dataclass(frozen=True)
class TrainRequest(Request):
    """`marina train`: fit a model on a prepared dataset (searching alpha/l1_ratio when asked)."""

    COMMAND: ClassVar[str] = "train"

    data: str = flag(
        "--data",
        "dataset folder or s3:// prefix written by `marina prepare`: a version's folder, or the --output "
        "it was prepared into (its only, else its newest, version)",
        metavar="DIR_OR_S3",
    )
    output: str = flag("--output", "folder or s3:// prefix for the model artifact", metavar="DIR_OR_S3")
    name: str | None = flag(
        "--name", "name of the model (the TrainingJob), reported in the result", default=None, metavar="NAME"
    )
    penalty: str = flag("--penalty", " | ".join(PENALTIES), default="none", metavar="NAME", parse=_word)
    alpha: float = number_flag("--alpha", "penalty strength, scikit-learn's scaling", 1.0)
    l1_ratio: float = number_flag("--l1-ratio", "elastic-net mix: 0 is ridge, 1 is lasso", 0.5)
    solver: str = flag("--solver", " | ".join(SOLVERS), default="auto", metavar="NAME", parse=_word)
    standardize: bool = switch(
        "--standardize", "fit on standardised features (coefficients stay in original units)"
    )
    no_intercept: bool = switch("--no-intercept", "fit without an intercept", aliases=("--no-fit-intercept",))
    max_iter: int | None = integer_flag(
        "--max-iter", "iteration limit of the iterative solvers (default: the solver's)", None
    )
    tol: float = number_flag("--tol", "convergence tolerance of the iterative solvers", 1e-4)
    learning_rate: float | None = number_flag(
        "--learning-rate", "step size of the gradient-descent solver (default: the solver's)", None
    )
    search_alpha: tuple[float, ...] = numbers_flag(
        "--search-alpha", "alphas to cross-validate, e.g. 0.01,0.1,1"
    )
    search_l1_ratio: tuple[float, ...] = numbers_flag(
        "--search-l1-ratio", "l1 ratios to cross-validate (elasticnet only)"
    )
    folds: int | None = integer_flag("--cv", "cross-validation folds (default: 5 when searching)", None, "K")
    seed: int = integer_flag("--seed", "seed of the cross-validation folds", 42)
    phase: str = phase_flag(TRAIN_PHASES, "everything in this pod, one shard's statistics, or the reduce")
    shards: int = integer_flag("--shards", "pods sharing the statistics pass (an Indexed Job)", 1)
    shard_index: int | None = shard_index_flag()
    partials: str | None = flag(
        "--partials", "folder or s3:// prefix for the shards' partial statistics", default=None, metavar="URI"
    )
    progress: str | None = progress_flag()
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        check_choice("--penalty", self.penalty, PENALTIES)
        check_choice("--solver", self.solver, SOLVERS)
        problem = l1_solver_problem(self.penalty, self.solver)
        if problem:
            raise SpecError(f"--solver: {problem}")
        ALPHA.check("--alpha", self.alpha)
        L1_RATIO.check("--l1-ratio", self.l1_ratio)
        if self.max_iter is not None:
            MAX_ITER.check("--max-iter", self.max_iter)
        TOL.check("--tol", self.tol)
        self._check_search()
        self._check_shards()

    def _check_shards(self) -> None:
        check_choice("--phase", self.phase, TRAIN_PHASES)
        SHARDS.check("--shards", self.shards)
        if self.phase == "all":
            return
        if self.shards < 2 or self.partials is None:
            raise SpecError(f"--phase {self.phase} needs --shards of at least 2 and --partials")
        if self.shard_index is not None and not 0 <= self.shard_index < self.shards:
            raise SpecError(f"--shard-index: must be in [0, {self.shards - 1}], got {self.shard_index}")

    def _check_search(self) -> None:
        if self.search_alpha and self.penalty not in SEARCH_PENALTIES:
            raise SpecError(
                f"--search-alpha needs --penalty {either(SEARCH_PENALTIES)} (penalty {self.penalty!r} "
                "has no alpha)"
            )
        if self.search_l1_ratio and self.penalty not in L1_RATIO_PENALTIES:
            raise SpecError(f"--search-l1-ratio needs --penalty elasticnet, got {self.penalty!r}")
        for alpha in self.search_alpha:
            ALPHA.check("--search-alpha", alpha)
        for ratio in self.search_l1_ratio:
            L1_RATIO.check("--search-l1-ratio", ratio)
        if self.folds is not None:
            FOLDS.check("--cv", self.folds)
        SEED.check("--seed", self.seed)

    @property
    def searching(self) -> bool:
        return bool(self.search_alpha or self.search_l1_ratio)

    def model_parameters(self) -> dict[str, Any]:
        """The keyword arguments of `marina.solver.LinearRegressor`."""
        parameters: dict[str, Any] = {
            "penalty": self.penalty,
            "alpha": self.alpha,
            "l1_ratio": self.l1_ratio,
            "solver": self.solver,
            "fit_intercept": not self.no_intercept,
            "standardize": self.standardize,
            "tol": self.tol,
        }
        if self.max_iter is not None:
            parameters["max_iter"] = self.max_iter
        if self.learning_rate is not None:
            parameters["learning_rate"] = self.learning_rate
        return parameters


@dataclass(frozen=True)
class EvaluateRequest(Request):
    """`marina evaluate`: score a serving model (champion) and a new one (challenger) on one test split."""

    COMMAND: ClassVar[str] = "evaluate"

    champion: str = flag("--champion", "the serving model's artifact (path or s3:// URI)", metavar="URI")
    champion_sha256: str = flag("--champion-sha256", "the champion artifact's sha256", metavar="HEX")
    challenger: str = flag("--challenger", "the new model's artifact (path or s3:// URI)", metavar="URI")
    challenger_sha256: str = flag("--challenger-sha256", "the challenger artifact's sha256", metavar="HEX")
    data: str | None = flag(
        "--data",
        "the prepared dataset version whose test split scores both (default: the challenger's own)",
        default=None,
        metavar="DIR_OR_S3",
    )
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        for where, digest in (
            ("--champion-sha256", self.champion_sha256),
            ("--challenger-sha256", self.challenger_sha256),
        ):
            if not re.fullmatch(SHA256_PATTERN, digest):
                raise SpecError(f"{where}: expected 64 lowercase hex digits, got {digest!r}")


@dataclass(frozen=True)
class PredictRequest(Request):
    """`marina predict`: score a dataset with a model, chunk by chunk, into content-addressed Parquet parts
    and a manifest; N pods of an Indexed Job each score every N-th part, a last step writes the manifest."""

    COMMAND: ClassVar[str] = "predict"

    model: str = model_flag()
    data: str = flag(
        "--data",
        "a prepared dataset version folder (with --split), or a CSV/Parquet object, file, folder or "
        "s3:// prefix whose columns include the model's inputs",
        metavar="SOURCE",
    )
    output: str = flag(
        "--output", "folder or s3:// prefix for parts/<sha256>.parquet and manifest.json", metavar="PREFIX"
    )
    sha256: str | None = sha256_flag()
    split: str = split_flag()
    outputs: tuple[str, ...] = flag(
        "--outputs",
        f"comma-separated, any of {','.join(ANSWER_OUTPUTS)}",
        default=("predict",),
        metavar="A,B",
        parse=_names,
        render=",".join,
    )
    level: float = number_flag("--level", "the level of the lower and upper bounds, in (0, 1)", 0.95)
    passthrough: tuple[str, ...] = flag(
        "--passthrough",
        "comma-separated source columns copied beside the answers (an id, the target)",
        default=(),
        metavar="A,B",
        parse=_names,
        render=",".join,
    )
    phase: str = phase_flag(
        PREDICT_PHASES, "everything in this pod, one shard's parts, or the manifest of the shards' parts"
    )
    shards: int = integer_flag("--shards", "pods sharing the scoring (an Indexed Job)", 1)
    shard_index: int | None = shard_index_flag()
    progress: str | None = progress_flag()
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        check_sha256("--sha256", self.sha256)
        check_choice("--split", self.split, SCORED_SPLITS)
        if not self.outputs:
            raise SpecError(f"--outputs: name at least one of {', '.join(ANSWER_OUTPUTS)}")
        for name in self.outputs:
            check_choice("--outputs", name, ANSWER_OUTPUTS)
        repeated = sorted({name for name in self.outputs if self.outputs.count(name) > 1})
        if repeated:
            raise SpecError(f"--outputs: {', '.join(repeated)} named more than once")
        LEVEL.check("--level", self.level)
        clashing = [name for name in self.passthrough if name in self.columns_written]
        if clashing or len(set(self.passthrough)) != len(self.passthrough):
            raise SpecError(f"--passthrough: {', '.join(clashing) or 'a column'} would be written twice")
        check_choice("--phase", self.phase, PREDICT_PHASES)
        SHARDS.check("--shards", self.shards)
        if self.phase != "all" and self.shards < 2:
            raise SpecError(f"--phase {self.phase} needs --shards of at least 2")
        if self.phase == "all" and self.shards > 1:
            raise SpecError("--shards above 1 needs --phase shard (each pod) or manifest (the last step)")
        if self.shard_index is not None and not 0 <= self.shard_index < self.shards:
            raise SpecError(f"--shard-index: must be in [0, {self.shards - 1}], got {self.shard_index}")

    @property
    def columns_written(self) -> tuple[str, ...]:
        """The answer columns of the parts named after their output (contributions are one column per raw
        input, contribution_<input>)."""
        return tuple(name for name in self.outputs if name != "contribution")


@dataclass(frozen=True)
class ExplainRequest(Request):
    """`marina explain`: a model's answers for a few rows, with every raw input's contribution."""

    COMMAND: ClassVar[str] = "explain"

    model: str = model_flag()
    sha256: str | None = sha256_flag()
    row: str | None = json_flag(
        "--row",
        "one row (an object keyed by input name, or a list in input order) or a list of them, as JSON: "
        '{"age": 0.03, "bmi": 0.06, ...}',
    )
    data: str | None = flag(
        "--data",
        "a prepared dataset version or a CSV/Parquet source, as marina predict takes it",
        default=None,
        metavar="SOURCE",
    )
    split: str = split_flag()
    rows: int = integer_flag("--rows", "rows of --data to explain, from its first", 10)
    level: float = number_flag("--level", "the level of the intervals, in (0, 1)", 0.95)
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        if (self.row is None) == (self.data is None):
            raise SpecError("give the rows to explain either with --row JSON or with --data SOURCE")
        check_sha256("--sha256", self.sha256)
        check_choice("--split", self.split, SCORED_SPLITS)
        Bound(1, 10_000).check("--rows", self.rows)
        LEVEL.check("--level", self.level)
