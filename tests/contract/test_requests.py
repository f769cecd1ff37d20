"""What the operator asks a Job to do: the argv the builders write is the request the command reads, and a
flag that carries a resource's field has that field's default and check."""

from __future__ import annotations

import argparse
import re
from typing import Any

import pytest

from marina import contract
from marina.cli import build_parser
from marina.contract import DATASET, TRAINING_JOB, PrepareRequest, SpecError, TrainRequest
from marina.controller.datasets import manifests as dataset_manifests
from marina.controller.datasets import spec as dataset_spec
from marina.controller.trainingjobs import manifests as training_manifests
from marina.controller.trainingjobs import spec as trainingjob_spec


def parsed(argv: list[str]) -> argparse.Namespace:
    return build_parser(argv).parse_args(argv)


DATASETS = [
    {"source": {"builtin": "diabetes"}},
    {"source": {"builtin": "diabetes"}, "features": ["bmi", "bp"], "target": "y", "split": {"seed": 0}},
    {"source": {"csv": {"uri": "s3://marina/raw/houses.csv.gz"}}, "cleaning": {"missing": "median"}},
    {"source": {"inline": {"columns": ["x", "target"], "rows": [[1, 2.5], [2, 3.75]]}}},
    {"source": {"synthetic": {"rows": 50, "noise": 0.25, "missing": 0.1}}, "split": {"testFraction": 1 / 3}},
]
TRAININGS = [
    {},
    {"model": {"penalty": "l2", "alpha": 0.1, "standardize": True}},
    {"model": {"penalty": "l1", "solver": "cd", "maxIter": 5000, "tol": 1e-7, "fitIntercept": False}},
    {
        "model": {"penalty": "elasticnet", "l1Ratio": 0.3},
        "search": {"alphas": [0.01, 0.1], "l1Ratios": [0.2]},
    },
    {"model": {"penalty": "l2", "solver": "qr"}, "search": {"alphas": [1e-3, 10], "folds": 7}},
]


@pytest.mark.parametrize("spec", DATASETS, ids=["builtin", "features", "csv", "inline", "synthetic"])
def test_prepare_argv_parses_back_to_the_same_request(spec: dict[str, Any]) -> None:
    parsed_spec = dataset_spec.parse(spec)
    rows_file = "/etc/marina/inline/rows.json" if parsed_spec.inline_rows is not None else None
    request = dataset_manifests.prepare_request(parsed_spec, "s3://marina/datasets/ns/d", "d", rows_file)
    argv = request.to_argv()
    assert PrepareRequest.from_args(parsed(argv)) == request
    assert request.result_file == "/dev/termination-log" and request.source == parsed_spec.source


@pytest.mark.parametrize(
    "source",
    [
        {"servedLogs": {"modelDeployment": "m", "maxRows": 5000}},
        {"builtin": "diabetes", "servedLogs": {"modelDeployment": "m"}},
    ],
    ids=["served-alone", "served-beside"],
)
def test_served_logs_travel_as_flags_and_parse_back(source: dict[str, Any]) -> None:
    parsed_spec = dataset_spec.parse({"source": source})
    prefixes = dataset_manifests.ServedPrefixes("s3://marina/logs/ns/m/", "s3://marina/raw/ns/feedback/m/")
    request = dataset_manifests.prepare_request(
        parsed_spec, "s3://marina/datasets/ns/d", "d", None, None, prefixes
    )
    argv = request.to_argv()
    assert PrepareRequest.from_args(parsed(argv)) == request
    assert request.served_logs == prefixes.logs and request.served_uploads == prefixes.uploads
    assert parsed_spec.served is not None and request.served_max_rows == parsed_spec.served.max_rows


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"source": "served"}, "--source served needs --served-logs"),
        (
            {"source": "builtin:diabetes", "served_window_hours": 6},
            "the --served-* options need --served-logs",
        ),
        (
            {"source": "served", "served_logs": "s3://b/logs/ns/m/", "served_max_rows": 10},
            "--served-max-rows",
        ),
    ],
)
def test_served_flags_are_refused_alone_or_out_of_range(options: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError, match=re.escape(words)):
        PrepareRequest(output="out", **options)


@pytest.mark.parametrize(
    "spec", TRAININGS, ids=["defaults", "ridge", "lasso", "elasticnet-search", "qr-search"]
)
def test_train_argv_parses_back_to_the_same_request(spec: dict[str, Any]) -> None:
    parsed_spec = trainingjob_spec.parse({"dataset": {"name": "d"}, **spec})
    request = training_manifests.train_request(
        parsed_spec, "s3://marina/datasets/ns/d/0123456789abcdef", "s3://m/o", "t"
    )
    argv = training_manifests.train_args(
        parsed_spec, "s3://marina/datasets/ns/d/0123456789abcdef", "s3://m/o", "t"
    )
    assert TrainRequest.from_args(parsed(argv)) == request
    model = parsed_spec.model
    assert (request.penalty, request.alpha, request.no_intercept) == (
        model.penalty,
        model.alpha,
        not model.fit_intercept,
    )
    if parsed_spec.search is not None:
        assert (request.search_alpha, request.folds) == (parsed_spec.search.alphas, parsed_spec.search.folds)


def test_defaults_are_the_same_on_both_sides() -> None:
    assert PrepareRequest.from_args(parsed(["prepare", "--source", "s", "--output", "o"])) == PrepareRequest(
        "s", "o"
    )
    assert TrainRequest.from_args(parsed(["train", "--data", "d", "--output", "o"])) == TrainRequest("d", "o")


def test_the_flags_default_to_the_resources_defaults() -> None:
    prepare, train = PrepareRequest("s", "o"), TrainRequest("d", "o")
    assert (prepare.target, prepare.test_fraction, prepare.seed, prepare.missing, prepare.max_categories) == (
        DATASET.default("spec.target"),
        DATASET.default("spec.split.testFraction"),
        DATASET.default("spec.split.seed"),
        DATASET.default("spec.cleaning.missing"),
        DATASET.default("spec.cleaning.maxCategories"),
    )
    assert (train.penalty, train.alpha, train.l1_ratio, train.solver, train.shards) == (
        TRAINING_JOB.default("spec.model.penalty"),
        TRAINING_JOB.default("spec.model.alpha"),
        TRAINING_JOB.default("spec.model.l1Ratio"),
        TRAINING_JOB.default("spec.model.solver"),
        TRAINING_JOB.default("spec.parallelism"),
    )
    assert train.tol is None and train.max_iter is None  # the solver's own defaults, not written twice


@pytest.mark.parametrize(
    ("request_type", "values", "message"),
    [
        (PrepareRequest, {"test_fraction": 1.0}, "--test-fraction: must be in (0, 1), got 1.0"),
        (PrepareRequest, {"seed": -1}, "--seed: must be in [0, inf), got -1"),
        (
            PrepareRequest,
            {"missing": "zero"},
            "--missing: must be one of drop, mean, median, fail, got 'zero'",
        ),
        (PrepareRequest, {"max_categories": 0}, "--max-categories: must be in [1, 10000], got 0"),
        (TrainRequest, {"tol": 0.0}, "--tol: must be in (0, inf), got 0.0"),
        (TrainRequest, {"max_iter": 0}, "--max-iter: must be in [1, inf), got 0"),
        (TrainRequest, {"shards": 65}, "--shards: must be in [1, 64], got 65"),
        (TrainRequest, {"penalty": "l2", "search_alpha": (1.0, -1.0)}, "--search-alpha: must be in [0, inf)"),
        (
            TrainRequest,
            {"folds": 1, "penalty": "l2", "search_alpha": (1.0,)},
            "--cv: must be in [2, 20], got 1",
        ),
    ],
)
def test_a_flag_is_checked_as_the_field_it_carries(
    request_type: type[contract.Request], values: dict[str, Any], message: str
) -> None:
    required = (
        {"source": "s", "output": "o"} if request_type is PrepareRequest else {"data": "d", "output": "o"}
    )
    with pytest.raises(SpecError) as raised:
        request_type(**required, **values)
    assert str(raised.value).startswith(message)
