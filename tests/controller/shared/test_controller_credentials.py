"""Each namespace's storage credentials: the operator writes its identity's Secret before the first Job
or server pod, replaces deploy.sh's old copy of the root credentials, never touches anyone else's Secret,
and never lets a key reach a status or an event."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from test_controller_reconcilers import SHA_A, conditions_of, deployment_settles, ready_dataset, trained_job
from tests.controller.conftest import assert_left_to_the_recheck

from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.health import Health
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.shared import credentials
from marina.controller.shared.conditions import Outcome, State
from marina.controller.shared.runtime import Runtime
from marina.controller.trainingjobs import reconcile as trainingjobs
from marina.storage import Credentials, StorageAccessDenied, StorageError, StorageUnavailable

SECRET = "marina-s3-credentials"
ROOT = Credentials(
    "minio-root", "root-secret-value"
)  # the fake identities' root (tests/controller/conftest.py)


def stored_secret(kube: Any) -> dict[str, Any]:
    found = kube.get("v1", "Secret", "default", SECRET)
    assert found is not None
    return found


def held(kube: Any) -> Credentials | None:
    return credentials.credentials_of(stored_secret(kube))


def put_secret(kube: Any, labels: dict[str, str], held: Credentials, **annotations: str) -> None:
    kube.delete("v1", "Secret", "default", SECRET)
    kube.writes.clear()
    kube.add(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": SECRET,
                "namespace": "default",
                "labels": labels,
                "annotations": annotations,
            },
            "data": {
                "AWS_ACCESS_KEY_ID": base64.b64encode(held.access_key.encode()).decode(),
                "AWS_SECRET_ACCESS_KEY": base64.b64encode(held.secret_key.encode()).decode(),
            },
        }
    )


def start_dataset(kube: Any, settings: Settings) -> Outcome:
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    return datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))


def start_training(kube: Any, settings: Settings) -> Outcome:
    ready_dataset(kube)
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}})
    return trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "ridge"))


def start_serving(kube: Any, settings: Settings) -> Outcome:
    trained_job(kube, SHA_A)
    kube.add_resource("ModelDeployment", "diabetes", {"model": {"trainingJob": "ridge"}})
    return modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "diabetes"))


STARTS: dict[str, tuple[str, Callable[[Any, Settings], Outcome], str]] = {
    "dataset": ("Dataset", start_dataset, "create Job/diabetes-prepare-"),
    "trainingjob": ("TrainingJob", start_training, "create Job/ridge-train-"),
    "modeldeployment": ("ModelDeployment", start_serving, "create Deployment/diabetes"),
}


def assert_no_key_shown(kube: Any, identities: Any) -> None:
    shown = json.dumps([[o.get("status") for o in kube.objects.values()], kube.events])
    for secret_key in [ROOT.secret_key, *identities.users.values()]:
        assert secret_key not in shown


@pytest.mark.parametrize("start", STARTS, ids=list(STARTS))
def test_the_secret_is_written_before_the_first_pod_that_needs_it(
    kube: Any, settings: Settings, identities: Any, start: str
) -> None:
    kube.delete("v1", "Secret", "default", SECRET)
    kube.writes.clear()
    _, begin, first_pod = STARTS[start]
    outcome = begin(kube, settings)
    assert outcome.state is State.PROGRESSING, outcome
    pod_write = next(i for i, w in enumerate(kube.writes) if w.startswith(first_pod))
    assert kube.writes.index(f"create Secret/{SECRET}") < pod_write
    secret = stored_secret(kube)
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "marina-operator"
    assert secret["metadata"]["annotations"] == {"marina.dev/storage-identity": "marina-default"}
    assert "ownerReferences" not in secret["metadata"]  # the namespace's, not one resource's
    assert held(kube) == Credentials("marina-default", identities.users["marina-default"])
    assert identities.calls == [("default", None)]
    assert_no_key_shown(kube, identities)


def test_an_existing_secret_is_reused_and_a_lost_user_recreated_with_its_key(
    kube: Any, settings: Settings, identities: Any
) -> None:
    before = held(kube)
    assert before is not None
    identities.users.clear()  # MinIO's volume was reset
    start_dataset(kube, settings)
    assert identities.calls == [("default", before)]
    assert held(kube) == before and identities.users == {"marina-default": before.secret_key}
    assert not [w for w in kube.writes if "Secret" in w] and len(kube.jobs()) == 1


def test_a_deleted_secret_gets_a_new_key(kube: Any, settings: Settings, identities: Any) -> None:
    before = held(kube)
    kube.delete("v1", "Secret", "default", SECRET)
    start_dataset(kube, settings)
    after = held(kube)
    assert after is not None and before is not None and not after.same_as(before)
    assert identities.users["marina-default"] == after.secret_key


def test_deploy_scripts_copy_of_the_root_credentials_is_replaced(
    kube: Any, settings: Settings, identities: Any
) -> None:
    put_secret(kube, {"app.kubernetes.io/part-of": "marina"}, ROOT)
    start_dataset(kube, settings)
    secret, now = stored_secret(kube), held(kube)
    assert now is not None and now.access_key == "marina-default" and not now.same_as(ROOT)
    assert credentials.is_ours(secret) and kube.writes[0] == f"apply Secret/{SECRET}"
    assert identities.calls == [("default", None)] and len(kube.jobs()) == 1
    assert_no_key_shown(kube, identities)


@pytest.mark.parametrize(
    ("labels", "data", "annotations"),
    [
        ({}, Credentials("team-user", "team-key"), {}),
        ({}, ROOT, {}),  # the root credentials, but not deploy.sh's copy: someone's own
        ({"app.kubernetes.io/part-of": "marina"}, Credentials("team-user", "team-key"), {}),
        ({"app.kubernetes.io/managed-by": "marina-operator"}, Credentials("team-user", "team-key"), {}),
        ({}, Credentials("marina-default", "team-key"), {"marina.dev/storage-identity": "marina-default"}),
    ],
    ids=["users", "root-unlabelled", "part-of-other-data", "label-no-annotation", "annotation-no-label"],
)
def test_someone_elses_secret_is_left_alone_and_blocks(
    kube: Any,
    settings: Settings,
    identities: Any,
    labels: dict[str, str],
    data: Credentials,
    annotations: dict[str, str],
) -> None:
    put_secret(kube, labels, data, **annotations)
    before = stored_secret(kube)
    for kind, begin, _ in STARTS.values():
        outcome = begin(kube, settings)
        assert (outcome.state, outcome.reason) == (State.BLOCKED, "NameConflict"), outcome
        assert f"Secret {SECRET} already exists in namespace default and is not Marina's" in outcome.message
        name = "ridge" if kind == "TrainingJob" else "diabetes"
        assert conditions_of(kube.current(kind, name))["Stalled"] == ("True", "NameConflict")
        assert ("Warning", "NameConflict") in [(e[1], e[2]) for e in kube.events if e[0] == name]
    assert stored_secret(kube) == before and identities.calls == []
    assert [w for w in kube.writes if "Job" in w or "Deployment" in w or "Secret" in w] == []
    assert_no_key_shown(kube, identities)


@pytest.mark.parametrize(
    "error",
    [
        StorageUnavailable(
            "cannot provision the storage identity marina-default: object storage answered 503"
        ),
        StorageAccessDenied(
            "cannot provision the storage identity marina-default: access denied (AccessDenied)"
        ),
    ],
    ids=["unavailable", "denied"],
)
@pytest.mark.parametrize("start", STARTS, ids=list(STARTS))
def test_a_failed_provisioning_waits_warns_and_is_retried(
    kube: Any, settings: Settings, identities: Any, start: str, error: StorageError
) -> None:
    kube.delete("v1", "Secret", "default", SECRET)
    kube.writes.clear()
    identities.failing = error
    kind, begin, first_pod = STARTS[start]
    outcome = begin(kube, settings)
    assert (outcome.state, outcome.reason) == (State.WAITING, "StorageIdentityFailed")
    assert str(error) in outcome.message and outcome.message.endswith("retrying every 20s")
    assert not [w for w in kube.writes if w.startswith((first_pod, "create Secret"))]
    name = "ridge" if kind == "TrainingJob" else "diabetes"
    assert_left_to_the_recheck(kube, kind, name, outcome, settings)
    assert ("Warning", "StorageIdentityFailed") in [(e[1], e[2]) for e in kube.events if e[0] == name]
    identities.failing = None
    reconcile = {"Dataset": datasets.reconcile, "TrainingJob": trainingjobs.reconcile}.get(
        kind, modeldeployments.reconcile
    )
    outcome = (
        Runtime(settings, Health(60), lambda: kube).reconcile(kind, reconcile, "default", name) or outcome
    )
    assert outcome.state is State.PROGRESSING and any(w.startswith(first_pod) for w in kube.writes)
    assert_no_key_shown(kube, identities)


def test_a_serving_deployment_is_not_disturbed_when_the_admin_api_is_away(
    kube: Any, settings: Settings, identities: Any
) -> None:
    start_serving(kube, settings)
    deployment_settles(kube)
    identities.failing = StorageUnavailable("object storage answered 503")
    outcome = modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "diabetes"))
    assert (outcome.state, outcome.reason) == (State.READY, "Available")
