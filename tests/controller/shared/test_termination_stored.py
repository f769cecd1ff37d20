"""A finished Job whose pod is gone: its result is read from where its command stored it (the Job's
container names the place), so the resource becomes Ready from the Job it already ran; only a Job that
stored nothing (or a document that contradicts the Job controller) is run again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_controller_reconcilers import PREPARED, SHA_A, ready_dataset, trained

from marina.contract import Failure, FailureKind, Success, encode
from marina.controller.datasets import manifests as dataset_manifests
from marina.controller.datasets import reconcile as datasets
from marina.controller.datasets.spec import parse as parse_dataset
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders, termination
from marina.controller.shared.conditions import State
from marina.controller.shared.termination import JobPhase
from marina.controller.trainingjobs import manifests as trainingjob_manifests
from marina.controller.trainingjobs import reconcile as trainingjobs
from marina.controller.trainingjobs.spec import parse as parse_trainingjob
from marina.jobs import results

TRAINED = trained(SHA_A)


def finished(succeeded: bool) -> dict[str, Any]:
    condition = {"type": "Complete" if succeeded else "Failed", "status": "True"}
    return {"metadata": {"name": "ridge-train-0123456789"}, "status": {"conditions": [condition]}}


def pod_saying(message: str) -> dict[str, Any]:
    terminated = {"exitCode": 0, "message": message}
    return {
        "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"state": {"terminated": terminated}}]},
    }


@pytest.mark.parametrize(
    ("succeeded", "stored", "phase", "expected"),
    [
        (True, Success(TRAINED), JobPhase.SUCCEEDED, Success(TRAINED)),
        (
            False,
            Failure(FailureKind.DATA, "bad cell"),
            JobPhase.FAILED,
            Failure(FailureKind.DATA, "bad cell"),
        ),
        # A document of an earlier run that contradicts the Job controller is not believed.
        (True, Failure(FailureKind.DATA, "bad cell"), JobPhase.FAILED, None),
        (False, Success(TRAINED), JobPhase.FAILED, None),
        (True, None, JobPhase.FAILED, None),
    ],
)
def test_the_stored_result_counts_only_when_it_agrees_with_the_job(
    succeeded: bool, stored: Success | Failure | None, phase: JobPhase, expected: Success | Failure | None
) -> None:
    result = termination.job_result(finished(succeeded), [], stored)
    assert result.phase is phase
    if isinstance(expected, Success):
        assert result.summary == TRAINED
    elif isinstance(expected, Failure):
        assert result.failure == expected
    else:  # the Job controller's words, as without a stored result
        assert result.failure is not None and result.failure.kind is FailureKind.INTERNAL


def test_a_pod_that_reported_beats_the_stored_document() -> None:
    newer = {**TRAINED, "sha256": "b" * 64}
    result = termination.job_result(finished(True), [pod_saying(json.dumps(newer))], Success(TRAINED))
    assert result.summary["sha256"] == "b" * 64


def test_prepare_and_train_jobs_name_their_place_and_shards_do_not(settings: Settings) -> None:
    owner = builders.Owner("TrainingJob", "ridge", "team-a", "uid-1")
    spec = parse_trainingjob({"dataset": {"name": "diabetes"}, "parallelism": 2})
    train = trainingjob_manifests.train_job(
        settings, owner, spec, "s3://marina/datasets/team-a/d/v", "0123456789"
    )
    prefix = settings.models_prefix("team-a", "ridge")
    assert termination.result_location(train) == results.result_uri(prefix, train["metadata"]["name"])
    shards = trainingjob_manifests.shard_job(
        settings, owner, spec, "s3://marina/datasets/team-a/d/v", "0123456789"
    )
    assert termination.result_location(shards) is None  # its pods would share one key
    data_owner = builders.Owner("Dataset", "diabetes", "team-a", "uid-2")
    prepare = dataset_manifests.prepare_job(
        settings, data_owner, parse_dataset({"source": {"builtin": "diabetes"}}), "0123456789"
    )
    assert termination.result_location(prepare) == results.result_uri(
        settings.datasets_prefix("team-a", "diabetes"), prepare["metadata"]["name"]
    )


def store_for(kube: Any, job_name: str, document: Success | Failure) -> None:
    """What the Job's command did before it exited: the result stored where the Job says."""
    uri = termination.result_location(kube.get("batch/v1", "Job", "default", job_name))
    assert uri is not None
    results.store("test", encode(document.to_json()), uri)


def lose_pod(kube: Any, job_name: str, summary: dict[str, Any]) -> None:
    kube.finish_job(job_name, json.dumps(summary))
    kube.delete("v1", "Pod", "default", f"{job_name}-pod")  # garbage-collected, or its node lost


def started_training(kube: Any, settings: Settings) -> str:
    """A TrainingJob `ridge` on a Ready Dataset, its one Job created; the Job's name."""
    ready_dataset(kube)
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}})
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    (job_name,) = kube.jobs()
    return str(job_name)


def test_a_trainingjob_whose_pod_is_gone_is_ready_from_the_stored_result(
    kube: Any, settings: Settings, s3_env: Any
) -> None:
    job_name = started_training(kube, settings)
    store_for(kube, job_name, Success(TRAINED))
    lose_pod(kube, job_name, TRAINED)
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert outcome.state is State.READY
    assert kube.current("TrainingJob", "ridge")["status"]["model"] == {"uri": TRAINED["uri"], "sha256": SHA_A}
    assert f"Job/{job_name}" not in kube.deleted and kube.writes.count(f"create Job/{job_name}") == 1
    assert "ResultLost" not in {reason for _, _, reason, _ in kube.events}


def test_a_dataset_whose_pod_is_gone_is_ready_from_the_stored_result(
    kube: Any, settings: Settings, s3_env: Any
) -> None:
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    (job_name,) = kube.jobs()
    store_for(kube, job_name, Success(PREPARED))
    lose_pod(kube, job_name, PREPARED)
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert outcome.state is State.READY and kube.current("Dataset", "diabetes")["status"]["rows"] == 442
    assert kube.writes.count(f"create Job/{job_name}") == 1


def test_a_stored_failure_does_not_stand_for_a_lost_success(
    kube: Any, settings: Settings, s3_env: Any
) -> None:
    """An earlier run of the same Job left a failure; this run succeeded and its pod is gone: run again."""
    job_name = started_training(kube, settings)
    store_for(kube, job_name, Failure(FailureKind.INTERNAL, "a bug since fixed"))
    lose_pod(kube, job_name, TRAINED)
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert (outcome.state, outcome.reason) == (State.WAITING, "ResultLost")
    assert kube.jobs() == []


def test_a_failed_job_whose_pod_is_gone_keeps_its_typed_failure(
    kube: Any, settings: Settings, s3_env: Any
) -> None:
    job_name = started_training(kube, settings)
    failure = Failure(FailureKind.DATA, "training failed: too few rows (3) for 5 features")
    store_for(kube, job_name, failure)
    kube.fail_job(job_name, failure)
    kube.delete("v1", "Pod", "default", f"{job_name}-pod")
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert outcome.state is State.FAILED and failure.message in outcome.message
