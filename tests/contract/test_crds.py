"""Every spec fact is written once, in marina/contract/kinds.py: the committed CRDs and field reference are
exactly what it generates, and an edit of one default and one range there reaches the CRD, the
controller's spec parser, the commands' flags and the reference, with nothing else changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from marina import contract, solver
from marina.contract import DATASET, KINDS, TRAINING_JOB, Bound, crds, reference
from marina.contract.schema import Array, Integer, Number, Object, String

REPO = Path(__file__).resolve().parents[2]
OPERATOR = REPO / "operator"


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.kind)
def test_the_committed_crd_is_what_the_contract_generates(kind: contract.schema.Kind) -> None:
    committed = (REPO / "crds" / crds.file_name(kind)).read_text()
    assert committed == crds.render(kind), "crds/ is out of date: run `make crds`"


def test_the_committed_reference_is_what_the_contract_generates() -> None:
    assert (REPO / "docs" / "reference.md").read_text() == reference.render(), "run `make crds`"


def test_the_crds_are_listed_in_the_kustomization() -> None:
    listed = yaml.safe_load((REPO / "crds" / "kustomization.yaml").read_text())["resources"]
    assert {crds.file_name(kind) for kind in KINDS} <= set(listed)


def cel_rules(node: dict[str, Any]) -> set[str]:
    rules = {v["rule"] for v in node.get("x-kubernetes-validations") or []}
    for child in (node.get("properties") or {}).values():
        rules |= cel_rules(child)
    return rules


def cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def test_crd_rules_that_tie_fields_use_the_contracts_lists() -> None:
    (only_penalty,) = set(contract.PENALTIES) - set(contract.SEARCH_PENALTIES)
    (elasticnet,) = contract.L1_RATIO_PENALTIES
    expected = {
        f"!has(self.search) || self.model.penalty != '{only_penalty}'",
        f"!has(self.search) || !has(self.search.l1Ratios) || self.model.penalty == '{elasticnet}'",
        f"!(self.penalty in {cel_list(contract.L1_PENALTIES)}) || !has(self.solver) || "
        f"self.solver in {cel_list(contract.L1_SOLVERS)}",
    }
    assert expected <= cel_rules(crds.root_schema(TRAINING_JOB)["properties"]["spec"])
    sources = " + ".join(f"(has(self.{kind}) ? 1 : 0)" for kind in contract.SOURCE_KINDS)
    served = f"{sources} == 1 || ({sources} == 0 && has(self.{contract.SERVED_LOGS}))"
    assert served in cel_rules(crds.root_schema(DATASET)["properties"]["spec"])


def test_every_default_is_allowed_by_its_own_field() -> None:
    for kind in KINDS:
        for path, field in kind.fields():
            if field.has_default and not isinstance(field, Object):
                assert field.problem(field.default) is None, f"{kind.kind} {path}"


def test_the_solver_accepts_exactly_the_contracts_choices_and_ranges() -> None:
    assert solver.PENALTIES == contract.PENALTIES and solver.SOLVERS == contract.SOLVERS
    x, y = np.arange(12.0).reshape(6, 2), np.arange(6.0)
    for penalty in contract.PENALTIES:
        for name in contract.SOLVERS:
            if contract.l1_solver_problem(penalty, name) is None:
                solver.LinearRegressor(penalty=penalty, solver=name, alpha=0.1).fit(x, y)
            else:
                with pytest.raises(solver.IncompatibleSolverError):
                    solver.LinearRegressor(penalty=penalty, solver=name, alpha=0.1).fit(x, y)
    with pytest.raises(solver.InvalidParameterError):  # the contract says tol > 0; so does the solver
        solver.LinearRegressor(tol=0.0)
    defaults = solver.LinearRegressor().get_params()
    assert (defaults["penalty"], defaults["alpha"], defaults["l1_ratio"], defaults["solver"]) == tuple(
        TRAINING_JOB.default(f"spec.model.{name}") for name in ("penalty", "alpha", "l1Ratio", "solver")
    )


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (Integer(bound=Bound(1, 64)), 65, "must be in [1, 64], got 65"),
        (Integer(bound=Bound(1, 64)), 2.0, "must be an integer, got 2.0"),
        (Integer(), True, "must be an integer, got True"),
        (
            Number(bound=Bound(0, 1, exclusive_minimum=True, exclusive_maximum=True)),
            1,
            "must be in (0, 1), got 1",
        ),
        (Number(), float("nan"), "must be a number, got nan"),
        (String(enum=("a", "b")), "c", "must be one of a, b, got 'c'"),
        (String(pattern=r"^[0-9a-f]{4}$"), "xyz0", "'xyz0' does not match ^[0-9a-f]{4}$"),
        (String(), " ", "must be a non-empty string, got ' '"),
    ],
)
def test_a_field_names_the_problem_with_a_value(
    field: contract.schema.Field, value: Any, problem: str
) -> None:
    assert field.problem(value) == problem
    with pytest.raises(contract.SpecError, match=r"^--flag: "):
        field.check("--flag", value)


# --- one edit of the contract reaches everything --------------------------------------------------------

PROBE = """
import json, sys
from marina.contract import DATASET, TRAINING_JOB, PrepareRequest, TrainRequest, SpecError, crds, reference
from marina.controller.datasets import spec as dataset_spec
from marina.controller.shared.fields import InvalidSpec
from marina.controller.trainingjobs import spec as trainingjob_spec
from marina.cli import build_parser

def refused(action):
    try:
        action()
    except (SpecError, InvalidSpec) as error:
        return str(error)
    return None

dataset_crd = crds.root_schema(DATASET)["properties"]["spec"]
training_crd = crds.root_schema(TRAINING_JOB)["properties"]["spec"]
help_text = build_parser(["prepare"])._subparsers._group_actions[0].choices["prepare"].format_help()
print(json.dumps({
    "crd_seed": dataset_crd["properties"]["split"]["properties"]["seed"]["default"],
    "crd_parallelism": training_crd["properties"]["parallelism"]["maximum"],
    "parsed_seed": dataset_spec.parse({"source": {"builtin": "diabetes"}}).seed,
    "parser_refuses": refused(lambda: trainingjob_spec.parse({"dataset": {"name": "d"}, "parallelism": 40})),
    "flag_seed": PrepareRequest("s", "o").seed,
    "flag_refuses": refused(lambda: TrainRequest("d", "o", shards=40)),
    "help": " ".join(help_text.split()),
    "reference": reference.render(),
}))
"""


def probe(package: Path) -> dict[str, Any]:
    environment = {"PYTHONPATH": str(package), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=environment, check=True
    )
    return dict(json.loads(done.stdout))


def test_one_edit_of_the_contract_reaches_crd_parser_flags_and_reference(tmp_path: Path) -> None:
    """The split's seed default 42 becomes 43 and parallelism's maximum 64 becomes 32, each by editing one
    literal in kinds.py; the CRD, the spec parsers, the CLI and the reference all follow."""
    copy = tmp_path / "operator"
    shutil.copytree(OPERATOR / "marina", copy / "marina", ignore=shutil.ignore_patterns("__pycache__"))
    kinds = copy / "marina" / "contract" / "kinds.py"
    text = kinds.read_text()
    seed = "default=42,\n                        bound=SEED,"
    parallelism = "SHARDS = Bound(1, 64)"
    assert text.count(seed) == 1 and text.count(parallelism) == 1, "the literals are written once"
    kinds.write_text(
        text.replace(seed, seed.replace("42", "43")).replace(parallelism, parallelism.replace("64", "32"))
    )

    before, after = probe(OPERATOR), probe(copy)
    assert (before["crd_seed"], before["crd_parallelism"], before["parsed_seed"], before["flag_seed"]) == (
        42,
        64,
        42,
        42,
    )
    assert before["parser_refuses"] is None and before["flag_refuses"] is None
    assert (after["crd_seed"], after["crd_parallelism"], after["parsed_seed"], after["flag_seed"]) == (
        43,
        32,
        43,
        43,
    )
    assert after["parser_refuses"] == "spec.parallelism: must be in [1, 32], got 40"
    assert after["flag_refuses"] == "--shards: must be in [1, 32], got 40"
    assert "seed of the train/test split (default: 42)" in before["help"]
    assert "seed of the train/test split (default: 43)" in after["help"]
    assert "| `spec.split.seed` | integer | `43` | in [0, inf) |" in after["reference"]
    assert "| `spec.parallelism` | integer | `1` | in [1, 32] |" in after["reference"]
    assert isinstance(TRAINING_JOB.at("spec.search.alphas"), Array)
