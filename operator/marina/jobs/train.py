"""`marina train`: fit a linear model on a prepared dataset, evaluate it and store its artifact.

    marina train --data DIR_OR_S3 --output DIR_OR_S3
                 [--penalty none|l2|l1|elasticnet] [--alpha 1.0] [--l1-ratio 0.5] [--solver auto]
                 [--standardize] [--no-intercept] [--max-iter N] [--tol 1e-4] [--learning-rate F]
                 [--search-alpha 0.01,0.1,1] [--search-l1-ratio 0.2,0.5] [--cv 5] [--seed 42]
                 [--name NAME] [--result-file PATH]

`--data` is a versioned dataset folder written by `marina prepare` (its `uri`), or the `--output`
folder it was prepared into: its only version, or the newest one (said on stderr). With
`--search-alpha`/`--search-l1-ratio` every combination is scored by k-fold cross-validation on the
train split (mean validation MSE, `--cv` folds, default 5, shuffled by `--seed`); the best is refit
on the whole train split and evaluated on the test split. `--cv` alone cross-validates the single
configuration. Folds are scored from their sufficient statistics (`marina.solver.crossval`), except
with `--solver qr`, which refits on the rows. The artifact is written to `<output>/model-<sha256>.json`.

Result JSON (stdout, one line, and `--result-file`; always < 4096 bytes):
  uri, sha256      the artifact (give both to `marina serve --model URI --sha256 HEX`)
  metrics          test split: {mse, rmse, mae, r2}
  trainMetrics     train split: {mse, rmse, mae, r2}; mse, rmse and r2 only when streamed or sharded
  bestParameters   {penalty, alpha, l1_ratio, solver, solver_used, fit_intercept, standardize, tol,
                   n_iter, and max_iter / learning_rate when given}
  datasetVersion, datasetUri, datasetName, features (count), trainRows, testRows
  intervals        how the model's prediction intervals are made: student-t (least squares) or
                   split-conformal (every other model; see marina.model.answers)
  peakMemoryBytes  the container's cgroup peak (or the process's VmHWM outside one)
  name             the --name given, when given
  cv               only with cross-validation: {folds, seed, candidates, bestMeanMse, bestStdMse}
  cvResults        only with cross-validation: [{alpha, l1_ratio, meanMse, stdMse}, ...] best first
  warnings         solver warnings (e.g. not converged), when any
  truncated        present only when keys were dropped to fit 4096 bytes (cvResults first)
  format           marina.dev/result/v1
On failure: `marina train: error: <message>` on stderr, the failure's kind and message in the result
file and the kind's exit code (see `marina.contract`).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from marina import __version__
from marina.contract import (
    L1_PENALTIES,
    L1_RATIO_PENALTIES,
    TRAINING_JOB,
    FailureKind,
    JobError,
    SpecError,
    TrainRequest,
)
from marina.data import dataset, partials, sampling, served_source
from marina.data.distribution import Reference
from marina.data.table import DataError
from marina.jobs import progress, results
from marina.jobs.progress import Progress
from marina.jobs.sharding import shard_index
from marina.model import answers, artifact, scoring
from marina.model.artifact import ArtifactError
from marina.solver import (
    Chunks,
    DivergenceError,
    InvalidParameterError,
    LinearRegressor,
    NonFiniteError,
    SufficientStatistics,
    TooFewRowsError,
    crossval,
)
from marina.solver.design import design_factor
from marina.system.clock import utc_now
from marina.system.cpu import blas_beside_a_reader
from marina.system.memory import memory_used
from marina.system.text import one_line

DEFAULT_FOLDS: int = TRAINING_JOB.default("spec.search.folds")
#: Solvers that refine against the rows when they can read them (the rest work from statistics alone).
ROWS_SOLVERS = ("auto", "normal", "qr")
#: Solvers whose unpenalised fit is the least-squares solution itself (Student-t intervals); `cd` and `gd`
#: stop at a tolerance, so their intervals are conformal.
LEAST_SQUARES_SOLVERS = ("normal", "qr", "svd")
#: Set by Kubernetes in every pod of an Indexed Job: the pod's completion index.
#: Datasets up to this many cells (both splits, 32 MiB of float64) are trained in memory; larger ones
#: stream: one pass for the sufficient statistics (and per-fold statistics, folds by a seeded hash of
#: the train row number), one for the metrics, in memory O(chunk + d²) whatever the row count.
IN_MEMORY_CELLS = 1 << 22
DROPPABLE = ("cvResults", "warnings", "trainMetrics")


class TrainingError(JobError):
    """The fit itself failed (gradient descent diverged, the model came out unusable)."""

    kind = FailureKind.TRAINING


def configure(parser: argparse.ArgumentParser) -> None:
    TrainRequest.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return results.run_command(
        "train", lambda: train_command(TrainRequest.from_args(args)), DROPPABLE, args.result_file
    )


@contextmanager
def solver_errors() -> Iterator[None]:
    """The solver's errors as the kind of failure they are: bad parameters, unusable data, a failed fit.
    Anything else it raises (shape mismatches, not fitted) is a bug in this module and stays one."""
    try:
        yield
    except InvalidParameterError as exc:
        raise SpecError(str(exc)) from exc
    except (TooFewRowsError, NonFiniteError) as exc:
        raise DataError(f"training failed: {exc}") from exc
    except DivergenceError as exc:
        raise TrainingError(f"training failed: {exc}") from exc


def make_model(parameters: Mapping[str, Any]) -> LinearRegressor:
    with solver_errors():
        return LinearRegressor(**parameters)


def grid(request: TrainRequest) -> list[dict[str, Any]]:
    axes: dict[str, list[float]] = {"alpha": list(request.search_alpha) or [request.alpha]}
    if request.penalty in L1_RATIO_PENALTIES:
        axes["l1_ratio"] = list(request.search_l1_ratio) or [request.l1_ratio]
    return scoring.parameter_grid(axes)


@dataclass(frozen=True)
class Fit:
    model: LinearRegressor
    parameters: dict[str, Any]
    search: scoring.SearchResult | None
    seed: int
    warnings: tuple[str, ...]
    name: str


def fit(request: TrainRequest, data: dataset.PreparedDataset) -> Fit:
    """Choose the parameters (by cross-validation when asked), then fit on the whole train split."""
    parameters = request.model_parameters()
    search = None
    with warnings.catch_warnings(record=True) as caught, solver_errors():
        warnings.simplefilter("always")
        if request.searching or request.folds is not None:
            search = cross_validated_search(request, data.x_train, data.y_train)
            parameters.update(search.best.parameters)
        model = make_model(parameters)
        model.fit(data.x_train, data.y_train)
    messages = tuple(dict.fromkeys(one_line(str(w.message), 200) for w in caught))
    return Fit(model, parameters, search, request.seed, messages, request.name or "")


def cross_validated_search(request: TrainRequest, x: np.ndarray, y: np.ndarray) -> scoring.SearchResult:
    """k-fold search; from per-fold sufficient statistics unless the solver needs the rows (qr)."""
    folds = request.folds or DEFAULT_FOLDS
    parameters = request.model_parameters()
    points = grid(request)
    if parameters["solver"] == "qr":
        return scoring.grid_search(
            lambda point: make_model({**parameters, **point}), points, x, y, folds, request.seed
        )
    splits = scoring.kfold_indices(x.shape[0], folds, request.seed)
    scorer = crossval.statistics_scorer(parameters, x, y, [validation for _, validation in splits])
    return scoring.search(points, scorer, folds)


def scaling(x_train: np.ndarray) -> dict[str, list[float]]:
    """The standardisation used while fitting (population std; constant columns scale by 1)."""
    scale = x_train.std(axis=0)
    return {"mean": x_train.mean(axis=0).tolist(), "scale": np.where(scale > 0, scale, 1.0).tolist()}


def dataset_lineage(stored: dataset.StoredDataset) -> dict[str, Any]:
    """What a model names of its data: the dataset's version and, when it holds served rows, the logs they
    came from (prefixes, window, rows, and a sha256 over the parts read; dataset.json lists the parts)."""
    named = {"name": stored.name, "version": stored.version, "sha256": stored.sha256, "uri": stored.uri}
    logs = served_source.lineage(stored.description.get("source") or {})
    return {**named, "logs": logs} if logs is not None else named


def build_artifact(
    fitted: Fit,
    stored: dataset.StoredDataset,
    metrics: dict[str, float],
    scaled: dict[str, list[float]] | None,
    reference: Reference,
    record: answers.Record,
) -> artifact.ModelArtifact:
    n_iter = getattr(fitted.model, "n_iter_", None)
    hyperparameters: dict[str, Any] = {
        **fitted.parameters,
        "solver_used": str(getattr(fitted.model, "solver_", fitted.parameters["solver"])),
        "n_iter": None if n_iter is None else int(n_iter),
    }
    if fitted.search is not None:
        hyperparameters["cv"] = {"folds": fitted.search.folds, "candidates": len(fitted.search.candidates)}
    train_statistics = stored.description.get("statistics", {}).get("train", {})
    return artifact.ModelArtifact(
        coefficients=[float(c) for c in np.asarray(fitted.model.coef_, dtype=np.float64)],
        intercept=float(fitted.model.intercept_),
        feature_names=list(stored.feature_names),
        inputs=stored.inputs if stored.has_categories else [],
        target=stored.target,
        metrics=metrics,
        hyperparameters=hyperparameters,
        scaling=scaled if fitted.parameters.get("standardize") else None,
        dataset=dataset_lineage(stored),
        feature_statistics={
            name: train_statistics[name]
            for name in stored.feature_names
            if name in train_statistics and "categories" not in train_statistics[name]
        },
        reference=reference.to_dict(stored.feature_names),
        code_version=__version__,
        created=utc_now(),
        answers=record.to_dict(),
    )


@dataclass(frozen=True)
class Evaluation:
    """What a fit is judged and described by: metrics, scaling, the reference distribution, and what its
    answers are calibrated on (held-out residuals, a sample of training rows)."""

    metrics: dict[str, float]
    train_metrics: dict[str, float]
    scaling: dict[str, list[float]]
    reference: Reference
    calibration: answers.Calibration
    training_sample: np.ndarray  # training rows the guard's leverage reference is taken over


def calibration_sample(seed: int) -> sampling.BottomSample:
    """A seeded sample of held-out residuals by test row number: the same rows however the split is read."""
    return sampling.BottomSample(1, seed, answers.CALIBRATION_ROWS)


def calibrated(sample: sampling.BottomSample, test_rows: int, seed: int) -> answers.Calibration:
    return answers.calibration_of(sample.values()[:, 0], test_rows, seed)


def answers_record(
    fitted: Fit, statistics: SufficientStatistics, rows: Chunks | None, judged: Evaluation
) -> answers.Record:
    """The answers section: the design's factor (its rows re-read only if ill-conditioned), the residual
    variance of a least-squares fit, the calibration and the guard's leverage reference."""
    parameters = fitted.parameters
    design = design_factor(statistics, bool(parameters["fit_intercept"]), rows)
    solver_used = str(getattr(fitted.model, "solver_", parameters["solver"]))
    least_squares = parameters["penalty"] == "none" and solver_used in LEAST_SQUARES_SOLVERS
    residual_sum_squares = judged.train_metrics["mse"] * statistics.n_samples
    return answers.record(
        statistics.x_mean,
        design,
        least_squares,
        residual_sum_squares,
        judged.calibration,
        judged.training_sample,
    )


def fits_in_memory(stored: dataset.StoredDataset) -> bool:
    cells = (stored.rows("train") + stored.rows("test")) * len(stored.columns)
    return stored.legacy is not None or cells <= IN_MEMORY_CELLS


def train_in_memory(
    request: TrainRequest, stored: dataset.StoredDataset
) -> tuple[Fit, Evaluation, answers.Record]:
    data = stored.data
    fitted = fit(request, data)
    model = fitted.model
    test_predictions = model.predict(data.x_test)
    residuals = calibration_sample(request.seed)
    residuals.add(np.arange(len(data.y_test)), (data.y_test - test_predictions)[:, None])
    sample = sampling.BottomSample(data.x_train.shape[1], request.seed)  # as a streamed pass samples
    sample.add(np.arange(len(data.y_train)), data.x_train)
    evaluation_ = Evaluation(
        scoring.regression_metrics(data.y_test, test_predictions),
        scoring.regression_metrics(data.y_train, model.predict(data.x_train)),
        scaling(data.x_train),
        Reference.of(data.x_train, model.predict(data.x_train)),
        calibrated(residuals, len(data.y_test), request.seed),
        sample.values(),
    )
    statistics = SufficientStatistics.from_arrays(data.x_train, data.y_train)
    record = answers_record(fitted, statistics, lambda: [(data.x_train, data.y_train)], evaluation_)
    return fitted, evaluation_, record


def train_streaming(
    request: TrainRequest, stored: dataset.StoredDataset
) -> tuple[Fit, Evaluation, answers.Record]:
    """One pass over the train split for the statistics and one over test, never holding a split; the QR
    path (`qr`, or an ill-conditioned design) reads the train rows again for R and per refinement sweep,
    and once more for the design's factor."""
    reporter = Progress("marina train", stored.rows("train"), request.progress)
    gathered = partials.gather(
        _counted(_numbered(stored.chunks("train")), reporter), *_shape(request, stored)
    )
    reporter.done()
    return finish_gathered(request, stored, gathered)


def finish_gathered(
    request: TrainRequest, stored: dataset.StoredDataset, gathered: partials.Gathered
) -> tuple[Fit, Evaluation, answers.Record]:
    """Fit on what a pass (or the shards) gathered, evaluate on test and record the answers."""
    rows = train_rows(stored)
    fitted = fit_gathered(request, gathered, rows)
    judged = evaluate(stored, fitted, gathered, moment_metrics(fitted, gathered.statistics), request.seed)
    return fitted, judged, answers_record(fitted, gathered.statistics, rows, judged)


def train_rows(stored: dataset.StoredDataset) -> Chunks:
    """The train split as (X, y) chunks, readable again: only the solvers that refine against rows (`qr`,
    and `auto`/`normal` on an ill-conditioned design) read it, in one pod or in the reduce after shards."""

    def rows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for chunk in stored.chunks("train"):
            yield chunk[:, :-1], chunk[:, -1]

    return rows


def moment_metrics(fitted: Fit, statistics: SufficientStatistics) -> dict[str, float]:
    """Train mse, rmse and r2 from the split's centred moments (exact algebra, no pass over the rows); the
    mae would need every row again after the fit, so streamed and sharded training leave it out."""
    mse = crossval.validation_mse(fitted.model.coef_, fitted.model.intercept_, statistics)
    spread = statistics.yy / statistics.n_samples
    return {"mse": mse, "rmse": math.sqrt(mse), "r2": 1.0 - mse / spread if spread > 0 else 0.0}


def _shape(request: TrainRequest, stored: dataset.StoredDataset) -> tuple[int, int, int]:
    """(width, folds, seed) of what a pass gathers."""
    cross_validating = request.searching or request.folds is not None
    return (
        len(stored.feature_names),
        (request.folds or DEFAULT_FOLDS) if cross_validating else 1,
        request.seed,
    )


def _counted(
    chunks: Iterable[tuple[int, np.ndarray]], reporter: Progress
) -> Iterator[tuple[int, np.ndarray]]:
    """The chunks, reporting the rows handed out so far (a shard's rows are not numbered from 0)."""
    count = 0
    for first_row, chunk in chunks:
        yield first_row, chunk
        count += chunk.shape[0]
        reporter.rows(count)


def _numbered(chunks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    row = 0
    for chunk in chunks:
        yield row, chunk
        row += chunk.shape[0]


def fit_gathered(request: TrainRequest, gathered: partials.Gathered, rows: Chunks | None = None) -> Fit:
    """Cross-validate from the folds' statistics when asked, then fit on all of them; with `rows` (the
    train split, readable again) the solvers that can use rows (`qr`, and `normal` when the design is
    ill-conditioned) refine against them."""
    parameters = request.model_parameters()
    statistics = gathered.statistics
    folds = len(gathered.held_out)
    search = None
    with warnings.catch_warnings(record=True) as caught, solver_errors():
        warnings.simplefilter("always")
        if request.searching or request.folds is not None:
            if folds > statistics.n_samples:
                raise DataError(
                    f"cv: {folds} folds need at least {folds} training rows, got {statistics.n_samples}"
                )
            scorer = crossval.held_out_scorer(parameters, gathered.held_out)
            search = scoring.search(grid(request), scorer, folds)
            parameters.update(search.best.parameters)
        model = make_model(parameters)
        if (
            rows is not None
            and parameters["penalty"] not in L1_PENALTIES
            and parameters["solver"] in ROWS_SOLVERS
        ):
            model.fit_chunks(rows, statistics)
        else:
            model.fit_statistics(statistics)
    messages = tuple(dict.fromkeys(one_line(str(w.message), 200) for w in caught))
    return Fit(model, parameters, search, request.seed, messages, request.name or "")


def evaluate(
    stored: dataset.StoredDataset,
    fitted: Fit,
    gathered: partials.Gathered,
    train_metrics: dict[str, float],
    seed: int,
) -> Evaluation:
    """Test metrics and the calibration residuals from a pass over the test split; scaling, the reference
    and the guard's sample of training rows from what was gathered."""
    test = scoring.ResidualMoments()
    residuals = calibration_sample(seed)
    row = 0
    for chunk in stored.chunks("test"):
        truth, predicted = chunk[:, -1], fitted.model.predict(chunk[:, :-1])
        test.add(truth, predicted)
        residuals.add(np.arange(row, row + len(truth)), (truth - predicted)[:, None])
        row += len(truth)
    statistics = gathered.statistics
    std = statistics.x_std
    scaled = {"mean": statistics.x_mean.tolist(), "scale": np.where(std > 0, std, 1.0).tolist()}
    sampled = gathered.sample.values()
    reference = Reference.of(sampled, fitted.model.predict(sampled))
    return Evaluation(
        test.metrics(), train_metrics, scaled, reference, calibrated(residuals, row, seed), sampled
    )


def shard_command(request: TrainRequest, stored: dataset.StoredDataset) -> dict[str, Any]:
    """One shard: gather this pod's share of the train parts and store it for the reduce."""
    index = shard_index(request.shard_index, request.shards)
    share = stored.shard_rows("train", request.shards, index)
    uri = progress.shard_uri(request.progress, index) if request.progress else None
    reporter = Progress(f"marina train shard {index}", share, uri)
    chunks = _counted(stored.shard_chunks("train", request.shards, index), reporter)
    gathered = partials.gather(chunks, *_shape(request, stored))
    reporter.done()
    uri = partials.write(gathered, str(request.partials), stored.sha256, request.shards, index, request.seed)
    return {
        "partial": uri,
        "shard": index,
        "shards": request.shards,
        "trainRows": gathered.statistics.n_samples,
        **memory_used(),
    }


def reduce_fit(
    request: TrainRequest, stored: dataset.StoredDataset
) -> tuple[Fit, Evaluation, answers.Record]:
    """Merge the shards, fit, and evaluate on test; train metrics from the merged moments."""
    width, folds, seed = _shape(request, stored)
    gathered = partials.read_all(str(request.partials), stored.sha256, request.shards, seed, width, folds)
    return finish_gathered(request, stored, gathered)


def train_command(request: TrainRequest) -> dict[str, Any]:
    make_model(request.model_parameters())  # the solver checks its own parameters before any data is read
    location = dataset.locate(request.data)
    if location.note:
        print(f"marina train: {location.note}", file=sys.stderr, flush=True)
    stored = dataset.open_stored(location.folder)
    if request.phase == "shard":
        with blas_beside_a_reader():
            return shard_command(request, stored)
    if request.phase == "reduce":
        fitted, judged, record = reduce_fit(request, stored)
    elif fits_in_memory(stored):
        fitted, judged, record = train_in_memory(request, stored)
    else:
        with blas_beside_a_reader():
            fitted, judged, record = train_streaming(request, stored)
    metrics = dict(judged.metrics)
    if fitted.search is not None:
        metrics["cv_mse"] = fitted.search.best.mean_mse
    try:
        model = build_artifact(fitted, stored, metrics, judged.scaling, judged.reference, record)
    except ArtifactError as exc:  # e.g. non-finite coefficients: the fit, not the data, went wrong
        raise TrainingError(f"training produced an unusable model: {exc}") from exc
    uri, digest = artifact.save(model, request.output)
    return {**summary(model, uri, digest, fitted, stored, judged.train_metrics), **memory_used()}


def summary(
    model: artifact.ModelArtifact,
    uri: str,
    digest: str,
    fitted: Fit,
    stored: dataset.StoredDataset,
    train_metrics: dict[str, float],
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "uri": uri,
        "sha256": digest,
        "metrics": {k: v for k, v in model.metrics.items() if k != "cv_mse"},
        "trainMetrics": train_metrics,
        "bestParameters": {k: v for k, v in model.hyperparameters.items() if k != "cv"},
        "datasetVersion": stored.version,
        "datasetUri": stored.uri,
        "datasetName": stored.name,
        "features": len(stored.feature_names),
        "trainRows": stored.rows("train"),
        "testRows": stored.rows("test"),
        "intervals": model.answers["intervals"]["method"],
    }
    if fitted.name:
        result["name"] = fitted.name
    if fitted.warnings:
        result["warnings"] = list(fitted.warnings)
    if fitted.search is not None:
        search = fitted.search
        result["cv"] = {
            "folds": search.folds,
            "seed": fitted.seed,
            "candidates": len(search.candidates),
            "bestMeanMse": search.best.mean_mse,
            "bestStdMse": search.best.std_mse,
        }
        ranked = sorted(search.candidates, key=lambda c: c.mean_mse)
        result["cvResults"] = [{**c.parameters, "meanMse": c.mean_mse, "stdMse": c.std_mse} for c in ranked]
    return result
