"""A command's result document is also stored where `$MARINA_RESULT_URI` says, so it outlives the pod;
storing never fails a finished command, and reading back takes only documents of the result contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marina.contract import (
    EXIT_PERMANENT,
    EXIT_SUCCESS,
    RESULT_FORMAT,
    Failure,
    FailureKind,
    JobError,
    Success,
)
from marina.jobs import results
from marina.storage import StorageUnavailable

SUMMARY = {"uri": "s3://marina/models/team-a/ridge/model-abc.json", "sha256": "a" * 64, "r2": 0.45}


class Unusable(JobError):
    kind = FailureKind.DATA


def succeed() -> dict[str, Any]:
    return dict(SUMMARY)


def fail_with(error: Exception) -> Any:
    def work() -> dict[str, Any]:
        raise error

    return work


@pytest.fixture
def stored_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "models" / "ridge" / "results" / "ridge-train-0123456789.json"
    monkeypatch.setenv(results.RESULT_URI_ENV, str(where))
    return where


def test_a_success_is_stored_as_the_same_document_as_the_termination_message(
    stored_at: Path, tmp_path: Path
) -> None:
    termination = tmp_path / "termination-log"
    assert results.run_command("train", succeed, (), str(termination)) == EXIT_SUCCESS
    assert stored_at.read_text() == termination.read_text()
    assert json.loads(stored_at.read_text())["format"] == RESULT_FORMAT
    assert results.read_stored(str(stored_at)) == Success(SUMMARY)


def test_a_permanent_failure_is_stored_with_its_kind(stored_at: Path, tmp_path: Path) -> None:
    code = results.run_command("prepare", fail_with(Unusable("column y is missing")), (), None)
    assert code == EXIT_PERMANENT
    assert results.read_stored(str(stored_at)) == Failure(FailureKind.DATA, "column y is missing")


def test_a_failure_of_storage_itself_is_not_stored(stored_at: Path) -> None:
    code = results.run_command("train", fail_with(StorageUnavailable("MinIO unreachable")), (), None)
    assert code == FailureKind.STORAGE_UNAVAILABLE.exit_code
    assert not stored_at.exists()


def test_an_unwritable_place_never_fails_a_finished_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(results.RESULT_URI_ENV, str(blocker / "result.json"))
    termination = tmp_path / "termination-log"
    assert results.run_command("train", succeed, (), str(termination)) == EXIT_SUCCESS
    assert json.loads(termination.read_text())["sha256"] == SUMMARY["sha256"]
    assert "result not stored" in capsys.readouterr().err


def test_without_a_place_nothing_is_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(results.RESULT_URI_ENV, raising=False)
    assert results.run_command("train", succeed, (), None) == EXIT_SUCCESS
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [None, "not json", '{"uri": "s3://x/y", "sha256": "a"}', '{"format": "marina.dev/progress/v1"}', "[1]"],
)
def test_reading_a_missing_or_foreign_object_is_none(tmp_path: Path, content: str | None) -> None:
    """Only the result contract's own documents count: a progress report or a bare summary is not one."""
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    assert results.read_stored(str(path)) is None


def test_the_key_is_under_the_resource_prefix_by_job_name() -> None:
    prefix = "s3://marina/models/team-a/ridge"
    assert results.result_uri(prefix, "ridge-train-01") == f"{prefix}/results/ridge-train-01.json"


def test_stored_in_s3_and_read_back(s3_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "s3://marina-results/models/team-a/ridge/results/ridge-train-01.json"
    monkeypatch.setenv(results.RESULT_URI_ENV, uri)
    assert results.run_command("train", succeed, (), None) == EXIT_SUCCESS
    assert results.read_stored(uri) == Success(SUMMARY)
    assert results.read_stored(uri.replace("01.json", "02.json")) is None  # not found is None
