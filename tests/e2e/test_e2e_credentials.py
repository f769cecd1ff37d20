"""Credentials MinIO refuses: the Job's typed result says `storage-denied`, the operator retries with a new
Job (never giving up on the data), and the Dataset becomes Ready once the Secret is fixed."""

from __future__ import annotations

import json
from typing import Any


def put_secret(marina: Any, minio: Any, secret_key: str) -> None:
    """Through stdin, so the key never appears in a process list."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": minio.secret_name, "namespace": marina.namespace},
        "stringData": {"AWS_ACCESS_KEY_ID": minio.access_key, "AWS_SECRET_ACCESS_KEY": secret_key},
    }
    marina.kubectl("apply", "-f", "-", stdin=json.dumps(secret))


def test_refused_credentials_are_retried_until_the_secret_is_fixed(marina: Any, minio: Any) -> None:
    put_secret(marina, minio, "not-the-key-" + "0" * 24)
    marina.apply(
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "refused"},
            "spec": {"source": {"synthetic": {"rows": 100, "features": 2}}},
        }
    )
    waiting = marina.wait_reason("dataset", "refused", "StorageAccessDenied", timeout=180)
    assert waiting["status"] == "False" and "retrying" in waiting["message"]
    assert marina.condition("dataset", "refused", "Reconciling")["status"] == "True"
    assert marina.condition("dataset", "refused", "Stalled")["status"] == "False"
    assert minio.secret_key not in json.dumps(marina.get("dataset", "refused"))
    put_secret(marina, minio, minio.secret_key)
    status = marina.wait_ready("dataset", "refused", timeout=300)
    assert status["rows"] == 100
