"""Dataset, TrainingJob and ModelDeployment: every field of their spec and status, written once.

Each field says its type, default, range, enum, pattern and description here and nowhere else: the CRDs
are generated from these (`make crds`), so is docs/reference.md, and the controller's spec parsers, the
commands' flags and the solver's parameter checks read their defaults and ranges from them.

A default here is one the API server writes into the object. Changing one changes what stored objects
read as, and so what they train or serve: treat it as an API change.
"""

from __future__ import annotations

from marina.contract.bounds import Bound, either
from marina.contract.schema import (
    Array,
    Boolean,
    Column,
    Field,
    Integer,
    IntOrString,
    Kind,
    Number,
    Object,
    Rule,
    Scale,
    String,
)

GROUP = "marina.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# The annotation a user (or a retraining ModelDeployment) changes to make a Dataset read its source again.
REFRESH_ANNOTATION = f"{GROUP}/refresh"

# --- enumerations --------------------------------------------------------------------------------------

PENALTIES = ("none", "l2", "l1", "elasticnet")
L1_PENALTIES = ("l1", "elasticnet")  # penalties with an l1 term: only L1_SOLVERS minimise them
SOLVERS = ("auto", "normal", "qr", "cd", "gd")
L1_SOLVERS = ("auto", "cd", "gd")
SEARCH_PENALTIES = ("l2", "l1", "elasticnet")  # a search varies alpha, which `none` does not have
L1_RATIO_PENALTIES = ("elasticnet",)  # the only penalty that reads l1_ratio
MISSING_POLICIES = ("drop", "mean", "median", "fail")
BUILTIN_DATASETS = ("diabetes",)
SOURCE_KINDS = ("builtin", "csv", "inline", "parquet", "synthetic")
#: The Dataset source of a ModelDeployment's served rows: alone, or beside one of SOURCE_KINDS (their union).
SERVED_LOGS = "servedLogs"
DRIFT_ACTIONS = ("Alert", "Retrain")
PROMOTION_POLICIES = ("Always", "IfBetter")
PROMOTION_METRICS = ("rmse", "mae", "r2")  # lower is better, but r2 higher
ROLLOUT_STRATEGIES = ("RollingUpdate", "Canary")
CONDITION_STATUSES = ("True", "False", "Unknown")
ROLLOUT_PHASES = ("Shadowing", "Progressing", "Promoting", "Promoted", "RolledBack")
SHADOW_VERDICTS = ("Waiting", "Agreed", "Disagreed")
DRIFT_LEVELS = ("Stable", "Moderate", "Drifted", "InsufficientData", "Unavailable")
RETRAIN_TRIGGERS = ("Drift", "Schedule", "Degraded")
RETRAIN_HOLDS = ("Cooldown", "DailyLimit", "NoDataset")
PROMOTION_VERDICTS = ("Promoted", "Rejected")
# What a served or batch-scored row can carry beside its prediction (the Open Inference v2 output names).
ANSWER_OUTPUTS = ("predict", "contribution", "lower", "upper", "extrapolation")
EXTRAPOLATION_POLICIES = ("Allow", "Reject")
SCORED_SPLITS = ("test", "train")  # a prepared dataset's splits a BatchPrediction may score
JOB_PHASES = ("Pending", "Running", "Succeeded", "Failed")


def l1_solver_problem(penalty: str, solver: str) -> str | None:
    """Why this solver cannot minimise this penalty (coordinate or gradient descent is needed for l1)."""
    if penalty in L1_PENALTIES and solver not in L1_SOLVERS:
        return f"{penalty} needs one of {', '.join(L1_SOLVERS)}, got {solver!r}"
    return None


S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"
DATASET_VERSION_LENGTH = 16  # hex digits of the prepared data's sha256: fits a label value and a folder name
DATASET_VERSION_PATTERN = rf"^[0-9a-f]{{{DATASET_VERSION_LENGTH}}}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
#: Hex digits of a model artifact's sha256 that name its version (status, pod labels, served metadata).
MODEL_VERSION_LENGTH = 12
#: The canary's steps when spec.rollout.steps is not given: (weight percent, pause seconds).
DEFAULT_CANARY_STEPS = ((20, 60), (50, 60))

# --- pieces every kind uses ----------------------------------------------------------------------------


def _name_rule(what: str) -> Rule:
    return Rule(
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 45",
        f"metadata.name must be a DNS-1035 label of at most 45 characters ({what})",
    )


READY_STATUS = '.status.conditions[?(@.type=="Ready")].status'
READY_REASON = '.status.conditions[?(@.type=="Ready")].reason'
AGE = Column("Age", "date", ".metadata.creationTimestamp")
TIME = String(format="date-time")
TEXT = String()
WHOLE = Integer()
REAL = Number()
OBSERVED_GENERATION = Integer(description="The metadata.generation this status describes.", format="int64")
STATUS_DESCRIPTION = "What Marina observed; written only by the operator."
PROGRESS = Object(
    description=(
        "While a Job runs, what its pod last reported (every 5 s): rows processed, the total when known, "
        "percent and an ETA, rows per second and when it was written. Gone when the Job ends."
    ),
    open=True,
)
S3_AREAS = (
    "in this namespace's storage area (`s3://<bucket>/raw/<namespace>/` for uploads, "
    "`s3://<bucket>/datasets/<namespace>/`) or under a prefix the cluster admin shares "
    "(MARINA_SHARED_PREFIXES), written plainly (no `..`, `//` or %-escapes)."
)
#: Where a ModelDeployment's payload logs and feedback live (the namespace's `logs` area).
LOGS_LAYOUT = "s3://<bucket>/logs/<namespace>/<name>/"
#: Where a team uploads the truth for a ModelDeployment's served rows (the namespace's `raw` area).
FEEDBACK_UPLOADS_LAYOUT = "s3://<bucket>/raw/<namespace>/feedback/<name>/"
UPLOADED_TRUTH = (
    f"files under {FEEDBACK_UPLOADS_LAYOUT} (CSV, optionally gzip-compressed, or Parquet, with "
    "columns id and target and optionally row; received when last written)"
)


def _labelled_window(when: str, skipped_in: str, max_rows: int) -> dict[str, Field]:
    """Which served rows with their truth count, for live accuracy and a Dataset's servedLogs source alike
    (both read them through marina.data.served)."""
    return {
        "windowHours": Integer(
            description=(
                f"Which labelled rows count: feedback received this many hours before {when}, or since."
            ),
            default=24,
            bound=Bound(1, 24 * 90),
        ),
        "labelDelayHours": Integer(
            description=(
                "How long before the window's start a prediction may have been made and still be joined with "
                "feedback in the window (older predictions are not read; their feedback counts as unmatched)."
            ),
            default=24,
            bound=Bound(0, 24 * 90),
        ),
        "maxRows": Integer(
            description=(
                f"Rows read per {when.removeprefix('the ')} (predictions and feedback), newest parts first; "
                f"the parts beyond are skipped and counted in {skipped_in}."
            ),
            default=max_rows,
            bound=Bound(1000, 50_000_000),
        ),
    }


JOB_RESOURCES = (
    "they replace the default (requests cpu 100m and memory 256Mi, limit memory 512Mi, whatever the data "
    "size) as a whole. A pod killed at its memory limit ends in reason OutOfMemory naming that limit: raise "
    "limits.memory."
)


def _resources(description: str) -> Object:
    quantities = Object(values=IntOrString())
    return Object(description=description, properties={"requests": quantities, "limits": quantities})


def _retention(stored: str, examples: str) -> Object:
    """spec.retention: how many stored versions to keep."""
    return Object(
        description=(
            f"How many {stored} to keep in object storage. After a new one is Ready, Marina deletes this "
            f"{examples}'s older {stored} beyond the newest keepLast, except any that a status or spec in "
            f"the "
            "namespace still references (a TrainingJob's dataset version, a ModelDeployment's model). "
            "Absent: "
            "keep everything."
        ),
        required=("keepLast",),
        properties={
            "keepLast": Integer(
                description=f"The number of newest {stored} to keep (the current one always counts).",
                bound=Bound(1),
            )
        },
    )


def _retention_status(what: str) -> Object:
    return Object(
        description="The last retention run (only with spec.retention).",
        properties={
            "keepLast": Integer(description="The spec.retention.keepLast the run applied."),
            "kept": Array(description=f"The {what} kept, the current one first.", items=TEXT),
            "deleted": Array(description=f"The {what} the run deleted.", items=TEXT),
            "lastRun": TIME,
        },
    )


def _conditions(description: str) -> Array:
    return Array(
        description=description,
        items=Object(
            required=("type", "status"),
            properties={
                "type": TEXT,
                "status": String(enum=CONDITION_STATUSES),
                "reason": TEXT,
                "message": TEXT,
                "lastTransitionTime": TIME,
                "observedGeneration": Integer(format="int64"),
            },
        ),
        list_type="map",
        map_keys=("type",),
    )


CONDITIONS = "Ready, Reconciling and Stalled, the way kubectl wait and GitOps tools read them."


def _model(description: str = "", **extra: Field) -> Object:
    """A model artifact by address: uri, sha256 and version (its first MODEL_VERSION_LENGTH hex digits)."""
    return Object(description=description, properties={"uri": TEXT, "sha256": TEXT, "version": TEXT, **extra})


METRICS_BY_NAME = Object(values=REAL)

# --- Dataset -------------------------------------------------------------------------------------------

SEED = Bound(0)
_SOURCES = " + ".join(f"(has(self.{kind}) ? 1 : 0)" for kind in SOURCE_KINDS)
SERVED_LOGS_SOURCE = Object(
    description=(
        "The rows a ModelDeployment served, with their truth: its payload log "
        f"({LOGS_LAYOUT}predictions/, spec.logging) joined on (id, row) with the feedback its endpoint took "
        f"({LOGS_LAYOUT}feedback/) and the truth in {UPLOADED_TRUTH}, as its live accuracy joins them (a key "
        "reported twice counts once, with its latest truth). Columns: the model's raw inputs, and the truth "
        "named "
        "spec.target. Alone, the Dataset holds only those rows (none yet fails the preparation, saying so); "
        "beside another source, that source's rows and then these, with the same columns. Read with the "
        "namespace's own storage identity when the Dataset prepares (on creation, a spec change, or a "
        f"refresh: the {REFRESH_ANNOTATION} annotation that onDrift and onDegraded Retrain set); the "
        "version is the rows' content, so the same logs and feedback give the same version and more "
        "feedback a new one. "
        "dataset.json's source lists every part read with its sha256, and a model trained on it names the "
        "logs (its artifact's dataset.logs)."
    ),
    required=("modelDeployment",),
    properties={
        "modelDeployment": String(
            description="The ModelDeployment (same namespace) whose served rows to read.", length=Bound(1)
        ),
        # 500,000 rows of 10 inputs take a prepare Job's default memory limit (512Mi) to about 400 MiB.
        **_labelled_window("the preparation", "dataset.json's source (skippedParts)", 500_000),
    },
)

SHARDS = Bound(1, 64)  # pods one preparation, training or scoring run may share

DATASET = Kind(
    kind="Dataset",
    plural="datasets",
    short_names=("mdata", "dset"),
    description=(
        "A Dataset is prepared, validated, cleaned, split and versioned data for training regression models. "
        "Marina runs a Job that reads the source, checks its schema, splits it into train and test sets with "
        "a fixed seed and stores the result in object storage under a content version (the sha256 of the "
        "prepared data). Prepared data is never deleted with the resource."
    ),
    rules=(_name_rule("it names Jobs and objects"),),
    columns=(
        Column("Ready", "string", READY_STATUS),
        Column("Version", "string", ".status.version"),
        Column("Rows", "integer", ".status.rows"),
        Column("Reason", "string", READY_REASON, priority=1),
        Column("URI", "string", ".status.uri", priority=1),
        AGE,
    ),
    spec=Object(
        description="What data to prepare and how.",
        required=("source",),
        properties={
            "source": Object(
                description=(
                    f"Where the raw data comes from. Exactly one of {either(SOURCE_KINDS)}; or "
                    f"{SERVED_LOGS}, alone or beside one of them (their union)."
                ),
                rules=(
                    Rule(
                        f"{_SOURCES} == 1 || ({_SOURCES} == 0 && has(self.{SERVED_LOGS}))",
                        "exactly one of "
                        + ", ".join(f"source.{kind}" for kind in SOURCE_KINDS)
                        + f" must be set (source.{SERVED_LOGS} may be set beside it, or alone)",
                    ),
                ),
                properties={
                    "builtin": String(
                        description=(
                            "A data set shipped with Marina. `diabetes` is scikit-learn's diabetes data "
                            "(target column `target`)."
                        ),
                        enum=BUILTIN_DATASETS,
                    ),
                    "csv": Object(
                        description=(
                            "A CSV object (optionally gzip-compressed), or a prefix ending in `/` of many "
                            "CSV "
                            "or Parquet parts, in S3-compatible object storage. Read as a stream; only the "
                            "selected columns are parsed."
                        ),
                        required=("uri",),
                        properties={
                            "uri": String(
                                description=(
                                    "The object's URI, `s3://bucket/key.csv`, `s3://bucket/key.csv.gz` or "
                                    f"`s3://bucket/prefix/`, {S3_AREAS}"
                                ),
                                pattern=S3_URI_PATTERN,
                            )
                        },
                    ),
                    "parquet": Object(
                        description=(
                            "A Parquet object, or a prefix ending in `/` of many Parquet parts, in "
                            "S3-compatible object storage. Read by row group with ranged GETs; only the "
                            "selected columns are read; string columns are categories."
                        ),
                        required=("uri",),
                        properties={
                            "uri": String(
                                description=(
                                    "The object's URI, `s3://bucket/key.parquet` or `s3://bucket/prefix/`, "
                                    f"{S3_AREAS}"
                                ),
                                pattern=S3_URI_PATTERN,
                            )
                        },
                    ),
                    "inline": Object(
                        description="Small data written in the resource itself (header plus numeric rows).",
                        rules=(
                            Rule(
                                "self.rows.all(r, size(r) == size(self.columns))",
                                "every inline row must have one value per column",
                            ),
                        ),
                        required=("columns", "rows"),
                        properties={
                            "columns": Array(
                                description="Column names, in order; must include the target.",
                                items=String(length=Bound(1)),
                                size=Bound(2, 200),
                            ),
                            "rows": Array(
                                description="Rows of numbers, one value per column.",
                                items=Array(items=REAL, size=Bound(None, 200)),
                                size=Bound(2, 5000),
                            ),
                        },
                    ),
                    "synthetic": Object(
                        description=(
                            "A seeded synthetic linear problem y = X·w + b + noise, for tests and demos."
                        ),
                        properties={
                            "rows": Integer(
                                description="Number of rows to generate.",
                                default=1000,
                                bound=Bound(2, 10_000_000),
                            ),
                            "features": Integer(
                                description="Number of features.", default=5, bound=Bound(1, 1000)
                            ),
                            "noise": Number(
                                description="Standard deviation of the Gaussian noise added to the target.",
                                default=0.1,
                                bound=Bound(0),
                            ),
                            "seed": Integer(
                                description="Random seed; the same seed gives the same data.",
                                default=7,
                                bound=SEED,
                            ),
                            "missing": Number(
                                description="Fraction of feature cells blanked out, to exercise cleaning.",
                                default=0.0,
                                bound=Bound(0, 1, exclusive_maximum=True),
                            ),
                        },
                    ),
                    SERVED_LOGS: SERVED_LOGS_SOURCE,
                },
            ),
            "target": String(description="Name of the column to predict.", default="target", length=Bound(1)),
            "features": Array(
                description="Feature columns to keep (default all columns except the target).",
                items=String(length=Bound(1)),
                list_type="set",
            ),
            "cleaning": Object(
                description="How to clean the data.",
                properties={
                    "missing": String(
                        description=(
                            "What to do with missing values — drop the row, fill with the column's mean or "
                            "median, or fail."
                        ),
                        default="drop",
                        enum=MISSING_POLICIES,
                    ),
                    "maxCategories": Integer(
                        description=(
                            "Most distinct values a text column may hold; text columns are one-hot encoded "
                            "(categories from the train split), and one with more values (an identifier) is "
                            "refused, naming it."
                        ),
                        default=100,
                        bound=Bound(1, 10_000),
                    ),
                },
            ),
            "split": Object(
                description="The deterministic train/test split.",
                properties={
                    "testFraction": Number(
                        description="Fraction of rows held out for testing, strictly between 0 and 1.",
                        default=0.2,
                        bound=Bound(0, 1, exclusive_minimum=True, exclusive_maximum=True),
                    ),
                    "seed": Integer(
                        description="Seed of the shuffle; the same seed and data give the same split.",
                        default=42,
                        bound=SEED,
                    ),
                },
            ),
            "parallelism": Integer(
                description=(
                    "Pods sharing the preparation: N > 1 runs an Indexed Job whose pod i reads its share of "
                    "the source (its parts of a prefix, or a byte range of one large CSV cut at record "
                    "boundaries; a gzip file is never cut) and writes its parts, then a reduce Job merges "
                    "the shares, computes exact median fills and writes the dataset. The version, "
                    "statistics, split and categories are the same whatever N, so changing it does not "
                    "prepare again."
                ),
                default=1,
                bound=SHARDS,
            ),
            "resources": _resources(
                f"Compute resources of the preparation Jobs' containers (each shard's and the reduce's); "
                f"{JOB_RESOURCES}"
            ),
            "retention": _retention("prepared versions", "Dataset"),
        },
    ),
    status=Object(
        description=STATUS_DESCRIPTION,
        properties={
            "observedGeneration": OBSERVED_GENERATION,
            "inputsHash": String(
                description="Short hash of the inputs the current version was prepared from."
            ),
            "jobName": String(description="The preparation Job for the current inputs."),
            "version": String(
                description=(
                    f"Content version — the first {DATASET_VERSION_LENGTH} hex digits of the sha256 of the "
                    "prepared data."
                )
            ),
            "sha256": String(description="The full sha256 of the prepared data."),
            "uri": String(description="Where the prepared data of this version is stored."),
            "rows": Integer(description="Number of rows after cleaning."),
            "trainRows": Integer(description="Rows in the training split."),
            "testRows": Integer(description="Rows in the test split."),
            "columns": Array(description="Feature columns, in order.", items=TEXT),
            "target": String(description="The target column."),
            "shards": Integer(description="Pods the current version was prepared by (spec.parallelism)."),
            "statistics": Object(
                description=(
                    "Per-feature statistics of the training split (count, mean, std, min, max, missing)."
                ),
                open=True,
            ),
            "progress": PROGRESS,
            "retention": _retention_status("versions"),
            "conditions": _conditions(CONDITIONS),
        },
    ),
)

# --- TrainingJob ---------------------------------------------------------------------------------------

ALPHA = Bound(0)
L1_RATIO = Bound(0, 1)

TRAINING_JOB = Kind(
    kind="TrainingJob",
    plural="trainingjobs",
    short_names=("tj",),
    description=(
        "A TrainingJob fits a linear regression model on a Dataset in a Kubernetes Job, evaluates it on the "
        "Dataset's test split and stores the model artifact (versioned JSON addressed by its sha256) in "
        "object "
        "storage. When the Dataset gets a new version, or the spec changes, it trains again; "
        "ModelDeployments "
        "that follow it roll the new model out."
    ),
    rules=(_name_rule("it names Jobs and objects"),),
    columns=(
        Column("Phase", "string", ".status.phase"),
        Column("Ready", "string", READY_STATUS),
        Column("R2", "number", ".status.metrics.r2"),
        Column("RMSE", "number", ".status.metrics.rmse"),
        Column("Model", "string", ".status.model.sha256", priority=1),
        Column("Dataset-Version", "string", ".status.datasetVersion", priority=1),
        Column("Reason", "string", READY_REASON, priority=1),
        AGE,
    ),
    spec=Object(
        description="What to train on and how.",
        rules=(
            Rule(
                "!has(self.search) || self.model.penalty != 'none'",
                "search needs a penalty (l2, l1 or elasticnet): alpha has no effect without one",
            ),
            Rule(
                "!has(self.search) || !has(self.search.l1Ratios) || self.model.penalty == 'elasticnet'",
                "search.l1Ratios is only meaningful with model.penalty elasticnet",
            ),
        ),
        required=("dataset",),
        properties={
            "dataset": Object(
                description="The Dataset (same namespace) to train on.",
                required=("name",),
                properties={
                    "name": String(description="Name of the Dataset.", length=Bound(1)),
                    "version": String(
                        description=(
                            f"Pin a Dataset version (status.version of the Dataset, {DATASET_VERSION_LENGTH} "
                            "hex digits). Empty means follow the latest version: a new version triggers a "
                            "new "
                            "training run."
                        ),
                        pattern=DATASET_VERSION_PATTERN,
                    ),
                },
            ),
            "model": Object(
                description="The linear model and its solver.",
                default={},
                rules=(
                    Rule(
                        "!(self.penalty in ['l1', 'elasticnet']) || !has(self.solver) || "
                        "self.solver in ['auto', 'cd', 'gd']",
                        "l1 and elasticnet penalties need solver auto, cd or gd",
                    ),
                ),
                properties={
                    "penalty": String(
                        description=(
                            "Regularisation — none (ordinary least squares), l2 (ridge), l1 (lasso) or "
                            "elasticnet."
                        ),
                        default="none",
                        enum=PENALTIES,
                    ),
                    "alpha": Number(
                        description="Strength of the penalty (scikit-learn's meaning of alpha).",
                        default=1.0,
                        bound=ALPHA,
                    ),
                    "l1Ratio": Number(
                        description="Elastic-net mixing, 0 is pure l2 and 1 is pure l1.",
                        default=0.5,
                        bound=L1_RATIO,
                    ),
                    "solver": String(
                        description=(
                            "auto picks the best; normal (normal equations), qr, cd (coordinate descent), gd "
                            "(gradient descent)."
                        ),
                        default="auto",
                        enum=SOLVERS,
                    ),
                    "standardize": Boolean(
                        description=(
                            "Standardise features before fitting (coefficients are reported in original "
                            "units)."
                        ),
                        default=False,
                    ),
                    "fitIntercept": Boolean(description="Fit an intercept term.", default=True),
                    "maxIter": Integer(
                        description="Iteration cap of the iterative solvers (cd, gd).", bound=Bound(1)
                    ),
                    "tol": Number(
                        description="Stopping tolerance of the iterative solvers.",
                        bound=Bound(0, exclusive_minimum=True),
                    ),
                },
            ),
            "search": Object(
                description=(
                    "Grid search over alpha (and l1Ratio) with k-fold cross-validation on the training split."
                ),
                required=("alphas",),
                properties={
                    "alphas": Array(
                        description="Candidate alphas.", items=Number(bound=ALPHA), size=Bound(1, 100)
                    ),
                    "l1Ratios": Array(
                        description="Candidate l1 ratios (elasticnet only).",
                        items=Number(bound=L1_RATIO),
                        size=Bound(1, 20),
                    ),
                    "folds": Integer(
                        description="Number of cross-validation folds.", default=5, bound=Bound(2, 20)
                    ),
                },
            ),
            "resources": _resources(f"Compute resources of the training Job's container; {JOB_RESOURCES}"),
            "backoffLimit": Integer(
                description=(
                    "Retries of the training pod (of each shard's pod with parallelism) before the run "
                    "counts "
                    "as failed."
                ),
                default=1,
                bound=Bound(0, 10),
            ),
            "parallelism": Integer(
                description=(
                    "Pods sharing the pass over the training data: N > 1 runs an Indexed Job whose pod i "
                    "reads "
                    "every N-th Parquet part into partial statistics (a failed index retries alone), then a "
                    "reduce Job merges them, fits and evaluates. The model equals the one-pod fit to "
                    "rounding "
                    "(1e-10), so changing it does not retrain. With solver qr the reduce reads the train "
                    "rows "
                    "again for its R factor."
                ),
                default=1,
                bound=SHARDS,
            ),
            "activeDeadlineSeconds": Integer(
                description="Deadline of one training run, in seconds.", default=3600, bound=Bound(10)
            ),
            "retention": _retention("models", "TrainingJob"),
        },
    ),
    status=Object(
        description=STATUS_DESCRIPTION,
        properties={
            "observedGeneration": OBSERVED_GENERATION,
            "phase": String(description="Pending, Running, Succeeded or Failed (of the current run)."),
            "inputsHash": String(
                description="Short hash of the spec and dataset version the current run uses."
            ),
            "jobName": String(description="The Kubernetes Job of the current run."),
            "datasetVersion": String(description="The Dataset version the current run trains on."),
            "shards": Integer(description="Pods the current run gathers its statistics in (parallelism)."),
            "metrics": Object(
                description="Metrics of the model on the Dataset's test split.",
                properties={"mse": REAL, "rmse": REAL, "mae": REAL, "r2": REAL},
            ),
            "bestParameters": Object(
                description="The hyper-parameters chosen (by the search, or as given).", open=True
            ),
            "progress": PROGRESS,
            "model": Object(
                description="The latest successfully trained model.", properties={"uri": TEXT, "sha256": TEXT}
            ),
            "startTime": TIME,
            "completionTime": TIME,
            "retention": _retention_status("models' sha256"),
            "conditions": _conditions(CONDITIONS),
        },
    ),
)

# --- ModelDeployment -----------------------------------------------------------------------------------

MODEL_DEPLOYMENT = Kind(
    kind="ModelDeployment",
    plural="modeldeployments",
    short_names=("mdep",),
    description=(
        "A ModelDeployment serves a model artifact behind a Service, speaking KServe's v1 protocol and the "
        "Open Inference Protocol v2 under the resource's name (/v2/models/<name>/infer). It follows a "
        "TrainingJob (rolling out each new model with zero downtime, and rolling back when the new pods "
        "never "
        "become ready) or serves a fixed URI and sha256."
    ),
    rules=(_name_rule("it names the Service"),),
    scale=Scale(".spec.replicas", ".status.replicas", ".status.selector"),
    columns=(
        Column("Ready", "string", READY_STATUS),
        Column("Replicas", "integer", ".status.replicas"),
        Column("Available", "integer", ".status.readyReplicas"),
        Column("Model", "string", ".status.model.version"),
        Column("URL", "string", ".status.url"),
        Column(
            "Step",
            "integer",
            ".status.rollout.step",
            description="The canary's current step (status.rollout).",
        ),
        Column(
            "Weights",
            "string",
            ".status.rollout.weights",
            description="Stable/canary shares of the serving pods, percent.",
        ),
        Column("Rollout", "string", ".status.rollout.phase", priority=1),
        Column("Reason", "string", READY_REASON, priority=1),
        Column("Drifted", "string", '.status.conditions[?(@.type=="Drifted")].status', priority=1),
        Column("Drift", "string", ".status.monitoring.level", priority=1),
        Column("Degraded", "string", '.status.conditions[?(@.type=="Degraded")].status', priority=1),
        Column("LiveRMSE", "number", ".status.monitoring.performance.rmse", priority=1),
        Column("Retrains", "integer", ".status.retraining.total", priority=1),
        Column("Rejected", "string", ".status.rejectedModel.version", priority=1),
        AGE,
    ),
    spec=Object(
        description="Which model to serve and how.",
        rules=(
            Rule(
                "!has(self.autoscaling) || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
            ),
        ),
        required=("model",),
        properties={
            "model": Object(
                description="The model to serve — either trainingJob, or uri together with sha256.",
                rules=(
                    Rule(
                        "has(self.trainingJob) != has(self.uri)",
                        "set exactly one of model.trainingJob or model.uri",
                    ),
                    Rule("has(self.uri) == has(self.sha256)", "model.uri and model.sha256 go together"),
                ),
                properties={
                    "trainingJob": String(
                        description="Follow this TrainingJob (same namespace) and serve its latest model.",
                        length=Bound(1),
                    ),
                    "uri": String(
                        description=(
                            "A model artifact in object storage, s3://bucket/key.json, in this namespace's "
                            "storage area `s3://<bucket>/models/<namespace>/` or under a prefix the cluster "
                            "admin shares (MARINA_SHARED_PREFIXES), written plainly (no `..`, `//` or "
                            "%-escapes)."
                        ),
                        pattern=S3_URI_PATTERN,
                    ),
                    "sha256": String(
                        description="The artifact's sha256; the server refuses to start on a mismatch.",
                        pattern=SHA256_PATTERN,
                    ),
                },
            ),
            "replicas": Integer(
                description="Number of serving pods (ignored while autoscaling is set).",
                default=1,
                bound=Bound(0, 100),
            ),
            "resources": _resources("Compute resources of each serving container."),
            "autoscaling": Object(
                description="Scale on CPU with a HorizontalPodAutoscaler.",
                required=("maxReplicas",),
                properties={
                    "minReplicas": Integer(default=1, bound=Bound(1)),
                    "maxReplicas": Integer(bound=Bound(1, 100)),
                    "targetCPUUtilizationPercentage": Integer(default=80, bound=Bound(1, 100)),
                    "scaleDownStabilizationSeconds": Integer(
                        description=(
                            "How long the HPA waits, keeping the highest replica count it computed in that "
                            "time, before it scales down (Kubernetes' behavior.scaleDown "
                            "stabilizationWindowSeconds). 0 scales down as soon as the load drops."
                        ),
                        default=300,
                        bound=Bound(0, 3600),  # the HPA API's own limit
                    ),
                },
            ),
            "rollout": Object(
                description=(
                    "How a new model replaces the serving one. RollingUpdate: new pods come up one at a time "
                    "beside the old ones (maxSurge 1, maxUnavailable 0); if they are not ready within "
                    "progressDeadlineSeconds the previous model is restored. Canary: a second Deployment "
                    "(<name>-canary) runs the new model beside the stable one behind the same Service, at "
                    "each "
                    "step's weight (a share of the replicas, at least one pod); after each step's pause the "
                    "canary's error rate, p99 latency and prediction shift against the stable are analysed. "
                    "A "
                    "failing step removes the canary and reports RolledBack with the measurement; passing "
                    "every step updates the stable Deployment to the new model and removes the canary."
                ),
                default={},
                properties={
                    "progressDeadlineSeconds": Integer(
                        description="Seconds a rollout may take to make progress before it is rolled back.",
                        default=120,
                        bound=Bound(10, 3600),
                    ),
                    "strategy": String(
                        description="RollingUpdate (replace the pods in place) or Canary (steps, analysed).",
                        default="RollingUpdate",
                        enum=ROLLOUT_STRATEGIES,
                    ),
                    "steps": Array(
                        description=(
                            "The canary's steps (Canary only; default "
                            + " then ".join(f"{weight}%" for weight, _ in DEFAULT_CANARY_STEPS)
                            + f", {DEFAULT_CANARY_STEPS[0][1]} s each). The first model a ModelDeployment "
                            "serves has nothing to compare with and rolls out directly."
                        ),
                        items=Object(
                            required=("weight",),
                            properties={
                                "weight": Integer(
                                    description=(
                                        "Canary pods as a percentage of the stable's replicas (rounded, at "
                                        "least "
                                        "one); the stable keeps all its pods, so the canary's share of the "
                                        "traffic is canary / (stable + canary) pods."
                                    ),
                                    bound=Bound(1, 100),
                                ),
                                "pauseSeconds": Integer(
                                    description=(
                                        "Seconds from the step's canary pods being ready to its analysis."
                                    ),
                                    default=60,
                                    bound=Bound(0, 86400),
                                ),
                            },
                        ),
                        size=Bound(1, 20),
                    ),
                    "analysis": Object(
                        description=(
                            "What every step must show over its pause, from the pods' own counters (the "
                            "increase of each pod's counters during the step)."
                        ),
                        default={},
                        properties={
                            "maxErrorRate": Number(
                                description=(
                                    "Largest share of the canary's inference requests answered with a 5xx."
                                ),
                                default=0.01,
                                bound=Bound(0, 1),
                            ),
                            "maxP99LatencySeconds": Number(
                                description=(
                                    "Largest p99 latency of the canary's inference requests (the upper bound "
                                    "of the latency bucket holding the 99th percentile)."
                                ),
                                default=1.0,
                                # The servers' largest latency bucket.
                                bound=Bound(0, 10, exclusive_minimum=True),
                            ),
                            "maxPredictionShift": Number(
                                description=(
                                    "Largest |canary mean - stable mean| of the predictions answered during "
                                    "the step, in standard deviations of the stable's predictions."
                                ),
                                default=1.0,
                                bound=Bound(0, exclusive_minimum=True),
                            ),
                            "minRequests": Integer(
                                description=(
                                    "Inference requests the canary must answer before a step is judged (the "
                                    "step waits for them)."
                                ),
                                default=20,
                                bound=Bound(0, 1_000_000),
                            ),
                        },
                    ),
                    "shadow": Object(
                        description=(
                            "Shadow traffic before the canary (Canary only; absent: off). The new model "
                            "first runs as a challenger (<name>-shadow, a Deployment the Service does not "
                            "select, so no client ever gets its answers); the stable pods copy percent of "
                            "their answered requests to it after answering them and compare its predictions "
                            "with their own on the same rows. After durationSeconds, with at least "
                            "minRequests compared, the challenger is aborted (ShadowDisagreed) when its mean "
                            "|challenger - champion|, in standard deviations of the champion's predictions, "
                            "exceeds maxDifference by more than the one-sided z of alpha times its standard "
                            "error (or when more than analysis.maxErrorRate of the copies failed); else the "
                            "canary's steps begin."
                        ),
                        properties={
                            "percent": Integer(
                                description=(
                                    "Percentage of the stable's answered requests copied to the challenger."
                                ),
                                default=100,
                                bound=Bound(1, 100),
                            ),
                            "minRequests": Integer(
                                description=(
                                    "Copied requests the challenger must have answered before the shadow is "
                                    "judged (it waits for them)."
                                ),
                                default=500,
                                bound=Bound(10, 10_000_000),
                            ),
                            "durationSeconds": Integer(
                                description=(
                                    "Seconds from the challenger's and the mirroring stable pods' being "
                                    "ready to the judgement."
                                ),
                                default=300,
                                bound=Bound(0, 86400),
                            ),
                            "maxDifference": Number(
                                description=(
                                    "Largest mean |challenger - champion| prediction on the same rows, in "
                                    "standard deviations of the champion's predictions."
                                ),
                                default=0.1,
                                bound=Bound(0, 100, exclusive_minimum=True),
                            ),
                            "alpha": Number(
                                description=(
                                    "The one-sided test's false-abort rate for a challenger whose true mean "
                                    "difference is exactly maxDifference (lower for one that differs less; "
                                    "0 for one that answers the same)."
                                ),
                                default=0.01,
                                bound=Bound(0.0001, 0.5),
                            ),
                            "maxConcurrency": Integer(
                                description=(
                                    "Copied requests each stable pod has in flight to the challenger at "
                                    "once; more wait in a bounded queue, and beyond it are dropped (counted)."
                                ),
                                default=4,
                                bound=Bound(1, 64),
                            ),
                        },
                    ),
                },
            ),
            "monitoring": Object(
                description=(
                    "Drift monitoring (absent: off). Every intervalSeconds the operator reads how the ready "
                    "serving pods binned their recent inputs, takes the newest stretch of at least minRows "
                    "rows and compares each feature with the training split's quantile bins (PSI and its "
                    "p-value, Jensen-Shannon distance). A feature drifts when its PSI is at least "
                    "psiThreshold and its p-value below 0.001 divided by the number of features; the Drifted "
                    "condition names the drifting features."
                ),
                properties={
                    "intervalSeconds": Integer(
                        description="Seconds between two checks (checked on 5-second ticks).",
                        default=60,
                        bound=Bound(10, 86400),
                    ),
                    "minRows": Integer(
                        description=(
                            "Serving rows a check needs; fewer leave Drifted Unknown (InsufficientData)."
                        ),
                        default=1000,
                        # Fewer rows leave most of 10 bins nearly empty.
                        bound=Bound(100, 100_000_000),
                    ),
                    "psiThreshold": Number(
                        description="PSI from which a (significant) shift of a feature counts as drift.",
                        default=0.2,
                        bound=Bound(0, exclusive_minimum=True),
                    ),
                    "onDrift": String(
                        description=(
                            "What drift does: Alert reports it (condition, event, status); Retrain also "
                            f"refreshes the Dataset behind model.trainingJob (annotation "
                            f"{REFRESH_ANNOTATION}), "
                            "within the limits of spec.retraining, so a new dataset version retrains the "
                            "model. Retrain needs model.trainingJob."
                        ),
                        default="Alert",
                        enum=DRIFT_ACTIONS,
                    ),
                    "performance": Object(
                        description=(
                            "Live accuracy (absent: off; needs spec.logging with a sampleRate above 0). "
                            "Every intervalSeconds the operator joins the payload log's predictions with the "
                            "feedback received in the last windowHours (the endpoint's, and files uploaded "
                            f"under {FEEDBACK_UPLOADS_LAYOUT}) on (id, row), keeps the rows the "
                            "serving model answered, and compares their mean squared error with the model's "
                            "test rmse: Degraded is True when a one-sided z-test at level falseAlarmRate "
                            "says the live error exceeds (1 + margin) x the test rmse, Unknown with fewer "
                            "than minRows labelled rows."
                        ),
                        properties={
                            "intervalSeconds": Integer(
                                description="Seconds between two checks (checked on 5-second ticks).",
                                default=300,
                                bound=Bound(10, 86400),
                            ),
                            **_labelled_window("the check", "status", 2_000_000),
                            "minRows": Integer(
                                description=(
                                    "Labelled rows of the serving model a check needs; fewer leave Degraded "
                                    "Unknown (NotEnoughFeedback)."
                                ),
                                default=200,
                                # Below ~100 rows the mean of squared errors is too skewed for the z-test.
                                bound=Bound(100, 100_000_000),
                            ),
                            "margin": Number(
                                description=(
                                    "Relative increase of the rmse tolerated: Degraded when the live rmse "
                                    "exceeds (1 + margin) x the model's test rmse."
                                ),
                                default=0.1,
                                bound=Bound(0, 10),
                            ),
                            "falseAlarmRate": Number(
                                description=(
                                    "The test's level: the chance of a Degraded True when the live rmse is "
                                    "exactly (1 + margin) x the test rmse (less when it is lower)."
                                ),
                                default=0.01,
                                bound=Bound(1e-6, 0.5),
                            ),
                            "onDegraded": String(
                                description=(
                                    "What a Degraded True does: Alert reports it (condition, event, status); "
                                    "Retrain also refreshes the Dataset behind model.trainingJob, as "
                                    "onDrift Retrain does, within the limits of spec.retraining. Retrain "
                                    "needs model.trainingJob."
                                ),
                                default="Alert",
                                enum=DRIFT_ACTIONS,
                            ),
                        },
                    ),
                },
            ),
            "retraining": Object(
                description=(
                    "Limits on refreshing the Dataset behind model.trainingJob, whatever triggers it "
                    "(monitoring.onDrift Retrain, monitoring.performance.onDegraded Retrain, or the schedule "
                    "everySeconds): at most maxPerDay refreshes "
                    "per UTC day, at least cooldownSeconds apart. A trigger inside them is held "
                    "(status.retraining.held). Every refresh is recorded in status.retraining and as a "
                    "RetrainTriggered event."
                ),
                properties={
                    "cooldownSeconds": Integer(
                        description="Seconds after a refresh during which no other trigger refreshes.",
                        default=3600,
                        bound=Bound(0, 7 * 86400),
                    ),
                    "maxPerDay": Integer(
                        description="Refreshes allowed per UTC day.", default=4, bound=Bound(1, 1440)
                    ),
                    "everySeconds": Integer(
                        description=(
                            "A schedule (absent: none): refresh this long after the last refresh (or the "
                            "creation), drift or not. At least cooldownSeconds; needs model.trainingJob."
                        ),
                        bound=Bound(60, 366 * 86400),
                    ),
                },
            ),
            "disruption": Object(
                description=(
                    "The PodDisruptionBudget of the serving pods (stable and canary), so `kubectl drain` and "
                    "cluster upgrades evict them a few at a time instead of taking the model down. Absent: "
                    "maxUnavailable 1 while more than one replica serves (spec.replicas, or "
                    "autoscaling.minReplicas), and no budget for a single replica (it would block every "
                    "drain)."
                ),
                properties={
                    "maxUnavailable": IntOrString(
                        description=(
                            "Serving pods that may be down at once for an eviction: a number or a percentage."
                        )
                    )
                },
            ),
            "serving": Object(
                description="How the serving pods answer.",
                properties={
                    "extrapolation": String(
                        description=(
                            "What a row unlike the training data gets (leverage above the training maximum, "
                            "a feature beyond its training range, an unseen category): Allow answers it (the "
                            "verdict is in the extrapolation output and counted by reason); Reject answers "
                            "422 naming the row and the reason."
                        ),
                        default="Allow",
                        enum=EXTRAPOLATION_POLICIES,
                    )
                },
            ),
            "logging": Object(
                description=(
                    "Payload logs and ground truth (absent, or sampleRate 0: off). The serving pods record "
                    "a sampleRate share of the answered requests (chosen by request id, so a request's rows "
                    "are kept or left together) and write them, off the request's path, as Parquet parts "
                    f"under {LOGS_LAYOUT}predictions/date=YYYY-MM-DD/ with the namespace's own storage "
                    "identity; POST /v2/models/<name>/feedback takes the true targets by request id into "
                    f"feedback/date=YYYY-MM-DD/ beside them, and a team may upload them as {UPLOADED_TRUTH}. "
                    "Rows that find the pod's buffer full (storage "
                    "slow or down) are dropped and counted (marina_payload_rows_total); requests never wait "
                    "for storage."
                ),
                properties={
                    "sampleRate": Number(
                        description="Share of answered requests recorded: 0 records none, 1 every one.",
                        default=0,
                        bound=Bound(0, 1),
                    ),
                    "flushRows": Integer(
                        description=(
                            "Rows a pod buffers before it writes a part (its buffer holds at most twice as "
                            "many besides the part being written; more are dropped and counted)."
                        ),
                        default=10_000,
                        bound=Bound(100, 1_000_000),
                    ),
                    "flushSeconds": Integer(
                        description="Seconds after which buffered rows are written whatever their number.",
                        default=60,
                        bound=Bound(1, 3600),
                    ),
                    "keepDays": Integer(
                        description=(
                            "Days of logs and feedback to keep (absent: keep everything). The operator "
                            "deletes this ModelDeployment's date= folders older than that, and nothing else."
                        ),
                        bound=Bound(1, 3660),
                    ),
                },
            ),
            "promotion": Object(
                description=(
                    "The gate before a new model of model.trainingJob replaces the serving one. Always "
                    "promotes it. IfBetter first runs an evaluation Job that scores both models on the test "
                    "split of the new model's dataset version, and promotes the new one only if its metric "
                    "is "
                    "no worse than the serving model's within tolerance (relative for rmse and mae, absolute "
                    "for r2); a rejected model is recorded in status.rejectedModel and the serving model "
                    "stays. Each pair is decided once."
                ),
                properties={
                    "policy": String(default="Always", enum=PROMOTION_POLICIES),
                    "metric": String(
                        description="rmse or mae (lower is better) or r2 (higher is better).",
                        default="rmse",
                        enum=PROMOTION_METRICS,
                    ),
                    "tolerance": Number(
                        description=(
                            "How much worse the new model may be: a share of the serving model's rmse or mae "
                            "(0.01 is 1 %), or an absolute r2 difference."
                        ),
                        default=0,
                        bound=Bound(0, 1),
                    ),
                },
            ),
        },
    ),
    status=Object(
        description=STATUS_DESCRIPTION,
        properties={
            "observedGeneration": OBSERVED_GENERATION,
            "replicas": Integer(description="Serving pods that exist."),
            "readyReplicas": Integer(description="Serving pods that are ready."),
            "selector": String(description="Label selector of the serving pods (for the scale subresource)."),
            "url": String(description="In-cluster URL of the Service."),
            "model": _model("The model being served by every ready pod."),
            "previousModel": _model("The model served before the current one."),
            "failedModel": _model(
                "The last model whose rollout failed and was rolled back, and why.", reason=TEXT
            ),
            "rollout": Object(
                description=(
                    "The last canary rollout (spec.rollout.strategy Canary): its phase, step, weights, the "
                    "model it tried and the last step's analysis."
                ),
                properties={
                    "phase": String(enum=ROLLOUT_PHASES),
                    "canaryModel": _model(),
                    "step": Integer(description="The current step, from 1."),
                    "steps": WHOLE,
                    "weights": String(description="Stable/canary shares of the serving pods, percent."),
                    "startedAt": TIME,
                    "stepStartedAt": String(
                        description=(
                            "When the step's canary pods were all ready (its pause counts from then)."
                        ),
                        format="date-time",
                    ),
                    "baseline": Array(
                        description="Each serving pod's counters when the step started.",
                        items=Object(
                            properties={
                                "pod": TEXT,
                                "version": TEXT,
                                "requests": WHOLE,
                                "errors": WHOLE,
                                "latencyBounds": Array(items=REAL),
                                "latency": Array(items=WHOLE),
                                "predictions": Object(
                                    properties={
                                        "count": WHOLE,
                                        "origin": REAL,
                                        "sum": REAL,
                                        "sumSquares": REAL,
                                    }
                                ),
                            }
                        ),
                    ),
                    "analysis": Object(
                        description="The last step's measurements, and the one that failed.",
                        properties={
                            "step": WHOLE,
                            "canaryRequests": WHOLE,
                            "stableRequests": WHOLE,
                            "errorRate": REAL,
                            "p99LatencySeconds": REAL,
                            "predictionShift": REAL,
                            "message": TEXT,
                            "failed": Object(properties={"metric": TEXT, "value": REAL, "threshold": REAL}),
                        },
                    ),
                    "shadow": Object(
                        description=(
                            "The shadow phase's comparison (spec.rollout.shadow), merged over the stable "
                            "pods that mirror to this challenger."
                        ),
                        properties={
                            "verdict": String(enum=SHADOW_VERDICTS),
                            "startedAt": String(
                                description=(
                                    "When the challenger and the mirroring stable pods were all ready."
                                ),
                                format="date-time",
                            ),
                            "requests": Integer(
                                description="Copied requests the challenger answered, compared."
                            ),
                            "rows": Integer(description="Prediction rows compared."),
                            "mirrored": Integer(description="Copied requests sent to the challenger."),
                            "dropped": Integer(
                                description="Requests not copied: the stable pod's queue was full."
                            ),
                            "failed": Integer(
                                description=(
                                    "Copies with no usable answer: refused, timed out, or not predictions."
                                ),
                            ),
                            "meanDifference": Number(
                                description=(
                                    "Mean |challenger - champion| in the champion's standard deviations."
                                ),
                            ),
                            "standardError": Number(description="The standard error of meanDifference."),
                            "maxDifference": Number(
                                description=(
                                    "Largest |challenger - champion| in the champion's standard deviations."
                                ),
                            ),
                            "championStd": Number(
                                description="Standard deviation of the champion's predictions."
                            ),
                            "message": TEXT,
                        },
                    ),
                },
            ),
            "monitoring": Object(
                description="The last drift check (spec.monitoring).",
                properties={
                    "level": String(
                        description=(
                            "Stable (no feature near the threshold), Moderate (a significant shift of at "
                            "least "
                            "half the threshold), Drifted (a feature drifts), InsufficientData (fewer than "
                            "minRows rows) or Unavailable (no ready pod answered, or the model has no "
                            "reference "
                            "distribution)."
                        ),
                        enum=DRIFT_LEVELS,
                    ),
                    "message": TEXT,
                    "modelVersion": String(
                        description="The model whose reference the serving rows were compared with."
                    ),
                    "pods": Integer(description="Ready serving pods whose counts this check read."),
                    "rows": Integer(description="Serving rows in the window."),
                    "windowStart": TIME,
                    "windowEnd": TIME,
                    "score": Number(description="The largest PSI of any feature in the window."),
                    "topFeatures": Array(
                        description="The features with the largest PSI, largest first.",
                        items=Object(
                            properties={
                                "name": TEXT,
                                "psi": REAL,
                                "pValue": REAL,
                                "jsDistance": REAL,
                                "drifted": Boolean(),
                            }
                        ),
                    ),
                    "prediction": Object(
                        description=(
                            "The same comparison for the model's predictions (reported, not decided on)."
                        ),
                        properties={"psi": REAL, "pValue": REAL, "jsDistance": REAL},
                    ),
                    "lastChecked": TIME,
                    "performance": Object(
                        description="The last live-accuracy check (spec.monitoring.performance).",
                        properties={
                            "modelVersion": String(description="The model whose answers were joined."),
                            "rows": Integer(description="Labelled rows of that model in the window."),
                            "rmse": Number(description="Live rmse of those rows."),
                            "mae": Number(description="Live mean absolute error of those rows."),
                            "referenceRmse": Number(description="The model's rmse on its test split."),
                            "threshold": Number(description="(1 + margin) x referenceRmse."),
                            "zScore": Number(
                                description="How far the live mean squared error is above threshold^2, in "
                                "standard errors."
                            ),
                            "windowStart": TIME,
                            "windowEnd": TIME,
                            "feedbackRows": Integer(description="Feedback rows received in the window."),
                            "unmatched": Integer(
                                description="Feedback rows with no logged prediction read (not sampled, "
                                "too old, or an unknown id)."
                            ),
                            "otherModels": Integer(
                                description="Feedback rows answered by another model (before a rollout)."
                            ),
                            "rowsRead": Integer(description="Prediction and feedback rows read."),
                            "skippedParts": Integer(description="Parts not read (maxRows reached)."),
                            "skippedBytes": Integer(description="Bytes of the parts not read."),
                            "unreadableParts": Integer(
                                description="Parts skipped because they are not Parquet with the columns "
                                "the servers write (the message names the first)."
                            ),
                            "message": TEXT,
                            "checked": TIME,
                        },
                    ),
                },
            ),
            "retraining": Object(
                description="Refreshes of the Dataset triggered by this ModelDeployment (spec.retraining).",
                properties={
                    "lastTrigger": TIME,
                    "reason": String(description="What triggered the last refresh.", enum=RETRAIN_TRIGGERS),
                    "message": TEXT,
                    "dataset": String(description="The Dataset refreshed."),
                    "refresh": String(
                        description=f"The value written to its {REFRESH_ANNOTATION} annotation."
                    ),
                    "day": String(description="The UTC day countToday counts."),
                    "countToday": WHOLE,
                    "total": WHOLE,
                    "nextAllowed": TIME,
                    "held": Object(
                        description="A trigger that came inside the limits (or with no Dataset to refresh).",
                        properties={
                            "trigger": TEXT,
                            "reason": String(enum=RETRAIN_HOLDS),
                            "message": TEXT,
                            "since": TIME,
                        },
                    ),
                },
            ),
            "promotion": Object(
                description="The promotion gate's work (spec.promotion IfBetter).",
                properties={
                    "evaluating": _model(
                        "The new model being scored against the serving one, and the Job doing it.",
                        jobName=TEXT,
                    ),
                    "decisions": Array(
                        description="The last decisions, one per (champion, challenger) pair of sha256s.",
                        items=Object(
                            properties={
                                "champion": TEXT,
                                "challenger": TEXT,
                                "verdict": String(enum=PROMOTION_VERDICTS),
                                "reason": TEXT,
                                "metric": TEXT,
                                "championMetrics": METRICS_BY_NAME,
                                "challengerMetrics": METRICS_BY_NAME,
                                "datasetVersion": TEXT,
                                "decidedAt": TIME,
                            }
                        ),
                    ),
                },
            ),
            "rejectedModel": _model(
                "The last new model the promotion gate rejected (the serving model stayed): its address, "
                "both "
                "models' metrics on its test split, and why.",
                metric=TEXT,
                championMetrics=METRICS_BY_NAME,
                challengerMetrics=METRICS_BY_NAME,
                datasetVersion=TEXT,
                reason=TEXT,
                rejectedAt=TIME,
            ),
            "conditions": _conditions(
                f"{CONDITIONS[:-1]}; Drifted when spec.monitoring is set (True: inputs drifted, the model "
                f"still "
                "serves); Degraded when spec.monitoring.performance is set (True: the live error exceeds the "
                "test error by more than the margin, the model still serves)."
            ),
        },
    ),
)

# --- BatchPrediction -----------------------------------------------------------------------------------

BATCH_PREDICTION = Kind(
    kind="BatchPrediction",
    plural="batchpredictions",
    short_names=("bp", "bpred"),
    description=(
        "A BatchPrediction scores a whole table with a model in Kubernetes Jobs: a Dataset's split or CSV "
        "and "
        "Parquet objects in object storage, read in bounded memory and shared among `parallelism` pods, "
        "written as Parquet parts and a manifest naming each part's sha256 under the output prefix. The "
        "same spec, model and data are scored once: applying it again changes nothing."
    ),
    rules=(_name_rule("it names Jobs and objects"),),
    columns=(
        Column("Phase", "string", ".status.phase"),
        Column("Ready", "string", READY_STATUS),
        Column("Rows", "integer", ".status.rows"),
        Column("Model", "string", ".status.model.version"),
        Column("URI", "string", ".status.uri", priority=1),
        Column("Reason", "string", READY_REASON, priority=1),
        AGE,
    ),
    spec=Object(
        description="What to score, with which model, and where the scores go.",
        required=("model", "source"),
        properties={
            "model": Object(
                description=(
                    "The model: the latest of a TrainingJob, what a ModelDeployment serves, or an artifact "
                    "given by uri together with sha256. Resolved when the scoring starts; a new model "
                    "later scores again."
                ),
                rules=(
                    Rule(
                        "(has(self.trainingJob) ? 1 : 0) + (has(self.modelDeployment) ? 1 : 0) "
                        "+ (has(self.uri) ? 1 : 0) == 1",
                        "set exactly one of model.trainingJob, model.modelDeployment or model.uri",
                    ),
                    Rule("has(self.uri) == has(self.sha256)", "model.uri and model.sha256 go together"),
                ),
                properties={
                    "trainingJob": String(
                        description="Score with this TrainingJob's latest model (same namespace).",
                        length=Bound(1),
                    ),
                    "modelDeployment": String(
                        description="Score with the model this ModelDeployment serves (same namespace).",
                        length=Bound(1),
                    ),
                    "uri": String(
                        description=(
                            "A model artifact in this namespace's `s3://<bucket>/models/<namespace>/` or "
                            "under a prefix the cluster admin shares."
                        ),
                        pattern=S3_URI_PATTERN,
                    ),
                    "sha256": String(description="The artifact's sha256.", pattern=SHA256_PATTERN),
                },
            ),
            "source": Object(
                description="The rows to score: exactly one of dataset, csv or parquet.",
                rules=(
                    Rule(
                        "(has(self.dataset) ? 1 : 0) + (has(self.csv) ? 1 : 0) + (has(self.parquet) ? 1 : 0) "
                        "== 1",
                        "set exactly one of source.dataset, source.csv or source.parquet",
                    ),
                ),
                properties={
                    "dataset": Object(
                        description="A split of a prepared Dataset (same namespace): its latest version.",
                        required=("name",),
                        properties={
                            "name": String(description="Name of the Dataset.", length=Bound(1)),
                            "split": String(description="Which split.", default="test", enum=SCORED_SPLITS),
                            "version": String(
                                description="Pin a version (status.version of the Dataset).",
                                pattern=DATASET_VERSION_PATTERN,
                            ),
                        },
                    ),
                    "csv": Object(
                        description="A CSV object, or a prefix ending in `/` of many CSV or Parquet parts.",
                        required=("uri",),
                        properties={
                            "uri": String(description=f"The object's URI, {S3_AREAS}", pattern=S3_URI_PATTERN)
                        },
                    ),
                    "parquet": Object(
                        description="A Parquet object, or a prefix ending in `/` of many Parquet parts.",
                        required=("uri",),
                        properties={
                            "uri": String(description=f"The object's URI, {S3_AREAS}", pattern=S3_URI_PATTERN)
                        },
                    ),
                },
            ),
            "outputs": Array(
                description=(
                    "What each scored row carries: the prediction, the prediction interval's bounds (at "
                    "`level`), one contribution per input (they sum with the base value to the "
                    "prediction) and the extrapolation verdict."
                ),
                items=String(enum=ANSWER_OUTPUTS),
                size=Bound(1, len(ANSWER_OUTPUTS)),
                list_type="set",
                default=["predict"],
            ),
            "level": Number(
                description="The prediction interval's coverage, for the lower and upper outputs.",
                default=0.95,
                bound=Bound(0, 1, exclusive_minimum=True, exclusive_maximum=True),
            ),
            "passthrough": Array(
                description="Source columns copied beside the outputs (an id, to join the scores back).",
                items=String(length=Bound(1)),
                list_type="set",
            ),
            "output": Object(
                description=(
                    "Where the scores go (absent: `s3://<bucket>/predictions/<namespace>/<name>/`): each "
                    "run writes its own folder under it, named by its inputs, and never rewrites one."
                ),
                properties={
                    "uri": String(
                        description=(
                            "A prefix ending in `/` in this namespace's "
                            "`s3://<bucket>/predictions/<namespace>/`."
                        ),
                        pattern=S3_URI_PATTERN,
                    )
                },
            ),
            "parallelism": Integer(
                description=(
                    "Pods sharing the scoring: N > 1 runs an Indexed Job whose pod i scores every N-th part "
                    "of the source; the scores are the same whatever N."
                ),
                default=1,
                bound=SHARDS,
            ),
            "resources": _resources(f"Compute resources of the scoring Jobs' containers; {JOB_RESOURCES}"),
            "backoffLimit": Integer(
                description="Retries of a scoring pod before the run counts as failed.",
                default=1,
                bound=Bound(0, 10),
            ),
            "activeDeadlineSeconds": Integer(
                description="Deadline of one scoring run, in seconds.", default=3600, bound=Bound(10)
            ),
        },
    ),
    status=Object(
        description=STATUS_DESCRIPTION,
        properties={
            "observedGeneration": OBSERVED_GENERATION,
            "phase": String(description="Pending, Running, Succeeded or Failed (of the current run)."),
            "inputsHash": String(
                description="Short hash of the spec, the model and the data the run scores."
            ),
            "jobName": String(description="The Kubernetes Job of the current run."),
            "model": _model("The model the run scores with."),
            "source": Object(
                description="The data the run scores: its URI and, for a Dataset, the version.",
                properties={"uri": TEXT, "version": TEXT, "split": TEXT},
            ),
            "rows": Integer(description="Rows scored."),
            "parts": Integer(description="Parquet parts written."),
            "uri": String(description="The run's folder: its parts and manifest.json."),
            "manifest": Object(
                description="The run's manifest, which names every part and its sha256.",
                properties={"uri": TEXT, "sha256": TEXT},
            ),
            "extrapolated": Integer(description="Rows the extrapolation guard flagged (with that output)."),
            "progress": PROGRESS,
            "startTime": TIME,
            "completionTime": TIME,
            "conditions": _conditions(CONDITIONS),
        },
    ),
)

KINDS = (DATASET, TRAINING_JOB, MODEL_DEPLOYMENT, BATCH_PREDICTION)
