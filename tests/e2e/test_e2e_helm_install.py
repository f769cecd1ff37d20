"""`helm install` of manifests/helm/marina on the real cluster (Helm built from Go modules): the operator
comes up, runs the samples to Ready with the chart's own MinIO, keeps MinIO's credentials over an upgrade and
after the release is gone.

How it lives beside the kustomize-deployed operator the other e2e tests use (manifests/operator,
cluster-wide, in marina-system): the release goes into a namespace of its own with the namespace-scoped
install, watching one fresh namespace, with its own MinIO (an emptyDir) and without the cluster-wide user
roles (marina-editor and marina-viewer belong to the kustomize install; the CRDs exist already, so Helm leaves
them alone). A cluster-wide operator watches that namespace too, so for the length of this module the
kustomize operator is scaled to 0 and afterwards back to its replicas. So it runs in the serial phase, alone:
in the phase that runs side by side, another test's resources went unreconciled meanwhile, and when both
replicas came back at once they could both handle the same object before peering paused one (a retention
run recorded twice, the second `deleted: []` over the first)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Marina

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "manifests" / "helm" / "marina"
SYSTEM = "marina-system"
OPERATOR = "marina-operator"

pytestmark = pytest.mark.serial


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    watched: Marina
    helm: Path
    kubeconfig: Path
    values: tuple[str, ...]

    def run(self, *args: str, timeout: float = 600) -> str:
        command = [str(self.helm), "--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}{result.stdout}"
        return result.stdout


def kustomize_operator_replicas(cluster: Any) -> int:
    return int(
        cluster.kubectl("-n", SYSTEM, "get", "deployment", OPERATOR, "-o", "jsonpath={.spec.replicas}")
    )


@pytest.fixture(scope="module")
def release(cluster: Any, operator: None, helm: Path, api_proxy: str | None) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    namespace, watched = f"marina-helm-{suffix}", f"marina-helm-w-{suffix}"
    replicas = kustomize_operator_replicas(cluster)
    cluster.kubectl("-n", SYSTEM, "scale", "deployment", OPERATOR, "--replicas=0")
    cluster.kubectl(
        "-n",
        SYSTEM,
        "wait",
        "--for=delete",
        "pod",
        "-l",
        f"app.kubernetes.io/name={OPERATOR}",
        "--timeout=120s",
    )
    cluster.kubectl("create", "namespace", watched)
    values = (
        "--set",
        "install.scope=namespace",
        "--set",
        f"install.namespaces={{{watched}}}",
        "--set",
        "userRoles.create=false",
        "--set",
        "minio.persistence.enabled=false",
    )
    installed = Release(
        f"marina-{suffix}", namespace, Marina(cluster, watched, api_proxy), helm, cluster.kubeconfig, values
    )
    try:
        yield installed
    finally:
        subprocess.run(
            [
                str(helm),
                "--kubeconfig",
                str(cluster.kubeconfig),
                "-n",
                namespace,
                "uninstall",
                installed.name,
                "--wait",
            ],
            capture_output=True,
            timeout=300,
            check=False,
        )
        for gone in (watched, namespace):
            cluster.kubectl("delete", "namespace", gone, "--ignore-not-found", "--wait=false")
        cluster.kubectl("-n", SYSTEM, "scale", "deployment", OPERATOR, f"--replicas={replicas}")
        cluster.kubectl(
            "-n", SYSTEM, "rollout", "status", f"deployment/{OPERATOR}", "--timeout=180s", timeout=200
        )


def test_helm_install_runs_the_samples_to_ready(release: Release) -> None:
    release.run(
        "install", release.name, str(CHART), "--create-namespace", "--wait", "--timeout=5m", *release.values
    )
    cluster, marina = release.watched.cluster, release.watched
    ready = json.loads(cluster.kubectl("-n", release.namespace, "get", "deployment", OPERATOR, "-o", "json"))[
        "status"
    ]
    assert ready.get("readyReplicas") == 2, ready
    # the kustomize operator is down: whatever reconciles the samples is the release's
    assert kustomize_operator_replicas(cluster) == 0

    samples = [marina.sample(kind) for kind in ("Dataset", "TrainingJob", "ModelDeployment")]
    marina.apply_ready(*samples, timeout=420)
    status = marina.status("modeldeployment", "diabetes")
    assert status["readyReplicas"] == 2 and status["model"]["uri"].startswith(
        f"s3://marina/models/{marina.namespace}/"
    )
    peering = json.loads(marina.kubectl("get", "kopfpeering", "marina", "-o", "json"))
    peers = [key for key in (peering.get("status") or {}) if key.startswith(OPERATOR)]
    assert peers, peering  # the release's replicas met in the watched namespace's KopfPeering


def test_an_upgrade_keeps_minio_credentials_and_uninstall_keeps_them_too(release: Release) -> None:
    cluster = release.watched.cluster

    def credentials() -> dict[str, str]:
        secret = json.loads(
            cluster.kubectl("-n", release.namespace, "get", "secret", "marina-s3-credentials", "-o", "json")
        )
        return dict(secret["data"])

    before = credentials()
    release.run("upgrade", release.name, str(CHART), "--wait", "--timeout=5m", *release.values)
    assert credentials() == before  # MinIO encrypts its identities with them: a new pair would lock it out
    release.watched.wait_ready("modeldeployment", "diabetes", timeout=120)
    release.run("uninstall", release.name, "--wait", "--timeout=5m")
    gone = cluster.kubectl("-n", release.namespace, "get", "deployment", "-o", "name")
    assert gone.strip() == ""
    assert credentials() == before
