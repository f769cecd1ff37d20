"""Reconcilers against an in-memory API: Jobs created once per input, results into status, waits
and failures reported with conditions and events, rollouts and rollbacks decided from observations."""

from __future__ import annotations

import json
import socket
from typing import Any

import kopf
import pytest
from tests.controller.conftest import assert_left_to_the_recheck

from marina.contract import Failure, FailureKind, encode
from marina.controller import handlers
from marina.controller.datasets import reconcile as datasets
from marina.controller.datasets import spec as dataset_spec
from marina.controller.kube.health import Health
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import handlers as modeldeployment_handlers
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.shared import jobs, preflight, registration
from marina.controller.shared.conditions import State
from marina.controller.shared.runtime import Runtime
from marina.controller.trainingjobs import handlers as trainingjob_handlers
from marina.controller.trainingjobs import reconcile as trainingjobs
from marina.system.clock import utc_now

SHA_A, SHA_B = "a" * 64, "b" * 64
PREPARED = {
    "version": "0123456789abcdef",
    "sha256": "0123456789abcdef" + "0" * 48,
    "uri": "s3://marina/datasets/default/diabetes/0123456789abcdef",
    "rows": 442,
    "trainRows": 353,
    "testRows": 89,
    "columns": ["age", "bmi", "target"],
    "target": "target",
    "reused": False,
    "statistics": {"age": {"mean": 0.0, "std": 0.05, "min": -0.1, "max": 0.1, "missing": 0}},
}


def indexed(kube: Any, kind: str, entry: Any) -> dict[Any, list[str]]:
    """What kopf's index of `entry` holds for the objects of `kind` in the fake API."""
    index: dict[Any, list[str]] = {}
    for item in kube.list("marina.dev/v1alpha1", kind, "default"):
        for key, name in entry("default", item["metadata"]["name"], item.get("spec") or {}).items():
            index.setdefault(key, []).append(name)
    return index


def trained(sha: str) -> dict[str, Any]:
    return {
        "uri": f"s3://marina/models/default/ridge/model-{sha}.json",
        "sha256": sha,
        "metrics": {"mse": 2900.0, "rmse": 53.85, "mae": 42.8, "r2": 0.45, "n": 89},
        "bestParameters": {"alpha": 0.1},
    }


def conditions_of(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in body["status"]["conditions"]}


def test_dataset_runs_one_job_and_reports_its_result(kube: Any, settings: Settings) -> None:
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert outcome.state is State.PROGRESSING and len(kube.jobs()) == 1
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert len(kube.jobs()) == 1  # the same inputs never start a second Job
    kube.finish_job(kube.jobs()[0], json.dumps(PREPARED))
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    body = kube.current("Dataset", "diabetes")
    assert outcome.state is State.READY
    assert {k: body["status"][k] for k in ("version", "rows", "uri")} == {
        k: PREPARED[k] for k in ("version", "rows", "uri")
    }
    assert body["status"]["statistics"]["age"]["std"] == 0.05
    assert conditions_of(body)["Ready"] == ("True", "Prepared")
    assert [e[1:3] for e in kube.events] == [("Normal", "Preparing"), ("Normal", "Prepared")]


def test_changed_spec_prepares_a_new_version_and_drops_the_old_job(kube: Any, settings: Settings) -> None:
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    first = kube.jobs()[0]
    kube.finish_job(first, json.dumps(PREPARED))
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    kube.objects[("marina.dev/v1alpha1", "Dataset", "default", "diabetes")]["spec"]["split"] = {"seed": 7}
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    second = next(j for j in kube.jobs() if j != first)
    kube.finish_job(second, json.dumps({**PREPARED, "version": "fedcba9876543210"}))
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert kube.jobs() == [second]
    assert kube.current("Dataset", "diabetes")["status"]["version"] == "fedcba9876543210"


def test_served_logs_wait_for_their_deployment_then_read_only_this_namespaces_logs(
    kube: Any, settings: Settings
) -> None:
    spec = {"source": {"servedLogs": {"modelDeployment": "houses", "windowHours": 6}}, "target": "price"}
    kube.add_resource("Dataset", "served", spec)
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "served"))
    assert (outcome.state, outcome.reason) == (State.WAITING, "ModelDeploymentNotFound")
    assert outcome.message.startswith(
        "spec.source.servedLogs.modelDeployment: ModelDeployment houses not found"
    )
    assert kube.jobs() == []
    kube.add_resource("ModelDeployment", "houses", {"model": {"trainingJob": "houses"}})
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "served"))
    assert outcome.state is State.PROGRESSING
    job = kube.objects[("batch/v1", "Job", "default", kube.jobs()[0])]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    given = dict(zip(args[1::2], args[2::2], strict=False))
    assert given["--source"] == "served" and given["--target"] == "price"
    assert given["--served-logs"] == "s3://marina/logs/default/houses/"
    assert given["--served-uploads"] == "s3://marina/raw/default/feedback/houses/"
    assert (given["--served-window-hours"], given["--served-label-delay-hours"]) == ("6", "24")


def test_a_dataset_without_served_logs_keeps_the_job_digest_it_had() -> None:
    body = {"metadata": {"annotations": {"marina.dev/refresh": "r1"}}}
    spec = dataset_spec.parse(
        {"source": {"csv": {"uri": "s3://marina/raw/default/a.csv"}}, "split": {"seed": 3}}
    )
    assert datasets.inputs_digest(spec, body) == "72ca2dc32b"  # as before servedLogs existed
    served = dataset_spec.parse(
        {
            "source": {
                "csv": {"uri": "s3://marina/raw/default/a.csv"},
                "servedLogs": {"modelDeployment": "m"},
            },
            "split": {"seed": 3},
        }
    )
    assert datasets.inputs_digest(served, body) != "72ca2dc32b"


def test_invalid_spec_fails_with_a_warning_naming_the_field(kube: Any, settings: Settings) -> None:
    kube.add_resource("Dataset", "bad", {"source": {"builtin": "diabetes"}, "split": {"testFraction": 1.5}})
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "bad"))
    assert outcome.state is State.FAILED and outcome.reason == "InvalidSpec"
    assert conditions_of(kube.current("Dataset", "bad"))["Stalled"] == ("True", "InvalidSpec")
    assert (
        kube.events[0][1:3] == ("Warning", "InvalidSpec") and "spec.split.testFraction" in kube.events[0][3]
    )
    assert kube.jobs() == []
    with pytest.raises(kopf.PermanentError):
        registration.raise_for(outcome, settings)


@pytest.mark.parametrize(
    ("message", "exit_code"),
    [
        (
            encode(Failure(FailureKind.DATA, "column 'city' row 2: 'unreachable' is not a number").to_json()),
            1,
        ),
        (json.dumps({"error": "column 'city' row 2: 'unreachable' is not a number"}), 1),  # an older image
        ("Traceback (most recent call last): ... access denied: object storage at x unreachable", 1),
    ],
    ids=["data", "untyped-json", "log-tail"],
)
def test_failed_preparation_is_stalled_whatever_its_words(
    kube: Any, settings: Settings, message: str, exit_code: int
) -> None:
    kube.add_resource("Dataset", "cities", {"source": {"csv": {"uri": "s3://marina/raw/default/cities.csv"}}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "cities"))
    (job_name,) = kube.jobs()
    kube.finish_job(job_name, message, False, exit_code=exit_code)
    for _ in range(2):  # stays failed: the words "unreachable" or "access denied" never mean a retry
        outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "cities"))
        assert (outcome.state, outcome.reason) == (State.FAILED, "PrepareFailed")
        assert kube.jobs() == [job_name]
    assert "unreachable" in kube.current("Dataset", "cities")["status"]["conditions"][0]["message"]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (FailureKind.STORAGE_UNAVAILABLE, "StorageUnavailable"),
        (FailureKind.STORAGE_DENIED, "StorageAccessDenied"),
        (FailureKind.STORAGE_CONFIG, "CredentialsMissing"),
    ],
)
def test_storage_failure_retries_with_a_new_job(
    kube: Any, settings: Settings, kind: FailureKind, reason: str
) -> None:
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    kube.fail_job(kube.jobs()[0], Failure(kind, "cannot write s3://marina/x: it went wrong"))
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert (outcome.state, outcome.reason) == (State.WAITING, reason) and kube.jobs() == []
    assert outcome.message == "cannot write s3://marina/x: it went wrong; retrying with a new Job"
    assert_left_to_the_recheck(kube, "Dataset", "diabetes", outcome, settings)
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert len(kube.jobs()) == 1


def test_every_retryable_kind_has_a_reason() -> None:
    assert set(jobs.RETRY_REASONS) == {kind for kind in FailureKind if kind.retryable}


@pytest.mark.parametrize("kind", [k for k in FailureKind if not k.retryable])
def test_permanent_failures_of_a_training_are_reported_as_such(
    kube: Any, settings: Settings, kind: FailureKind
) -> None:
    ready_dataset(kube)
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}, "model": {"penalty": "l2"}})
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    (job_name,) = kube.jobs()
    kube.fail_job(job_name, Failure(kind, "it went wrong"))
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert (outcome.state, outcome.reason) == (State.FAILED, "TrainingFailed")
    assert outcome.message == f"Job {job_name}: it went wrong" and kube.jobs() == [job_name]
    assert kube.current("TrainingJob", "ridge")["status"]["phase"] == "Failed"


def test_unreachable_storage_is_detected_before_starting(kube: Any) -> None:
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(s3_endpoint=f"http://127.0.0.1:{port}", probe_storage=True)
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert (outcome.state, outcome.reason) == (State.WAITING, "StorageUnavailable")
    assert preflight.storage_problem(f"http://127.0.0.1:{port}") is not None


def ready_dataset(kube: Any, version: str = PREPARED["version"]) -> None:
    kube.add_resource(
        "Dataset",
        "diabetes",
        {"source": {"builtin": "diabetes"}},
        {"version": version, "uri": f"s3://marina/datasets/default/diabetes/{version}"},
    )


def test_trainingjob_waits_for_its_dataset_then_trains(kube: Any, settings: Settings) -> None:
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}, "model": {"penalty": "l2"}})
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert (outcome.state, outcome.reason) == (State.WAITING, "DatasetNotFound")
    ready_dataset(kube)
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    (job_name,) = kube.jobs()
    args = kube.get("batch/v1", "Job", "default", job_name)["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert args[args.index("--data") + 1] == "s3://marina/datasets/default/diabetes/0123456789abcdef"
    kube.finish_job(job_name, json.dumps(trained(SHA_A)))
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    status = kube.current("TrainingJob", "ridge")["status"]
    assert outcome.state is State.READY and status["phase"] == "Succeeded"
    assert status["metrics"] == {"mse": 2900.0, "rmse": 53.85, "mae": 42.8, "r2": 0.45}
    assert status["model"] == {"uri": trained(SHA_A)["uri"], "sha256": SHA_A}
    assert status["datasetVersion"] == "0123456789abcdef" and status["completionTime"]


def test_new_dataset_version_retrains(kube: Any, settings: Settings) -> None:
    ready_dataset(kube)
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}})
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    kube.finish_job(kube.jobs()[0], json.dumps(trained(SHA_A)))
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    kube.set_status(
        "marina.dev/v1alpha1",
        "Dataset",
        "diabetes",
        {"version": "1111111111111111", "uri": "s3://marina/datasets/default/diabetes/1111111111111111"},
    )
    index = indexed(kube, "TrainingJob", trainingjob_handlers.by_dataset)
    assert registration.followers(index, "default", "diabetes") == ["ridge"]
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert outcome.state is State.PROGRESSING and len(kube.jobs()) == 2
    # the last good model stays in status while the new one trains
    assert kube.current("TrainingJob", "ridge")["status"]["model"]["sha256"] == SHA_A


def test_pinned_dataset_version_is_used_as_given(kube: Any, settings: Settings) -> None:
    ready_dataset(kube)
    kube.add_resource(
        "TrainingJob", "pinned", {"dataset": {"name": "diabetes", "version": "2222222222222222"}}
    )
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "pinned"))
    args = kube.get("batch/v1", "Job", "default", kube.jobs()[0])["spec"]["template"]["spec"]["containers"][
        0
    ]["args"]
    assert args[args.index("--data") + 1] == "s3://marina/datasets/default/diabetes/2222222222222222"


# ModelDeployment: the fake plays the Deployment controller through these helpers.
def trained_job(kube: Any, sha: str) -> None:
    model = trained(sha)
    body = kube.get("marina.dev/v1alpha1", "TrainingJob", "default", "ridge")
    status = {"phase": "Succeeded", "model": {"uri": model["uri"], "sha256": sha}}
    if body is None:
        kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}}, status)
    else:
        kube.set_status("marina.dev/v1alpha1", "TrainingJob", "ridge", status)


def deployment_settles(kube: Any, ready: bool = True, stuck: bool = False) -> None:
    body = kube.objects[("apps/v1", "Deployment", "default", "diabetes")]
    replicas = body["spec"]["replicas"]
    progressing = {
        "type": "Progressing",
        "status": "False" if stuck else "True",
        "reason": "ProgressDeadlineExceeded" if stuck else "NewReplicaSetAvailable",
        "message": 'ReplicaSet "diabetes-x" has timed out progressing.',
    }
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas if ready else 1,
        "readyReplicas": replicas,
        "availableReplicas": replicas if ready else replicas - 1,
        "conditions": [progressing],
    }


def reconcile_md(kube: Any, settings: Settings) -> Any:
    return modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "diabetes"))


@pytest.fixture
def serving(kube: Any, settings: Settings) -> Any:
    """A ModelDeployment serving model A on 2 replicas."""
    trained_job(kube, SHA_A)
    kube.add_resource("ModelDeployment", "diabetes", {"model": {"trainingJob": "ridge"}, "replicas": 2})
    assert reconcile_md(kube, settings).reason == "RollingOut"
    deployment_settles(kube)
    assert reconcile_md(kube, settings).state is State.READY
    return kube


def test_first_rollout_creates_deployment_service_and_reports_url(serving: Any) -> None:
    status = serving.current("ModelDeployment", "diabetes")["status"]
    assert status["model"] == {"uri": trained(SHA_A)["uri"], "sha256": SHA_A, "version": SHA_A[:12]}
    assert status["url"] == "http://diabetes.default.svc.cluster.local:80"
    assert status["selector"] == "marina.dev/modeldeployment=diabetes"
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert serving.get("v1", "Service", "default", "diabetes") is not None
    assert conditions_of(serving.current("ModelDeployment", "diabetes"))["Ready"] == ("True", "Available")


def test_settled_deployment_is_not_rewritten(serving: Any, settings: Settings) -> None:
    applied = len(serving.applied)
    reconcile_md(serving, settings)
    assert len(serving.applied) == applied


def test_new_model_rolls_out_and_remembers_the_previous(serving: Any, settings: Settings) -> None:
    trained_job(serving, SHA_B)
    assert reconcile_md(serving, settings).reason == "RollingOut"
    # until the rollout completes, status.model is still the one every ready pod serves
    assert serving.current("ModelDeployment", "diabetes")["status"]["model"]["sha256"] == SHA_A
    deployment_settles(serving)
    assert reconcile_md(serving, settings).state is State.READY
    status = serving.current("ModelDeployment", "diabetes")["status"]
    assert (status["model"]["sha256"], status["previousModel"]["sha256"]) == (SHA_B, SHA_A)


def test_stuck_rollout_rolls_back_and_says_why(serving: Any, settings: Settings) -> None:
    trained_job(serving, SHA_B)
    reconcile_md(serving, settings)
    serving.add(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "diabetes-new",
                "namespace": "default",
                "labels": {"marina.dev/modeldeployment": "diabetes", "marina.dev/model-version": SHA_B[:12]},
            },
            "status": {
                "containerStatuses": [
                    {
                        "name": "marina",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "message": "sha256 mismatch"}},
                    }
                ]
            },
        }
    )
    deployment_settles(serving, ready=False, stuck=True)
    outcome = reconcile_md(serving, settings)
    assert (outcome.state, outcome.reason) == (State.DEGRADED, "RolledBack")
    deployment = serving.get("apps/v1", "Deployment", "default", "diabetes")
    assert deployment["spec"]["template"]["metadata"]["annotations"]["marina.dev/model-sha256"] == SHA_A
    status = serving.current("ModelDeployment", "diabetes")["status"]
    assert status["failedModel"]["sha256"] == SHA_B and status["failedModel"]["reason"] == "sha256 mismatch"
    assert status["model"]["sha256"] == SHA_A
    assert conditions_of(serving.current("ModelDeployment", "diabetes"))["Ready"] == ("True", "RolledBack")
    assert serving.events[-1][1:3] == ("Warning", "RolledBack") and "sha256 mismatch" in serving.events[-1][3]
    # the failed model is not tried again; the old one keeps serving, and the status stays put
    # while the Deployment converges back to the old pods and after
    events = len(serving.events)
    assert reconcile_md(serving, settings).reason == "RolledBack"
    deployment_settles(serving)
    assert reconcile_md(serving, settings).reason == "RolledBack"
    assert len(serving.events) == events
    # a newer model is tried
    trained_job(serving, "c" * 64)
    assert reconcile_md(serving, settings).reason == "RollingOut"


def test_first_rollout_that_never_gets_ready_fails(kube: Any, settings: Settings) -> None:
    trained_job(kube, SHA_A)
    kube.add_resource("ModelDeployment", "diabetes", {"model": {"trainingJob": "ridge"}})
    reconcile_md(kube, settings)
    deployment_settles(kube, ready=False, stuck=True)
    outcome = reconcile_md(kube, settings)
    assert (outcome.state, outcome.reason) == (State.FAILED, "RolloutFailed")


def test_autoscaling_adds_and_removes_an_hpa(serving: Any, settings: Settings) -> None:
    body = serving.objects[("marina.dev/v1alpha1", "ModelDeployment", "default", "diabetes")]
    body["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3}
    reconcile_md(serving, settings)
    assert serving.get("autoscaling/v2", "HorizontalPodAutoscaler", "default", "diabetes") is not None
    del body["spec"]["autoscaling"]
    reconcile_md(serving, settings)
    assert serving.get("autoscaling/v2", "HorizontalPodAutoscaler", "default", "diabetes") is None


def test_waits_for_a_model(kube: Any, settings: Settings) -> None:
    kube.add_resource("ModelDeployment", "diabetes", {"model": {"trainingJob": "ridge"}})
    assert reconcile_md(kube, settings).reason == "TrainingJobNotFound"
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}})
    assert reconcile_md(kube, settings).reason == "WaitingForModel"
    index = indexed(kube, "ModelDeployment", modeldeployment_handlers.by_training_job)
    assert registration.followers(index, "default", "ridge") == ["diabetes"]


def test_handlers_route_children_to_their_owner(kube: Any, settings: Settings) -> None:
    ready_dataset(kube)
    job = {
        "metadata": {
            "ownerReferences": [
                {
                    "apiVersion": "marina.dev/v1alpha1",
                    "kind": "Dataset",
                    "name": "diabetes",
                    "controller": True,
                }
            ]
        }
    }
    assert handlers.owner_of(job) == ("Dataset", "diabetes")
    assert (
        handlers.owner_of(
            {
                "metadata": {
                    "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "controller": True}
                    ]
                }
            }
        )
        is None
    )
    runtime = Runtime(settings, Health(60), lambda: kube)
    assert runtime.reconcile("Dataset", datasets.reconcile, "default", "gone") is None
    assert runtime.reconcile("Dataset", datasets.reconcile, "default", "diabetes") is not None


@pytest.mark.parametrize(
    ("ready", "stalled", "observed", "attention"),
    [
        ("True", "False", 2, False),
        ("False", "True", 2, False),
        ("False", "False", 2, True),
        ("True", "False", 1, True),
    ],
)
def test_recheck_only_looks_at_unsettled_objects(
    ready: str, stalled: str, observed: int, attention: bool
) -> None:
    status = {
        "observedGeneration": observed,
        "conditions": [{"type": "Ready", "status": ready}, {"type": "Stalled", "status": stalled}],
    }
    assert registration.needs_attention(status, 2) is attention
    assert registration.unsettled("default", "x", status, 2) == ({"default": "x"} if attention else {})


def test_storage_failure_waits_before_the_next_job(kube: Any, settings: Settings) -> None:
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    (job_name,) = kube.jobs()
    kube.fail_job(job_name, Failure(FailureKind.STORAGE_DENIED, "cannot read s3://m/k: access denied"))
    job = kube.objects[("batch/v1", "Job", "default", job_name)]
    job["status"]["conditions"][0]["lastTransitionTime"] = utc_now()  # it just failed
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
    assert (outcome.state, outcome.reason) == (State.WAITING, "StorageAccessDenied")
    assert kube.jobs() == [job_name]  # kept until the retry delay has passed


def test_a_result_lost_with_its_pod_is_computed_again(kube: Any, settings: Settings) -> None:
    ready_dataset(kube)
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}})
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    (job_name,) = kube.jobs()
    kube.finish_job(job_name, json.dumps(trained(SHA_A)))
    kube.delete("v1", "Pod", "default", f"{job_name}-pod")  # garbage-collected, or its node lost
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert (outcome.state, outcome.reason) == (State.WAITING, "ResultLost")
    assert kube.jobs() == []
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert kube.jobs() == [job_name]  # the same Job again, for the same input
    kube.finish_job(job_name, json.dumps(trained(SHA_A)))
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))
    assert outcome.state is State.READY


def container_args(kube: Any, job_name: str) -> list[str]:
    job = kube.get("batch/v1", "Job", "default", job_name)
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


def test_parallel_training_runs_indexed_shards_then_a_reduce(kube: Any, settings: Settings) -> None:
    ready_dataset(kube)
    kube.add_resource("TrainingJob", "wide", {"dataset": {"name": "diabetes"}, "parallelism": 3})
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    (shards,) = kube.jobs()
    spec = kube.get("batch/v1", "Job", "default", shards)["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimitPerIndex"] == 1 and spec["maxFailedIndexes"] == 0 and "backoffLimit" not in spec
    actions = [rule["action"] for rule in spec["podFailurePolicy"]["rules"]]
    assert actions[0] == "Ignore" and set(actions[1:]) == {"FailIndex"}
    (spread,) = spec["template"]["spec"]["topologySpreadConstraints"]  # shards prefer distinct nodes
    assert spread["matchLabelKeys"] == ["batch.kubernetes.io/job-name"]
    assert spread["labelSelector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    args = container_args(kube, shards)
    partials = args[args.index("--partials") + 1]
    assert args[args.index("--phase") + 1] == "shard" and args[args.index("--shards") + 1] == "3"
    assert partials.startswith("s3://marina/models/default/wide/partials/")
    assert outcome.state is State.PROGRESSING and "gathering statistics in 3 shards" in outcome.message

    kube.finish_job(
        shards, json.dumps({"partial": f"{partials}/shard-2-of-3-x.json", "format": "marina.dev/result/v1"})
    )
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    reduce = next(name for name in kube.jobs() if name != shards)
    args = container_args(kube, reduce)
    assert args[args.index("--phase") + 1] == "reduce" and args[args.index("--partials") + 1] == partials
    kube.finish_job(reduce, json.dumps(trained(SHA_A)))
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    assert (
        outcome.state is State.READY
        and kube.current("TrainingJob", "wide")["status"]["model"]["sha256"] == SHA_A
    )

    kube.objects[("marina.dev/v1alpha1", "TrainingJob", "default", "wide")]["spec"]["parallelism"] = 1
    # How, not what, is trained: no new run.
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    assert outcome.state is State.READY and len(kube.jobs()) == 2


def test_parallel_training_takes_the_qr_solver_too(kube: Any, settings: Settings) -> None:
    ready_dataset(kube)
    kube.add_resource(
        "TrainingJob", "qr", {"dataset": {"name": "diabetes"}, "parallelism": 2, "model": {"solver": "qr"}}
    )
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "qr"))
    (job_name,) = kube.jobs()
    args = container_args(kube, job_name)
    assert outcome.reason == "Training" and args[args.index("--solver") + 1] == "qr"
    assert args[args.index("--phase") + 1] == "shard"


def test_a_running_preparation_shows_its_pods_progress_until_it_ends(
    kube: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: dict[str, Any] = {}
    monkeypatch.setattr("marina.jobs.progress.read", lambda uri: reports.get(uri))
    kube.add_resource("Dataset", "big", {"source": {"synthetic": {"rows": 1000}}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "big"))
    (job_name,) = kube.jobs()
    args = container_args(kube, job_name)
    uri = args[args.index("--progress") + 1]
    assert uri == f"s3://marina/datasets/default/big/progress/{job_name}.json"
    reports[uri] = {"rows": 600, "total": 1000, "percent": 60.0, "etaSeconds": 4.0}
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "big"))
    status = kube.current("Dataset", "big")["status"]
    assert status["progress"]["percent"] == 60.0 and "(600 rows, 60.0%)" in outcome.message
    kube.finish_job(job_name, json.dumps({"format": "marina.dev/result/v1", "version": "0123456789abcdef"}))
    datasets.reconcile(kube, settings, kube.current("Dataset", "big"))
    assert kube.current("Dataset", "big")["status"].get("progress") is None


def test_running_shards_show_their_merged_progress_and_how_many_are_done(
    kube: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: dict[str, Any] = {}
    monkeypatch.setattr("marina.jobs.progress.read", lambda uri: reports.get(uri))
    ready_dataset(kube)
    kube.add_resource("TrainingJob", "wide", {"dataset": {"name": "diabetes"}, "parallelism": 2})
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    (job_name,) = kube.jobs()
    args = container_args(kube, job_name)
    uri = args[args.index("--progress") + 1]
    assert uri == f"s3://marina/models/default/wide/progress/{job_name}.json"
    reports[uri.removesuffix(".json") + "-shard-0.json"] = {"rows": 300, "total": 500, "etaSeconds": 2.0}
    reports[uri.removesuffix(".json") + "-shard-1.json"] = {"rows": 100, "total": 500, "etaSeconds": 8.0}
    job = kube.objects[("batch/v1", "Job", "default", job_name)]
    job.setdefault("status", {})["succeeded"] = 1
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    shown = kube.current("TrainingJob", "wide")["status"]["progress"]
    assert (shown["rows"], shown["total"], shown["percent"], shown["etaSeconds"]) == (400, 1000, 40.0, 8.0)
    assert (shown["shardsDone"], shown["shards"]) == (1, 2)
    assert "1 of 2 done (400 rows, 40.0%)" in outcome.message


def test_a_training_run_in_flight_keeps_its_shard_count(kube: Any, settings: Settings) -> None:
    ready_dataset(kube)
    kube.add_resource("TrainingJob", "wide", {"dataset": {"name": "diabetes"}, "parallelism": 2})
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    (shards,) = kube.jobs()
    kube.objects[("marina.dev/v1alpha1", "TrainingJob", "default", "wide")]["spec"]["parallelism"] = 3
    outcome = trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    assert kube.jobs() == [shards] and "gathering statistics in 2 shards" in outcome.message
    kube.finish_job(shards, json.dumps({"format": "marina.dev/result/v1"}))
    trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "wide"))
    reduce = next(name for name in kube.jobs() if name != shards)
    args = container_args(kube, reduce)
    assert args[args.index("--shards") + 1] == "2"  # the partial results the two shards wrote
