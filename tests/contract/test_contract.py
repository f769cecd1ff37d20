"""The contract ties the CRDs, the operator, the commands and the solver together; these tests hold the ties.

The CRD files stay hand-written (descriptions, CEL messages and defaults read best as YAML) and are
compared with `contract.SCHEMA` rather than generated from it: a mismatch names the field and both sides.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from marina import contract, solver
from marina.cli import build_parser
from marina.contract import Bound, Failure, FailureKind, PrepareRequest, Rule, Success, TrainRequest
from marina.controller.datasets import spec as dataset_spec
from marina.controller.shared import builders
from marina.controller.trainingjobs import spec as trainingjob_spec

CRDS = Path(__file__).resolve().parents[2] / "crds"
SIZE_KEYWORDS = {"array": ("minItems", "maxItems"), "string": ("minLength", "maxLength")}


def crd_schema(kind: str) -> dict[str, Any]:
    for path in CRDS.glob("marina.dev_*.yaml"):
        document = yaml.safe_load(path.read_text())
        if document["spec"]["names"]["kind"] == kind:
            schema: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"no CRD for {kind} in {CRDS}")


def bound_of(node: dict[str, Any], low: str, high: str) -> Bound | None:
    if low not in node and high not in node:
        return None
    return Bound(
        node.get(low),
        node.get(high),
        exclusive_minimum=bool(node.get("exclusiveMinimum")),
        exclusive_maximum=bool(node.get("exclusiveMaximum")),
    )


def rule_of(node: dict[str, Any]) -> Rule | None:
    size_keywords = SIZE_KEYWORDS.get(node.get("type", ""))
    rule = Rule(
        choices=tuple(node["enum"]) if "enum" in node else None,
        pattern=node.get("pattern"),
        bound=bound_of(node, "minimum", "maximum"),
        size=bound_of(node, *size_keywords) if size_keywords else None,
    )
    return None if rule == Rule() else rule


def stated_rules(node: dict[str, Any], path: str) -> dict[str, Rule]:
    """Every constrained field under `node`, by dotted path (`[]` for a list's items)."""
    found = {path: rule} if (rule := rule_of(node)) else {}
    for name, child in (node.get("properties") or {}).items():
        found.update(stated_rules(child, f"{path}.{name}"))
    if "items" in node:
        found.update(stated_rules(node["items"], f"{path}[]"))
    return found


def cel_rules(node: dict[str, Any]) -> set[str]:
    rules = {v["rule"] for v in node.get("x-kubernetes-validations") or []}
    for child in (node.get("properties") or {}).values():
        rules |= cel_rules(child)
    return rules


def cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


@pytest.mark.parametrize("kind", sorted(contract.SCHEMA))
def test_crd_schemas_state_exactly_the_contract(kind: str) -> None:
    stated = stated_rules(crd_schema(kind)["properties"]["spec"], "spec")
    expected = contract.SCHEMA[kind]
    assert {p: stated.get(p) for p in expected} == expected  # each contract rule, as the CRD states it
    assert set(stated) == set(expected), "the CRD constrains fields the contract does not know"


def test_crd_rules_that_tie_fields_use_the_contracts_lists() -> None:
    (only_penalty,) = set(contract.PENALTIES) - set(contract.SEARCH_PENALTIES)
    (elasticnet,) = contract.L1_RATIO_PENALTIES
    expected = {
        f"!has(self.search) || self.model.penalty != '{only_penalty}'",
        f"!has(self.search) || !has(self.search.l1Ratios) || self.model.penalty == '{elasticnet}'",
        f"!(self.penalty in {cel_list(contract.L1_PENALTIES)}) || !has(self.solver) || "
        f"self.solver in {cel_list(contract.L1_SOLVERS)}",
    }
    assert expected <= cel_rules(crd_schema("TrainingJob"))
    sources = " + ".join(f"(has(self.{kind}) ? 1 : 0)" for kind in contract.SOURCE_KINDS)
    assert f"{sources} == 1" in cel_rules(crd_schema("Dataset"))


def test_the_solver_accepts_exactly_the_contracts_choices() -> None:
    assert solver.PENALTIES == contract.PENALTIES
    assert solver.SOLVERS == contract.SOLVERS
    x, y = np.arange(12.0).reshape(6, 2), np.arange(6.0)
    for penalty in contract.PENALTIES:
        for name in contract.SOLVERS:
            works = contract.l1_solver_problem(penalty, name) is None
            if works:
                solver.LinearRegressor(penalty=penalty, solver=name, alpha=0.1).fit(x, y)
            else:
                with pytest.raises(solver.IncompatibleSolverError):
                    solver.LinearRegressor(penalty=penalty, solver=name, alpha=0.1).fit(x, y)


@pytest.mark.parametrize(
    ("bound", "inside", "outside", "text"),
    [
        (contract.SPLIT_TEST_FRACTION, [1e-9, 0.5, 0.999], [0, 1, -0.1], "(0, 1)"),
        (contract.L1_RATIO, [0, 0.5, 1], [-0.01, 1.01], "[0, 1]"),
        (contract.SYNTHETIC_MISSING, [0, 0.99], [1, -1], "[0, 1)"),
        (contract.TOL, [1e-12], [0, -1], "(0, inf)"),
        (contract.FOLDS, [2, 20], [1, 21], "[2, 20]"),
    ],
)
def test_bounds(bound: Bound, inside: list[float], outside: list[float], text: str) -> None:
    assert all(v in bound for v in inside) and not any(v in bound for v in outside)
    assert str(bound) == text and bound.problem(outside[0]) == f"must be in {text}, got {outside[0]!r}"


# --- requests: what the builders write is what the commands read ------------------------------------


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
    request = builders.prepare_request(parsed_spec, "s3://marina/datasets/ns/d", "d", rows_file)
    argv = builders.prepare_args(parsed_spec, "s3://marina/datasets/ns/d", "d", rows_file)
    assert PrepareRequest.from_args(parsed(argv)) == request
    assert request.result_file == "/dev/termination-log" and request.source == parsed_spec.source


@pytest.mark.parametrize(
    "spec", TRAININGS, ids=["defaults", "ridge", "lasso", "elasticnet-search", "qr-search"]
)
def test_train_argv_parses_back_to_the_same_request(spec: dict[str, Any]) -> None:
    parsed_spec = trainingjob_spec.parse({"dataset": {"name": "d"}, **spec})
    request = builders.train_request(
        parsed_spec, "s3://marina/datasets/ns/d/0123456789abcdef", "s3://m/o", "t"
    )
    argv = builders.train_args(parsed_spec, "s3://marina/datasets/ns/d/0123456789abcdef", "s3://m/o", "t")
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


# --- results ---------------------------------------------------------------------------------------


def test_each_failure_class_has_its_own_exit_code() -> None:
    codes = {kind: kind.exit_code for kind in FailureKind}
    assert {codes[k] for k in FailureKind if k.retryable} == {contract.EXIT_RETRYABLE}
    assert codes[FailureKind.INTERNAL] == contract.EXIT_INTERNAL
    permanent = {codes[k] for k in FailureKind if not k.retryable and k is not FailureKind.INTERNAL}
    assert permanent == {contract.EXIT_PERMANENT}
    assert len({contract.EXIT_SUCCESS, contract.EXIT_PERMANENT, contract.EXIT_INTERNAL, 75}) == 4
    assert {k for k in FailureKind if k.retryable} == {
        FailureKind.STORAGE_UNAVAILABLE,
        FailureKind.STORAGE_DENIED,
        FailureKind.STORAGE_CONFIG,
    }


@pytest.mark.parametrize("kind", list(FailureKind))
def test_a_failure_round_trips_through_its_json(kind: FailureKind) -> None:
    failure = Failure(kind, "column 'x' row 3: 'unreachable' is not a number")
    text = contract.encode(failure.to_json())
    assert contract.parse_result(text, failure.exit_code) == failure
    assert contract.parse_result(text, None) == failure  # the kind decides, not the exit code


def test_a_summary_round_trips_without_its_format() -> None:
    text = contract.encode(Success({"version": "abc", "rows": 3}).to_json())
    assert '"format":"marina.dev/result/v1"' in text
    assert contract.parse_result(text) == Success({"version": "abc", "rows": 3})
    assert contract.parse_result("") is None and contract.parse_result("  \n") is None


def test_error_kinds_of_the_job_errors() -> None:
    from marina.data.table import DataError
    from marina.jobs.train import TrainingError
    from marina.model.artifact import ArtifactError

    assert (DataError.kind, contract.SpecError.kind, TrainingError.kind, ArtifactError.kind) == (
        FailureKind.DATA,
        FailureKind.SPEC,
        FailureKind.TRAINING,
        FailureKind.DATA,
    )
    assert contract.JobError.kind is FailureKind.INTERNAL


def test_the_contract_is_pure_python() -> None:
    """The solver and the server import it: it must pull in neither numpy nor kopf."""
    code = "import sys, marina.contract; print(sorted({'numpy', 'kopf', 'minio'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(Path(contract.__file__).resolve().parents[1])}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert output.stdout.strip() == "[]"
