"""Many teams on one cluster: a Marina resource never takes over, changes or deletes an object it does
not own (a name taken by a user's object is reported as NameConflict), and reads storage only from its
own namespace's area."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

SHA = "0" * 64


def own_model(marina: Any) -> dict[str, str]:
    """A model reference inside the namespace's own area (never read: the resource stops before that)."""
    return {"uri": f"s3://marina/models/{marina.namespace}/web/model-{SHA}.json", "sha256": SHA}


def model_deployment(name: str, model: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": model, "replicas": 1},
    }


def user_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def user_deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": "app", "image": "marina.local/marina:dev", "command": ["sleep", "infinity"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def untouched(body: dict[str, Any]) -> dict[str, Any]:
    """What Marina must never change on a user's object."""
    meta = body["metadata"]
    return {
        "uid": meta["uid"],
        "labels": meta.get("labels"),
        "ownerReferences": meta.get("ownerReferences"),
        "spec.selector": body["spec"]["selector"],
        "generation": meta.get("generation"),
    }


def assert_blocked_by(marina: Any, name: str, kind: str) -> None:
    ready = marina.wait_reason("modeldeployment", name, "NameConflict", timeout=60)
    assert ready["status"] == "False"
    assert f"{kind} {name} already exists and is not this ModelDeployment's" in ready["message"]
    assert "rename the ModelDeployment or remove that" in ready["message"]
    assert marina.condition("modeldeployment", name, "Stalled")["status"] == "True"
    marina.wait_for(
        "a Warning event NameConflict",
        lambda: [e for e in marina.events(name) if e["type"] == "Warning" and e["reason"] == "NameConflict"],
        timeout=30,
    )


def stays(marina: Any, kind: str, name: str, expected: dict[str, Any], seconds: float = 15) -> None:
    """The object is still there and unchanged for a while (the garbage collector works asynchronously)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert marina.exists(kind, name), f"{kind}/{name} was deleted"
        assert untouched(marina.get(kind, name)) == expected
        time.sleep(1)


def test_a_users_service_is_never_taken_over_nor_deleted(marina: Any) -> None:
    marina.apply(user_service("web"))
    before = untouched(marina.get("service", "web"))
    marina.apply(model_deployment("web", own_model(marina)))

    assert_blocked_by(marina, "web", "Service")
    assert untouched(marina.get("service", "web")) == before
    assert before["spec.selector"] == {"app": "web"} and not before["ownerReferences"]
    assert not marina.exists("deployment", "web")  # nothing is written once a name is taken

    marina.kubectl("delete", "modeldeployment", "web", "--timeout=60s")
    stays(marina, "service", "web", before)


def test_a_users_deployment_is_reported_not_rejected_and_released_once_removed(marina: Any) -> None:
    """The clash that once ended in a 422 (an immutable selector) seen only in the operator's log."""
    marina.apply(user_deployment("api"))
    before = untouched(marina.get("deployment", "api"))
    marina.apply(model_deployment("api", own_model(marina)))

    assert_blocked_by(marina, "api", "Deployment")
    assert untouched(marina.get("deployment", "api")) == before
    assert not marina.exists("service", "api")

    marina.kubectl("delete", "deployment", "api", "--timeout=60s")
    marina.wait_for(
        "the ModelDeployment to go on once the name is free",
        lambda: marina.condition("modeldeployment", "api").get("reason") not in (None, "NameConflict"),
        timeout=120,
    )
    uid = marina.get("modeldeployment", "api")["metadata"]["uid"]
    owners = marina.wait_for(
        "Marina's own Deployment api",
        lambda: (
            marina.exists("deployment", "api")
            and marina.get("deployment", "api")["metadata"].get("ownerReferences")
        ),
        timeout=60,
    )
    assert [owner["uid"] for owner in owners] == [uid]
    marina.kubectl("delete", "modeldeployment", "api", "--timeout=60s")


@pytest.mark.parametrize(
    ("kind", "name", "spec", "field"),
    [
        (
            "ModelDeployment",
            "stolen",
            {"model": {"uri": f"s3://marina/models/default/diabetes/model-{SHA}.json", "sha256": SHA}},
            "spec.model.uri",
        ),
        (
            "ModelDeployment",
            "sneaky",
            {"model": {"uri": "s3://marina/models/NS/../default/diabetes/model.json", "sha256": SHA}},
            "spec.model.uri",
        ),
        (
            "Dataset",
            "stolen-data",
            {"source": {"csv": {"uri": "s3://marina/datasets/default/diabetes/x/train.csv"}}},
            "spec.source.csv.uri",
        ),
    ],
    ids=["model-of-another-namespace", "model-by-traversal", "csv-of-another-namespace"],
)
def test_storage_of_another_namespace_is_refused_before_anything_runs(
    marina: Any, kind: str, name: str, spec: dict[str, Any], field: str
) -> None:
    spec = json.loads(json.dumps(spec).replace("/NS/", f"/{marina.namespace}/"))
    marina.apply(
        {"apiVersion": "marina.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )
    ready = marina.wait_reason(kind.lower(), name, "InvalidSpec", timeout=60)
    assert ready["message"].startswith(f"{field}: s3://")
    assert "is outside this namespace's storage area" in ready["message"]
    assert marina.condition(kind.lower(), name, "Stalled")["status"] == "True"
    selector = f"marina.dev/{kind.lower()}={name}"
    for children in ("deployments", "jobs", "pods"):
        listed = json.loads(marina.kubectl("get", children, "-l", selector, "-o", "json"))["items"]
        assert listed == [], f"{children} were created for {kind}/{name}"
