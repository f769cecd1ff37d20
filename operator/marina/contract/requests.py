"""What the operator asks a Job to do: `PrepareRequest`, `TrainRequest` and `EvaluateRequest`, turned
into the container's argv by `to_argv()` and parsed back by the command with `from_args()`.

A flag that carries a resource's field names it (`field=DATASET.integer("spec.split.seed")`): its default
and its check (range, enum, pattern) are that field's, so the command line, the CRD and the controller
can never disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from marina.contract.bounds import Bound, check_choice, either
from marina.contract.failures import SpecError
from marina.contract.kinds import (
    ANSWER_OUTPUTS,
    BATCH_PREDICTION,
    DATASET,
    L1_RATIO_PENALTIES,
    MISSING_POLICIES,
    PENALTIES,
    SCORED_SPLITS,
    SEARCH_PENALTIES,
    SHA256_PATTERN,
    SOLVERS,
    TRAINING_JOB,
    l1_solver_problem,
)
from marina.contract.schema import Array, Field, Integer, Number

TRAIN_PHASES = ("all", "shard", "reduce")
PREPARE_PHASES = TRAIN_PHASES  # one pod; one share of the source; the merge of the shares
PREDICT_PHASES = ("all", "shard", "manifest")
FOLDS = TRAINING_JOB.integer("spec.search.folds")
SEED = Bound(0)  # the cross-validation folds' seed: no resource carries it
SHARDS = TRAINING_JOB.integer("spec.parallelism")  # the Dataset's and BatchPrediction's are the same
SHA256 = BATCH_PREDICTION.string("spec.model.sha256")
LEVEL = BATCH_PREDICTION.number("spec.level")


def _model(name: str) -> Number:
    return TRAINING_JOB.number(f"spec.model.{name}")


def _search(name: str) -> Array:
    found = TRAINING_JOB.at(f"spec.search.{name}")
    assert isinstance(found, Array)
    return found


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
    contract: Field | None = None  # the resource field this flag carries: its check (and default)

    def check(self, value: Any) -> None:
        if self.contract is None or value is None:
            return
        if isinstance(self.contract, Array):
            for item in value:
                self.contract.items.check(self.name, item)
        else:
            self.contract.check(self.name, value)


def flag(name: str, help: str, *, default: Any = dataclasses.MISSING, **options: Any) -> Any:
    """A request field and its flag; without a default the flag is required."""
    return field(default=default, metadata={"flag": Flag(name, help, **options)})


def field_flag(name: str, help: str, carries: Field, **options: Any) -> Any:
    """A flag that carries a resource's field: the field's default (none if it has none) and check."""
    default = carries.default if carries.has_default else None
    return flag(name, help, default=default, contract=carries, **options)


def integer_flag(name: str, help: str, default: int | None, metavar: str = "N", **options: Any) -> Any:
    return flag(name, help, default=default, metavar=metavar, parse=_scalar(int, "integer"), **options)


def number_flag(name: str, help: str, default: float | None, metavar: str = "F", **options: Any) -> Any:
    return flag(
        name,
        help,
        default=default,
        metavar=metavar,
        parse=_scalar(float, "number"),
        render=_render_number,
        **options,
    )


def integer_field_flag(name: str, help: str, carries: Integer, metavar: str = "N") -> Any:
    return field_flag(name, help, carries, metavar=metavar, parse=_scalar(int, "integer"))


def number_field_flag(name: str, help: str, carries: Number, metavar: str = "F") -> Any:
    return field_flag(
        name, help, carries, metavar=metavar, parse=_scalar(float, "number"), render=_render_number
    )


def numbers_flag(name: str, help: str, carries: Array) -> Any:
    render = ",".join
    return flag(
        name,
        help,
        default=(),
        metavar="A,B,C",
        parse=_numbers,
        render=lambda v: render(map(_render_number, v)),
        contract=carries,
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


def phase_flag(phases: tuple[str, ...], what: str) -> Any:
    """`--phase` of a command an Indexed Job shards: `what` says what each phase does."""
    return flag("--phase", f"{' | '.join(phases)}: {what}", default="all", metavar="PHASE", parse=_word)


def shard_index_flag() -> Any:
    return integer_flag(
        "--shard-index", "this pod's shard, 0-based (default: $JOB_COMPLETION_INDEX)", None, "I"
    )


def shards_flag(what: str) -> Any:
    """`--shards`: the pods an Indexed Job shares the work among (a resource's `spec.parallelism`)."""
    return integer_field_flag("--shards", what, SHARDS)


def partials_flag(what: str) -> Any:
    """`--partials`: where the shards of a run leave their results for the reduce."""
    return flag("--partials", f"folder or s3:// prefix for the shards' {what}", default=None, metavar="URI")


def check_sharding(
    phase: str, phases: tuple[str, ...], shards: int, shard_index: int | None, partials: str | None
) -> None:
    """A shard or reduce phase needs at least two shards and a place for their partial results."""
    check_choice("--phase", phase, phases)
    if phase == "all":
        return
    if shards < 2 or partials is None:
        raise SpecError(f"--phase {phase} needs --shards of at least 2 and --partials")
    if shard_index is not None and not 0 <= shard_index < shards:
        raise SpecError(f"--shard-index: must be in [0, {shards - 1}], got {shard_index}")


def json_flag(name: str, help: str) -> Any:
    """A flag whose text is a document, taken as given (not stripped)."""
    return flag(name, help, default=None, metavar="JSON", parse=lambda _, text: text)


def model_flag() -> Any:
    return flag("--model", "the model artifact (path or s3:// URI)", metavar="URI")


def sha256_flag() -> Any:
    return flag(
        "--sha256",
        "the artifact's sha256; refuse the model on a mismatch",
        default=None,
        metavar="HEX",
        contract=SHA256,
    )


def split_flag() -> Any:
    return field_flag(
        "--split",
        f"{' | '.join(SCORED_SPLITS)}: the split of a prepared dataset",
        BATCH_PREDICTION.string("spec.source.dataset.split"),
        metavar="SPLIT",
        parse=_word,
    )


def names_flag(name: str, help: str, carries: Field | None = None, default: tuple[str, ...] = ()) -> Any:
    """A comma-separated list of names."""
    return flag(name, help, default=default, metavar="A,B", parse=_names, render=",".join, contract=carries)


#: `--source served`: the Dataset holds only the served rows `--served-logs` names.
SERVED_SOURCE = "served"
SERVED_LOGS_FIELD = "spec.source.servedLogs"


def served_flag(name: str, help: str, key: str) -> Any:
    """A `--served-*` number carrying spec.source.servedLogs.<key>: absent unless served logs are read (its
    default then is the field's)."""
    carries = DATASET.integer(f"{SERVED_LOGS_FIELD}.{key}")
    return flag(name, help, default=None, metavar="N", parse=_scalar(int, "integer"), contract=carries)


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

    def check_flags(self) -> None:
        """Every flag that carries a resource's field is checked as that field (range, enum, pattern)."""
        for name, spec, _ in self._flags():
            spec.check(getattr(self, name))

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
        "builtin:diabetes | synthetic:rows=N,features=N,noise=F,seed=N,missing=F | inline | served | "
        "s3://bucket/key.csv[.gz] | s3://bucket/key.parquet | s3://bucket/prefix/ | local file or folder",
        metavar="SPEC",
    )
    output: str = flag(
        "--output", "folder or s3:// prefix; the dataset goes to <output>/<version>/", metavar="DIR_OR_S3"
    )
    target: str = field_flag("--target", "target column", DATASET.string("spec.target"), metavar="COLUMN")
    name: str | None = flag(
        "--name",
        "dataset name recorded in dataset.json (default: from the source)",
        default=None,
        metavar="NAME",
    )
    test_fraction: float = number_field_flag(
        "--test-fraction", "share of rows held out for testing", DATASET.number("spec.split.testFraction")
    )
    seed: int = integer_field_flag(
        "--seed", "seed of the train/test split", DATASET.integer("spec.split.seed")
    )
    missing: str = field_flag(
        "--missing",
        f"missing values: {' | '.join(MISSING_POLICIES)}",
        DATASET.string("spec.cleaning.missing"),
        metavar="POLICY",
        parse=_word,
    )
    max_categories: int = integer_field_flag(
        "--max-categories",
        "most distinct values a text (category) column may hold",
        DATASET.integer("spec.cleaning.maxCategories"),
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
    served_logs: str | None = flag(
        "--served-logs",
        "a ModelDeployment's payload-log prefix (s3://<bucket>/logs/<namespace>/<name>/): its rows joined "
        f"with their truth, alone with --source {SERVED_SOURCE}, else after the source's rows",
        default=None,
        metavar="PREFIX",
    )
    served_uploads: str | None = flag(
        "--served-uploads",
        "prefix of truth files uploaded for those rows (CSV or Parquet: id, target, optionally row)",
        default=None,
        metavar="PREFIX",
    )
    served_window_hours: int | None = served_flag(
        "--served-window-hours",
        "feedback received this many hours before now, or since, counts",
        "windowHours",
    )
    served_label_delay_hours: int | None = served_flag(
        "--served-label-delay-hours", "predictions this long before the window are joined", "labelDelayHours"
    )
    served_max_rows: int | None = served_flag(
        "--served-max-rows", "rows of logs and feedback read at most, newest first", "maxRows"
    )
    phase: str = phase_flag(PREPARE_PHASES, "everything in this pod, one share of the source, or the reduce")
    shards: int = shards_flag("pods sharing the source (an Indexed Job)")
    shard_index: int | None = shard_index_flag()
    partials: str | None = partials_flag("partial results")
    progress: str | None = progress_flag()
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        self.check_flags()
        if self.inline_rows is not None and self.rows_file is not None:
            raise SpecError("give inline rows either with --inline-rows or with --rows-file, not both")
        if self.source == SERVED_SOURCE and self.served_logs is None:
            raise SpecError(f"--source {SERVED_SOURCE} needs --served-logs (a ModelDeployment's logs prefix)")
        options = (
            self.served_uploads,
            self.served_window_hours,
            self.served_label_delay_hours,
            self.served_max_rows,
        )
        if self.served_logs is None and any(option is not None for option in options):
            raise SpecError("the --served-* options need --served-logs")
        check_sharding(self.phase, PREPARE_PHASES, self.shards, self.shard_index, self.partials)


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
    penalty: str = field_flag(
        "--penalty", " | ".join(PENALTIES), TRAINING_JOB.at("spec.model.penalty"), metavar="NAME", parse=_word
    )
    alpha: float = number_field_flag("--alpha", "penalty strength, scikit-learn's scaling", _model("alpha"))
    l1_ratio: float = number_field_flag(
        "--l1-ratio", "elastic-net mix: 0 is ridge, 1 is lasso", _model("l1Ratio")
    )
    solver: str = field_flag(
        "--solver", " | ".join(SOLVERS), TRAINING_JOB.at("spec.model.solver"), metavar="NAME", parse=_word
    )
    standardize: bool = switch(
        "--standardize", "fit on standardised features (coefficients stay in original units)"
    )
    no_intercept: bool = switch("--no-intercept", "fit without an intercept", aliases=("--no-fit-intercept",))
    max_iter: int | None = integer_flag(
        "--max-iter",
        "iteration limit of the iterative solvers (default: the solver's)",
        None,
        contract=TRAINING_JOB.at("spec.model.maxIter"),
    )
    tol: float | None = number_flag(
        "--tol",
        "convergence tolerance of the iterative solvers (default: the solver's)",
        None,
        contract=TRAINING_JOB.at("spec.model.tol"),
    )
    learning_rate: float | None = number_flag(
        "--learning-rate", "step size of the gradient-descent solver (default: the solver's)", None
    )
    search_alpha: tuple[float, ...] = numbers_flag(
        "--search-alpha", "alphas to cross-validate, e.g. 0.01,0.1,1", _search("alphas")
    )
    search_l1_ratio: tuple[float, ...] = numbers_flag(
        "--search-l1-ratio", "l1 ratios to cross-validate (elasticnet only)", _search("l1Ratios")
    )
    folds: int | None = integer_flag(
        "--cv",
        f"cross-validation folds (default: {FOLDS.default} when searching)",
        None,
        "K",
        contract=FOLDS,
    )
    seed: int = integer_flag("--seed", "seed of the cross-validation folds", 42, contract=Integer(bound=SEED))
    phase: str = phase_flag(TRAIN_PHASES, "everything in this pod, one shard's statistics, or the reduce")
    shards: int = shards_flag("pods sharing the statistics pass (an Indexed Job)")
    shard_index: int | None = shard_index_flag()
    partials: str | None = partials_flag("partial statistics")
    progress: str | None = progress_flag()
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        self.check_flags()
        problem = l1_solver_problem(self.penalty, self.solver)
        if problem:
            raise SpecError(f"--solver: {problem}")
        self._check_search()
        check_sharding(self.phase, TRAIN_PHASES, self.shards, self.shard_index, self.partials)

    def _check_search(self) -> None:
        if self.search_alpha and self.penalty not in SEARCH_PENALTIES:
            raise SpecError(
                f"--search-alpha needs --penalty {either(SEARCH_PENALTIES)} (penalty {self.penalty!r} "
                "has no alpha)"
            )
        if self.search_l1_ratio and self.penalty not in L1_RATIO_PENALTIES:
            raise SpecError(f"--search-l1-ratio needs --penalty elasticnet, got {self.penalty!r}")

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
        }
        if self.tol is not None:
            parameters["tol"] = self.tol
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
    outputs: tuple[str, ...] = names_flag(
        "--outputs",
        f"comma-separated, any of {','.join(ANSWER_OUTPUTS)}",
        BATCH_PREDICTION.at("spec.outputs"),
        tuple(BATCH_PREDICTION.default("spec.outputs")),
    )
    level: float = number_field_flag("--level", "the level of the lower and upper bounds", LEVEL)
    passthrough: tuple[str, ...] = names_flag(
        "--passthrough", "comma-separated source columns copied beside the answers (an id, the target)"
    )
    phase: str = phase_flag(
        PREDICT_PHASES, "everything in this pod, one shard's parts, or the manifest of the shards' parts"
    )
    shards: int = shards_flag("pods sharing the scoring (an Indexed Job)")
    shard_index: int | None = shard_index_flag()
    progress: str | None = progress_flag()
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        self.check_flags()
        if not self.outputs:
            raise SpecError(f"--outputs: name at least one of {', '.join(ANSWER_OUTPUTS)}")
        repeated = sorted({name for name in self.outputs if self.outputs.count(name) > 1})
        if repeated:
            raise SpecError(f"--outputs: {', '.join(repeated)} named more than once")
        clashing = [name for name in self.passthrough if name in self.columns_written]
        if clashing or len(set(self.passthrough)) != len(self.passthrough):
            raise SpecError(f"--passthrough: {', '.join(clashing) or 'a column'} would be written twice")
        check_choice("--phase", self.phase, PREDICT_PHASES)
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
    rows: int = integer_flag(
        "--rows", "rows of --data to explain, from its first", 10, contract=Integer(bound=Bound(1, 10_000))
    )
    level: float = number_field_flag("--level", "the level of the intervals", LEVEL)
    result_file: str | None = result_file_flag()

    def __post_init__(self) -> None:
        if (self.row is None) == (self.data is None):
            raise SpecError("give the rows to explain either with --row JSON or with --data SOURCE")
        self.check_flags()
