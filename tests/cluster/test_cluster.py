"""The cluster itself works: a Ready node, Jobs from locally built images, Service DNS and MinIO from pods.

Every workload here runs as the operator's will: non-root, read-only root file system, image from the
node (no registry), so a failure here points at the cluster or the images, not at Marina's logic.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

import marina
from marina import storage

VERSIONS = Path(__file__).resolve().parents[2] / "hack" / "lib" / "versions.sh"
WAIT_SECONDS = 180
MARINA_IMAGE = "marina.local/marina:dev"
# The labels the operator gives its Jobs' pods: MinIO's NetworkPolicy (manifests/network, applied by
# hack/deploy.sh) admits only pods carrying them, and the e2e tests may have deployed it before these run.
MARINA_POD_LABELS = {"app.kubernetes.io/name": "marina", "app.kubernetes.io/managed-by": "marina-operator"}

# Resolves MinIO by its Service name, then writes and reads back an object through marina.storage.
ROUNDTRIP_SCRIPT = """
import os, socket, sys
from urllib.parse import urlparse
import marina
from marina import storage
host = urlparse(os.environ["MARINA_S3_ENDPOINT"]).hostname
print("resolved", host, socket.gethostbyname(host))
uri = sys.argv[1]
storage.write_bytes(uri, sys.argv[2].encode())
print("read back", storage.read_bytes(uri).decode())
"""


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Polls `condition` until it returns something truthy; fails the test naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def restricted_container(name: str, args: list[str], command: list[str] | None = None) -> dict[str, Any]:
    """A container as Marina runs them: non-root, read-only root, only /tmp writable, image from the node."""
    return {
        "name": name,
        "image": MARINA_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        **({"command": command} if command else {}),
        "args": args,
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def run_job(kube: ApiClient, namespace: str, container: dict[str, Any], env_secret: str | None = None) -> str:
    """Runs one Job to completion and returns its pod's log; fails with the pod's state otherwise."""
    name = f"check-{uuid.uuid4().hex[:6]}"
    if env_secret:
        container = {**container, "envFrom": [{"secretRef": {"name": env_secret}}]}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": MARINA_POD_LABELS},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    batch, core = client.BatchV1Api(kube), client.CoreV1Api(kube)
    batch.create_namespaced_job(namespace, job)

    def finished() -> str | None:
        status = batch.read_namespaced_job_status(name, namespace).status
        return "succeeded" if status.succeeded else "failed" if status.failed else None

    outcome = wait_until(finished, f"Job {namespace}/{name}")
    pod = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items[0]
    log = str(core.read_namespaced_pod_log(pod.metadata.name, namespace))
    assert outcome == "succeeded", f"Job {name} failed: {pod.status.container_statuses}\n{log}"
    return log


def test_node_is_ready(kube: ApiClient) -> None:
    nodes = client.CoreV1Api(kube).list_node().items
    assert nodes, "the cluster has no nodes"
    ready = {
        node.metadata.name: next(c.status for c in node.status.conditions if c.type == "Ready")
        for node in nodes
    }
    assert "True" in ready.values(), f"no node is Ready: {ready}"


def test_api_server_reports_its_release(kube: ApiClient, cluster: Any) -> None:
    version = client.VersionApi(kube).get_code().git_version
    assert re.fullmatch(r"v1\.\d+\.\d+.*", version), f"unstamped build: {version}"
    if cluster.local:  # built here from the pinned module version
        pinned = re.search(r"^KUBE_VERSION=(\S+)", VERSIONS.read_text(), re.MULTILINE)
        assert pinned and version == pinned.group(1)


def test_cluster_dns_runs(kube: ApiClient) -> None:
    service = client.CoreV1Api(kube).read_namespaced_service("kube-dns", "kube-system")
    assert service.spec.cluster_ip, "kube-dns has no ClusterIP"
    endpoints = client.DiscoveryV1Api(kube).list_namespaced_endpoint_slice(
        "kube-system", label_selector="kubernetes.io/service-name=kube-dns"
    )
    ready = [e for s in endpoints.items for e in s.endpoints or [] if e.conditions and e.conditions.ready]
    assert ready, "cluster DNS has no ready endpoint"


def test_job_from_local_image_runs_and_its_log_is_read(kube: ApiClient, images: None, namespace: str) -> None:
    log = run_job(kube, namespace, restricted_container("version", ["--version"]))
    assert log.strip() == marina.__version__, f"unexpected `marina --version` output: {log!r}"


@pytest.fixture
def minio_env(minio: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """MinIO's endpoint and credentials in this process's environment, as marina.storage reads them."""
    for key, value in minio.environment().items():
        monkeypatch.setenv(key, value)
    return minio


def test_pod_reaches_minio_by_service_name(kube: ApiClient, minio_env: Any, s3_namespace: str) -> None:
    token = uuid.uuid4().hex
    uri = f"s3://marina/cluster-tests/{token}.txt"
    container = restricted_container("roundtrip", ["-c", ROUNDTRIP_SCRIPT, uri, token], command=["python3"])
    log = run_job(kube, s3_namespace, container, env_secret="marina-s3-credentials")
    assert "resolved minio.marina-system.svc.cluster.local 10." in log, log
    assert f"read back {token}" in log, log
    # The object is really in MinIO: the test process reads it through its own route to the Service.
    assert storage.read_bytes(uri) == token.encode()


# Runs alone (serial): it deletes MinIO's pod, and every other test's storage would go away with it.
@pytest.mark.serial
def test_minio_keeps_objects_across_a_pod_restart(kube: ApiClient, minio_env: Any) -> None:
    namespace = minio_env.namespace
    uri = f"s3://marina/cluster-tests/restart-{uuid.uuid4().hex}.txt"
    storage.write_bytes(uri, b"kept")
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    selector = "app.kubernetes.io/name=minio"
    old = {pod.metadata.name for pod in core.list_namespaced_pod(namespace, label_selector=selector).items}
    for name in old:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=5)

    def replaced_and_ready() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        deployment = apps.read_namespaced_deployment_status("minio", namespace).status
        return bool(pods) and not old & {p.metadata.name for p in pods} and deployment.ready_replicas == 1

    wait_until(replaced_and_ready, "a new, ready MinIO pod")
    assert wait_until(lambda: _read_or_none(uri), "MinIO to serve again") == b"kept"


def _read_or_none(uri: str) -> bytes | None:
    try:
        return storage.read_bytes(uri)
    except storage.StorageError:
        return None
