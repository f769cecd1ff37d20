"""The real commands' results drive the reconcilers: a Job's container is run in-process with its own
args and environment, and its result file and exit code become the fake pod's termination message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from marina.cli import main
from marina.contract import EXIT_PERMANENT, EXIT_RETRYABLE, FailureKind, parse_result
from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.settings import Settings
from marina.controller.shared.conditions import State
from minio_server import MinioServer, free_port


def run_container(
    kube: Any, job_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: dict[str, str]
) -> tuple[int, str]:
    """What the Job's pod would do: its args, its env plus the Secret's (envFrom), its termination log."""
    job = kube.get("batch/v1", "Job", "default", job_name)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    for name, value in {**secret, "MARINA_S3_ENDPOINT": ""}.items():
        monkeypatch.setenv(name, value)
    for variable in container["env"]:
        if variable["name"].startswith("MARINA_"):
            monkeypatch.setenv(variable["name"], variable["value"])
    result_file = tmp_path / "termination-log"
    args = [str(result_file) if a == "/dev/termination-log" else a for a in container["args"]]
    code = main(args)
    return code, result_file.read_text()


def finish_with(kube: Any, job_name: str, code: int, message: str) -> None:
    kube.finish_job(job_name, message, succeeded=code == 0, exit_code=code)


def test_a_cell_reading_unreachable_is_bad_data_not_an_outage(
    kube: Any, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "cities.csv"
    # A numeric column (mostly numbers) with a cell that reads like an outage: bad data, named.
    csv.write_text("size,rooms,price\n1,unreachable,2\n2,3,3\n3,4,4\n")
    result_file = tmp_path / "result.json"
    code = main(
        [
            "prepare",
            "--source",
            str(csv),
            "--target",
            "price",
            "--output",
            str(tmp_path / "out"),
            "--result-file",
            str(result_file),
        ]
    )
    assert code == EXIT_PERMANENT and "'unreachable' is not a number" in capsys.readouterr().err
    result = parse_result(result_file.read_text(), code)
    assert result is not None and getattr(result, "kind", None) is FailureKind.DATA

    kube.add_resource("Dataset", "cities", {"source": {"csv": {"uri": "s3://marina/raw/default/cities.csv"}}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "cities"))
    (job_name,) = kube.jobs()
    finish_with(kube, job_name, code, result_file.read_text())
    for _ in range(2):
        outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "cities"))
        assert (outcome.state, outcome.reason) == (State.FAILED, "PrepareFailed") and kube.jobs() == [
            job_name
        ]
    assert "'unreachable' is not a number" in outcome.message


def test_storage_outage_exits_retryable_and_the_operator_retries_with_a_new_job(
    kube: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(s3_endpoint=f"http://127.0.0.1:{free_port()}", probe_storage=False)
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    (job_name,) = kube.jobs()
    secret = {"AWS_ACCESS_KEY_ID": "marina", "AWS_SECRET_ACCESS_KEY": "not-needed-to-fail"}
    code, message = run_container(kube, job_name, tmp_path, monkeypatch, secret)
    assert code == EXIT_RETRYABLE and "unreachable" in capsys.readouterr().err
    assert parse_result(message, code) == parse_result(message, None)  # the kind is in the message
    assert getattr(parse_result(message), "kind", None) is FailureKind.STORAGE_UNAVAILABLE

    finish_with(kube, job_name, code, message)
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert (outcome.state, outcome.reason) == (State.WAITING, "StorageUnavailable")
    assert kube.jobs() == [] and outcome.message.endswith("; retrying with a new Job")
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert len(kube.jobs()) == 1  # the same inputs, a new Job


def test_refused_credentials_exit_retryable_as_storage_denied(
    kube: Any,
    minio_server: MinioServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(s3_endpoint=minio_server.endpoint, probe_storage=False)
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    (job_name,) = kube.jobs()
    secret = {"AWS_ACCESS_KEY_ID": minio_server.access_key, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}
    code, message = run_container(kube, job_name, tmp_path, monkeypatch, secret)
    assert code == EXIT_RETRYABLE and "access denied" in capsys.readouterr().err
    assert getattr(parse_result(message), "kind", None) is FailureKind.STORAGE_DENIED
    assert "wrong-secret-value" not in message and minio_server.secret_key not in message

    finish_with(kube, job_name, code, message)
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert (outcome.state, outcome.reason) == (State.WAITING, "StorageAccessDenied")
    assert "wrong-secret-value" not in str(kube.current("Dataset", "diabetes")["status"])
