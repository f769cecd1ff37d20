"""What a Job answers: failure kinds and their exit codes, and the result document's round trip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from marina import contract
from marina.contract import Failure, FailureKind, Success


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
    env = {**os.environ, "PYTHONPATH": str(Path(contract.__file__).resolve().parents[2])}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert output.stdout.strip() == "[]"
