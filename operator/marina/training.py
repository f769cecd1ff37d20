"""`marina train`: fit a linear model on a prepared dataset, evaluate it and store its artifact.

    marina train --data DIR_OR_S3 --output DIR_OR_S3
                 [--penalty none|l2|l1|elasticnet] [--alpha 1.0] [--l1-ratio 0.5] [--solver auto]
                 [--standardize] [--no-intercept] [--max-iter N] [--tol 1e-4] [--learning-rate F]
                 [--search-alpha 0.01,0.1,1] [--search-l1-ratio 0.2,0.5] [--cv 5] [--seed 42]
                 [--name NAME] [--result-file PATH]

`--data` is a versioned dataset folder written by `marina prepare` (its `uri`). With
`--search-alpha`/`--search-l1-ratio` every combination is scored by k-fold cross-validation on the
train split (mean validation MSE, `--cv` folds, default 5, shuffled by `--seed`); the best is refit
on the whole train split and evaluated on the test split. `--cv` alone cross-validates the single
configuration. Folds are scored from their sufficient statistics (one pass over the rows, then
O(d³) per fit), except with `--solver qr`, which refits on the rows. The artifact is written to
`<output>/model-<sha256>.json`.

Result JSON (stdout, one line, and `--result-file`; always < 4096 bytes):
  uri, sha256      the artifact (give both to `marina serve --model URI --sha256 HEX`)
  metrics          test split: {mse, rmse, mae, r2}
  trainMetrics     train split: {mse, rmse, mae, r2}
  bestParameters   {penalty, alpha, l1_ratio, solver, solver_used, fit_intercept, standardize, tol,
                   n_iter, and max_iter / learning_rate when given}
  datasetVersion, datasetUri, datasetName, features (count), trainRows, testRows
  name             the --name given, when given
  cv               only with cross-validation: {folds, seed, candidates, bestMeanMse, bestStdMse}
  cvResults        only with cross-validation: [{alpha, l1_ratio, meanMse, stdMse}, ...] best first
  warnings         solver warnings (e.g. not converged), when any
  truncated        present only when keys were dropped to fit 4096 bytes (cvResults first)
On failure: exit code 1, `marina train: error: <message>` on stderr and `{"error": "<message>"}` in the
result file.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marina import __version__, artifact, dataset, evaluation, results
from marina.dataset import DataError
from marina.solver import LinearRegressor, SufficientStatistics
from marina.solver.errors import SolverError

PENALTIES = ("none", "l2", "l1", "elasticnet")
DEFAULT_FOLDS = 5
DROPPABLE = ("cvResults", "warnings", "trainMetrics")


def configure(parser: argparse.ArgumentParser) -> None:
    # Values are parsed in `run` (not by argparse types) so that every bad value reaches the result file.
    add = parser.add_argument
    add(
        "--data",
        metavar="DIR_OR_S3",
        help="versioned dataset folder or s3:// prefix written by `marina prepare` (required)",
    )
    add("--output", metavar="DIR_OR_S3", help="folder or s3:// prefix for the model artifact (required)")
    add("--penalty", metavar="NAME", default="none", help="none | l2 | l1 | elasticnet (default: none)")
    add("--alpha", metavar="F", default="1.0", help="penalty strength, scikit-learn's scaling (default: 1.0)")
    add(
        "--l1-ratio",
        metavar="F",
        default="0.5",
        help="elastic-net mix: 0 is ridge, 1 is lasso (default: 0.5)",
    )
    add(
        "--solver",
        metavar="NAME",
        default="auto",
        help="solver of marina.solver.LinearRegressor (default: auto)",
    )
    add(
        "--standardize",
        action="store_true",
        help="fit on standardised features (coefficients stay in original units)",
    )
    add(
        "--no-intercept",
        "--no-fit-intercept",
        dest="no_intercept",
        action="store_true",
        help="fit without an intercept",
    )
    add("--name", metavar="NAME", help="name of the model (the TrainingJob), reported in the result")
    add("--max-iter", metavar="N", help="iteration limit of the iterative solvers (default: the solver's)")
    add(
        "--tol",
        metavar="F",
        default="1e-4",
        help="convergence tolerance of the iterative solvers (default: 1e-4)",
    )
    add(
        "--learning-rate",
        metavar="F",
        help="step size of the gradient-descent solver (default: the solver's)",
    )
    add("--search-alpha", metavar="A,B,C", help="comma-separated alphas to cross-validate, e.g. 0.01,0.1,1")
    add(
        "--search-l1-ratio",
        metavar="A,B,C",
        help="comma-separated l1 ratios to cross-validate (elasticnet only)",
    )
    add("--cv", metavar="K", help=f"cross-validation folds (default: {DEFAULT_FOLDS} when searching)")
    add("--seed", metavar="N", default="42", help="seed of the cross-validation folds (default: 42)")
    results.add_result_file(parser)


def run(args: argparse.Namespace) -> int:
    return results.run_command("train", lambda: train_command(args), DROPPABLE, args.result_file)


@dataclass(frozen=True)
class TrainOptions:
    """What to fit and how to choose it; validated on construction, before any data is read."""

    data: str
    output: str
    parameters: dict[str, Any]
    search_alpha: tuple[float, ...] = ()
    search_l1_ratio: tuple[float, ...] = ()
    folds: int | None = None
    seed: int = 42
    name: str = ""

    def __post_init__(self) -> None:
        penalty = self.parameters["penalty"]
        if penalty not in PENALTIES:
            raise DataError(f"penalty: must be one of {', '.join(PENALTIES)}, got {penalty!r}")
        if self.search_alpha and penalty == "none":
            raise DataError(
                "--search-alpha needs --penalty l2, l1 or elasticnet (penalty 'none' has no alpha)"
            )
        if self.search_l1_ratio and penalty != "elasticnet":
            raise DataError(f"--search-l1-ratio needs --penalty elasticnet, got {penalty!r}")
        for alpha in self.search_alpha:
            if alpha < 0:
                raise DataError(f"--search-alpha: {alpha} is negative")
        for ratio in self.search_l1_ratio:
            if not 0.0 <= ratio <= 1.0:
                raise DataError(f"--search-l1-ratio: {ratio} is not between 0 and 1")
        if self.folds is not None and self.folds < 2:
            raise DataError(f"--cv: need at least 2 folds, got {self.folds}")
        if self.seed < 0:
            raise DataError(f"--seed: must be a non-negative integer, got {self.seed}")
        make_model(self.parameters)  # the solver checks its own parameters now, not after loading data

    @property
    def searching(self) -> bool:
        return bool(self.search_alpha or self.search_l1_ratio)

    def grid(self) -> list[dict[str, Any]]:
        axes: dict[str, list[float]] = {"alpha": list(self.search_alpha) or [self.parameters["alpha"]]}
        if self.parameters["penalty"] == "elasticnet":
            axes["l1_ratio"] = list(self.search_l1_ratio) or [self.parameters["l1_ratio"]]
        return evaluation.parameter_grid(axes)


def parse_list(text: str | None, flag: str) -> tuple[float, ...]:
    if text is None:
        return ()
    values = tuple(results.parse_value(part, flag, float) for part in text.split(",") if part.strip())
    if not values:
        raise DataError(f"{flag}: give at least one value, like 0.1,1,10")
    return values


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    if not args.data:
        raise DataError("--data is required")
    if not args.output:
        raise DataError("--output is required")
    parameters: dict[str, Any] = {
        "penalty": args.penalty.strip().lower(),
        "alpha": results.parse_value(args.alpha, "--alpha", float),
        "l1_ratio": results.parse_value(args.l1_ratio, "--l1-ratio", float),
        "solver": args.solver.strip().lower(),
        "fit_intercept": not args.no_intercept,
        "standardize": bool(args.standardize),
        "tol": results.parse_value(args.tol, "--tol", float),
    }
    if args.max_iter is not None:
        parameters["max_iter"] = results.parse_value(args.max_iter, "--max-iter", int)
    if args.learning_rate is not None:
        parameters["learning_rate"] = results.parse_value(args.learning_rate, "--learning-rate", float)
    return TrainOptions(
        data=args.data,
        output=args.output,
        parameters=parameters,
        search_alpha=parse_list(args.search_alpha, "--search-alpha"),
        search_l1_ratio=parse_list(args.search_l1_ratio, "--search-l1-ratio"),
        folds=None if args.cv is None else results.parse_value(args.cv, "--cv", int),
        seed=results.parse_value(args.seed, "--seed", int),
        name=(args.name or "").strip(),
    )


def make_model(parameters: Mapping[str, Any]) -> LinearRegressor:
    try:
        return LinearRegressor(**parameters)
    except SolverError as exc:
        raise DataError(str(exc)) from exc


@dataclass(frozen=True)
class Fit:
    model: LinearRegressor
    parameters: dict[str, Any]
    search: evaluation.SearchResult | None
    seed: int
    warnings: tuple[str, ...]
    name: str


def fit(options: TrainOptions, data: dataset.PreparedDataset) -> Fit:
    """Choose the parameters (by cross-validation when asked), then fit on the whole train split."""
    parameters = dict(options.parameters)
    search = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if options.searching or options.folds is not None:
                search = cross_validated_search(options, data.x_train, data.y_train)
                parameters.update(search.best.parameters)
            model = make_model(parameters)
            model.fit(data.x_train, data.y_train)
        except SolverError as exc:
            raise DataError(f"training failed: {exc}") from exc
    messages = tuple(dict.fromkeys(results.one_line(str(w.message))[:200] for w in caught))
    return Fit(model, parameters, search, options.seed, messages, options.name)


def cross_validated_search(options: TrainOptions, x: np.ndarray, y: np.ndarray) -> evaluation.SearchResult:
    """k-fold search; from per-fold sufficient statistics unless the solver needs the rows (qr)."""
    folds = options.folds or DEFAULT_FOLDS
    parameters = options.parameters
    if parameters["solver"] == "qr":
        return evaluation.grid_search(
            lambda point: make_model({**parameters, **point}), options.grid(), x, y, folds, options.seed
        )
    splits = evaluation.kfold_indices(x.shape[0], folds, options.seed)
    return evaluation.search(options.grid(), statistics_scorer(parameters, x, y, splits), folds)


def statistics_scorer(
    parameters: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
) -> evaluation.FoldScorer:
    """Validation MSE per fold without refitting on rows: one pass builds each fold's statistics,
    each training side is the merge of the other folds, and each fit costs O(d³) instead of O(n·d²)."""
    held_out = [SufficientStatistics.from_arrays(x[v], y[v]) for _, v in splits]
    training = [_merge([s for j, s in enumerate(held_out) if j != k]) for k in range(len(held_out))]

    def score(point: Mapping[str, Any]) -> tuple[float, ...]:
        models = [make_model({**parameters, **point}).fit_statistics(stats) for stats in training]
        return tuple(
            validation_mse(m.coef_, m.intercept_, stats) for m, stats in zip(models, held_out, strict=True)
        )

    return score


def _merge(parts: Sequence[SufficientStatistics]) -> SufficientStatistics:
    merged = parts[0]
    for part in parts[1:]:
        merged = merged + part
    return merged


def validation_mse(coef: np.ndarray, intercept: float, stats: SufficientStatistics) -> float:
    """Mean squared error of x·coef + intercept on the rows behind `stats`, from their centred moments:
    Σr² = Syy - 2·wᵀSxy + wᵀSxxw + n·(ȳ - x̄·w - b)²  (the cross terms vanish around the means)."""
    w = np.asarray(coef, dtype=np.float64)
    offset = stats.y_mean - float(stats.x_mean @ w) - intercept
    residual = stats.yy - 2.0 * float(w @ stats.xy) + float(w @ stats.xx @ w) + stats.n_samples * offset**2
    return max(float(residual), 0.0) / stats.n_samples


def scaling(x_train: np.ndarray) -> dict[str, list[float]]:
    """The standardisation used while fitting (population std; constant columns scale by 1)."""
    scale = x_train.std(axis=0)
    return {"mean": x_train.mean(axis=0).tolist(), "scale": np.where(scale > 0, scale, 1.0).tolist()}


def build_artifact(
    fitted: Fit, stored: dataset.StoredDataset, metrics: dict[str, float]
) -> artifact.ModelArtifact:
    data = stored.data
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
        feature_names=list(data.features),
        target=data.target,
        metrics=metrics,
        hyperparameters=hyperparameters,
        scaling=scaling(data.x_train) if fitted.parameters.get("standardize") else None,
        dataset={"name": stored.name, "version": stored.version, "sha256": data.sha256, "uri": stored.uri},
        feature_statistics={
            name: train_statistics[name] for name in data.features if name in train_statistics
        },
        code_version=__version__,
        created=dataset.utc_now(),
    )


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    options = options_from_args(args)
    stored = dataset.load(options.data)
    data = stored.data
    fitted = fit(options, data)
    metrics = evaluation.regression_metrics(data.y_test, fitted.model.predict(data.x_test))
    if fitted.search is not None:
        metrics["cv_mse"] = fitted.search.best.mean_mse
    model = build_artifact(fitted, stored, metrics)
    uri, digest = artifact.save(model, options.output)
    return summary(model, uri, digest, fitted, stored)


def summary(
    model: artifact.ModelArtifact, uri: str, digest: str, fitted: Fit, stored: dataset.StoredDataset
) -> dict[str, Any]:
    data = stored.data
    result: dict[str, Any] = {
        "uri": uri,
        "sha256": digest,
        "metrics": {k: v for k, v in model.metrics.items() if k != "cv_mse"},
        "trainMetrics": evaluation.regression_metrics(data.y_train, fitted.model.predict(data.x_train)),
        "bestParameters": {k: v for k, v in model.hyperparameters.items() if k != "cv"},
        "datasetVersion": stored.version,
        "datasetUri": stored.uri,
        "datasetName": stored.name,
        "features": len(data.features),
        "trainRows": int(data.train.shape[0]),
        "testRows": int(data.test.shape[0]),
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
