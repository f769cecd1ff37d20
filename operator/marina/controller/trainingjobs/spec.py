"""A TrainingJob's spec, parsed into the exact arguments of `marina train`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marina import contract
from marina.contract import L1_RATIO_PENALTIES, SEARCH_PENALTIES, TRAINING_JOB
from marina.controller.shared.fields import Fields, InvalidSpec, Resources, keep_last


def _default(path: str) -> Any:
    """The contract's default of `spec.<path>` (marina.contract.kinds), the one place it is written."""
    return TRAINING_JOB.default(f"spec.{path}")


@dataclass(frozen=True)
class ModelParameters:
    penalty: str = _default("model.penalty")
    alpha: float = _default("model.alpha")
    l1_ratio: float = _default("model.l1Ratio")
    solver: str = _default("model.solver")
    standardize: bool = _default("model.standardize")
    fit_intercept: bool = _default("model.fitIntercept")
    max_iter: int | None = None
    tol: float | None = None


@dataclass(frozen=True)
class Search:
    alphas: tuple[float, ...]
    l1_ratios: tuple[float, ...] | None
    folds: int


@dataclass(frozen=True)
class TrainingJobSpec:
    dataset: str
    dataset_version: str | None  # None: follow the Dataset's latest version
    model: ModelParameters
    search: Search | None
    resources: Resources
    backoff_limit: int
    active_deadline_seconds: int
    # Not inputs of the training: out of repr, so out of the Job's digest (builders.short_hash). Shards
    # change how the statistics are gathered, not the model (equal to 1e-10), so they do not retrain.
    keep_last: int | None = field(default=None, repr=False)
    parallelism: int = field(default=_default("parallelism"), repr=False)


def parse(spec: Mapping[str, Any] | None) -> TrainingJobSpec:
    fields = Fields(spec, TRAINING_JOB.spec)
    dataset = fields.section("dataset")
    model = _model(fields.section("model"))
    search = _search(fields.section("search"), model) if fields.has("search") else None
    return TrainingJobSpec(
        dataset=dataset.required_string("name"),
        dataset_version=dataset.string("version"),
        model=model,
        search=search,
        resources=fields.resources(),
        backoff_limit=fields.integer("backoffLimit"),
        active_deadline_seconds=fields.integer("activeDeadlineSeconds"),
        keep_last=keep_last(fields),
        parallelism=_parallelism(fields),
    )


def _parallelism(fields: Fields) -> int:
    """Any solver shards: the statistics merge, and `qr` (or `auto` on an ill-conditioned design) reads
    the train rows again in the reduce for its R factor and refinement, as one pod would."""
    return fields.integer("parallelism")


def _model(model: Fields) -> ModelParameters:
    penalty = model.required_string("penalty")
    solver = model.required_string("solver")
    problem = contract.l1_solver_problem(penalty, solver)
    if problem:
        raise InvalidSpec(model.where("solver"), problem)
    return ModelParameters(
        penalty=penalty,
        alpha=model.number("alpha"),
        l1_ratio=model.number("l1Ratio"),
        solver=solver,
        standardize=model.boolean("standardize"),
        fit_intercept=model.boolean("fitIntercept"),
        max_iter=model.optional_integer("maxIter"),
        tol=model.optional_number("tol"),
    )


def _search(search: Fields, model: ModelParameters) -> Search:
    if model.penalty not in SEARCH_PENALTIES:
        raise InvalidSpec(
            search.path,
            f"needs spec.model.penalty {contract.either(SEARCH_PENALTIES)}: alpha has no effect without one",
        )
    alphas = search.numbers("alphas")
    if alphas is None:
        raise InvalidSpec(search.where("alphas"), "is required")
    l1_ratios = search.numbers("l1Ratios")
    if l1_ratios is not None and model.penalty not in L1_RATIO_PENALTIES:
        raise InvalidSpec(search.where("l1Ratios"), "is only meaningful with spec.model.penalty elasticnet")
    return Search(alphas, l1_ratios, search.integer("folds"))
