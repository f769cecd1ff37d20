"""A TrainingJob's spec, parsed into the exact arguments of `marina train`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina.controller.fields import Fields, InvalidSpec, Resources

PENALTIES = ("none", "l2", "l1", "elasticnet")
SOLVERS = ("auto", "normal", "qr", "cd", "gd")
SPARSE_SOLVERS = ("auto", "cd", "gd")  # the only ones that handle an l1 term


@dataclass(frozen=True)
class ModelParameters:
    penalty: str = "none"
    alpha: float = 1.0
    l1_ratio: float = 0.5
    solver: str = "auto"
    standardize: bool = False
    fit_intercept: bool = True
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


def parse(spec: Mapping[str, Any] | None) -> TrainingJobSpec:
    fields = Fields(spec)
    dataset = fields.section("dataset")
    model = _model(fields.section("model"))
    search = _search(fields.section("search"), model) if fields.has("search") else None
    return TrainingJobSpec(
        dataset=dataset.required_string("name"),
        dataset_version=dataset.string("version", pattern=r"[0-9a-f]{16}"),
        model=model,
        search=search,
        resources=fields.resources(),
        backoff_limit=fields.integer("backoffLimit", 1, minimum=0, maximum=10),
        active_deadline_seconds=fields.integer("activeDeadlineSeconds", 3600, minimum=10),
    )


def _model(model: Fields) -> ModelParameters:
    penalty = model.string("penalty", "none", choices=PENALTIES) or "none"
    solver = model.string("solver", "auto", choices=SOLVERS) or "auto"
    if penalty in ("l1", "elasticnet") and solver not in SPARSE_SOLVERS:
        raise InvalidSpec(
            model.where("solver"), f"{penalty} needs one of {', '.join(SPARSE_SOLVERS)}, got {solver!r}"
        )
    return ModelParameters(
        penalty=penalty,
        alpha=model.number("alpha", 1.0, minimum=0.0),
        l1_ratio=model.number("l1Ratio", 0.5, minimum=0.0, maximum=1.0),
        solver=solver,
        standardize=model.boolean("standardize", False),
        fit_intercept=model.boolean("fitIntercept", True),
        max_iter=model.optional_integer("maxIter", minimum=1),
        tol=model.optional_number("tol", minimum=0.0, exclusive=True),
    )


def _search(search: Fields, model: ModelParameters) -> Search:
    if model.penalty == "none":
        raise InvalidSpec(
            search.path, "needs spec.model.penalty l2, l1 or elasticnet: alpha has no effect without one"
        )
    alphas = search.numbers("alphas", minimum=0.0)
    if alphas is None:
        raise InvalidSpec(search.where("alphas"), "is required")
    l1_ratios = search.numbers("l1Ratios", minimum=0.0, maximum=1.0)
    if l1_ratios is not None and model.penalty != "elasticnet":
        raise InvalidSpec(search.where("l1Ratios"), "is only meaningful with spec.model.penalty elasticnet")
    return Search(alphas, l1_ratios, search.integer("folds", 5, minimum=2, maximum=20))
