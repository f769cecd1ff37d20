"""MinIO going away: a Dataset says so in its status and finishes by itself once MinIO is back."""

from __future__ import annotations

from typing import Any

import pytest

# Runs alone (serial): it scales MinIO to 0, and every other test's storage would go away with it.
pytestmark = pytest.mark.serial


def test_storage_outage_is_reported_and_recovers(marina: Any, cluster: Any) -> None:
    def minio_endpoints() -> str:
        return str(
            cluster.kubectl(
                "-n",
                "marina-system",
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=minio",
                "-o",
                "jsonpath={.items[*].endpoints[*].addresses[*]}",
            )
        ).strip()

    cluster.kubectl("-n", "marina-system", "scale", "deployment/minio", "--replicas=0")
    try:
        marina.wait_for("MinIO to have no endpoints", lambda: not minio_endpoints(), timeout=120)
        marina.apply(
            {
                "apiVersion": "marina.dev/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": "outage"},
                "spec": {"source": {"synthetic": {"rows": 100, "features": 2}}},
            }
        )
        waiting = marina.wait_reason("dataset", "outage", "StorageUnavailable", timeout=120)
        assert waiting["status"] == "False" and "unreachable" in waiting["message"]
        assert marina.condition("dataset", "outage", "Reconciling")["status"] == "True"
    finally:
        cluster.kubectl("-n", "marina-system", "scale", "deployment/minio", "--replicas=1")
        cluster.kubectl(
            "-n", "marina-system", "rollout", "status", "deployment/minio", "--timeout=180s", timeout=200
        )
    status = marina.wait_ready("dataset", "outage", timeout=300)
    assert status["rows"] == 100
