"""Credentials MinIO refuses: the Job's typed result says `storage-denied`, the operator retries with a new
Job (never giving up on the data), and the Dataset becomes Ready once the credentials are fixed, here by
deleting the namespace's Secret so the operator provides its identity anew (a new key)."""

from __future__ import annotations

import base64
import json
from typing import Any

WRONG_KEY = "not-the-key-" + "0" * 24  # not a secret: MinIO refuses it


def dataset(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {"source": {"synthetic": {"rows": 100, "features": 2}}},
    }


def test_refused_credentials_are_retried_until_the_secret_is_fixed(marina: Any, minio: Any) -> None:
    marina.apply(dataset("first"))
    marina.wait_ready("dataset", "first", timeout=300)  # the operator wrote the namespace's Secret
    secret = json.loads(marina.kubectl("get", "secret", minio.secret_name, "-o", "json"))
    assert secret["metadata"]["annotations"]["marina.dev/storage-identity"] == f"marina-{marina.namespace}"
    provided = marina.credentials(minio.secret_name)
    wrong = base64.b64encode(WRONG_KEY.encode()).decode()
    marina.kubectl(
        "patch",
        "secret",
        minio.secret_name,
        "--type=merge",
        "-p",
        json.dumps({"data": {"AWS_SECRET_ACCESS_KEY": wrong}}),
    )  # still Marina's, now wrong

    marina.apply(dataset("refused"))
    waiting = marina.wait_reason("dataset", "refused", "StorageAccessDenied", timeout=180)
    assert waiting["status"] == "False" and "retrying" in waiting["message"]
    assert marina.condition("dataset", "refused", "Reconciling")["status"] == "True"
    assert marina.condition("dataset", "refused", "Stalled")["status"] == "False"
    shown = json.dumps([marina.get("dataset", "refused"), marina.events("refused")])
    assert minio.secret_key not in shown and provided["AWS_SECRET_ACCESS_KEY"] not in shown

    marina.kubectl("delete", "secret", minio.secret_name)  # the operator provides a new key
    status = marina.wait_ready("dataset", "refused", timeout=300)
    assert status["rows"] == 100
    renewed = marina.credentials(minio.secret_name)
    assert renewed["AWS_ACCESS_KEY_ID"] == provided["AWS_ACCESS_KEY_ID"]
    assert renewed["AWS_SECRET_ACCESS_KEY"] not in (WRONG_KEY, provided["AWS_SECRET_ACCESS_KEY"])
