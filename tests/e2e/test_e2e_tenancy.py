"""Storage tenancy: each namespace's Jobs and model servers hold their own MinIO identity, which reaches
only that namespace's storage area; MinIO's root credentials stay in marina-system, out of reach of a
namespace's editors (who can read their own namespace's Secrets, and so its identity, and nothing more)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marina import storage
from marina.data import dataset
from marina.storage import StorageAccessDenied

KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def prepared(marina: Any, name: str = "tenant") -> dict[str, Any]:
    """A Dataset prepared in the namespace: the operator provided its credentials on the way."""
    marina.apply(
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": name},
            "spec": {"source": {"synthetic": {"rows": 50, "features": 2}}},
        }
    )
    return dict(marina.wait_ready("dataset", name, timeout=300))


@pytest.fixture(scope="module")
def tenants(marina: Any, other_marina: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return prepared(marina), prepared(other_marina)


def test_each_namespace_holds_its_own_identity_not_root(
    marina: Any, other_marina: Any, minio: Any, tenants: Any
) -> None:
    a, b = marina.credentials(minio.secret_name), other_marina.credentials(minio.secret_name)
    assert a["AWS_ACCESS_KEY_ID"] == f"marina-{marina.namespace}"
    assert b["AWS_ACCESS_KEY_ID"] == f"marina-{other_marina.namespace}"
    for held in (a, b):
        assert (
            held["AWS_ACCESS_KEY_ID"] != minio.access_key
            and held["AWS_SECRET_ACCESS_KEY"] != minio.secret_key
        )
    assert a["AWS_SECRET_ACCESS_KEY"] != b["AWS_SECRET_ACCESS_KEY"]
    secret = json.loads(marina.kubectl("get", "secret", minio.secret_name, "-o", "json"))
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "marina-operator"


@pytest.fixture
def as_namespace_a(
    marina: Any, minio: Any, storage_env: None, monkeypatch: pytest.MonkeyPatch, tenants: Any
) -> None:
    """marina.storage in the test process acts with namespace A's credentials, read from A's Secret."""
    held = marina.credentials(minio.secret_name)
    for key in KEYS:
        monkeypatch.setenv(key, held[key])


def test_a_namespace_reaches_its_own_area(marina: Any, as_namespace_a: None, tenants: Any) -> None:
    own = tenants[0]["uri"]
    assert storage.list_folder(own) == ["dataset.json"]
    assert dataset.load(own).data.train.size  # its parts, under the namespace's datasets prefix
    storage.write_bytes(f"s3://marina/raw/{marina.namespace}/mine.csv", b"x,y\n1,2\n", "text/csv")


@pytest.mark.parametrize(
    "attempt",
    [
        lambda b, uri: storage.list_folder(f"s3://marina/datasets/{b}/"),
        lambda b, uri: storage.read_bytes(f"{uri}/dataset.json"),
        lambda b, uri: storage.list_folder(f"s3://marina/raw/{b}/"),
        lambda b, uri: storage.write_bytes(f"s3://marina/raw/{b}/planted.csv", b"x,y\n1,2\n"),
        lambda b, uri: storage.list_folder("s3://marina"),
    ],
    ids=["list-b-datasets", "read-b-dataset", "list-b-uploads", "write-b-uploads", "list-bucket-root"],
)
def test_a_namespace_is_denied_another_namespaces_area(
    other_marina: Any, as_namespace_a: None, tenants: Any, attempt: Any
) -> None:
    with pytest.raises(StorageAccessDenied, match="access denied"):
        attempt(other_marina.namespace, tenants[1]["uri"])


def test_a_namespace_editor_cannot_read_the_root_credentials(marina: Any, minio: Any, tenants: Any) -> None:
    user = f"editor-{marina.namespace}"
    marina.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "tenancy-editor"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
    )

    def can(namespace: str) -> str:
        result = marina.try_kubectl(
            "auth", "can-i", "get", f"secret/{minio.secret_name}", f"--namespace={namespace}", f"--as={user}"
        )
        return str(result.stdout.strip())

    assert marina.wait_for(
        "the editor's RoleBinding to take effect", lambda: can(marina.namespace) == "yes", 30
    )
    assert can("marina-system") == "no"
