"""manifests/helm/marina, Marina's Helm chart (Helm built from Go modules): `helm lint` for each choice, and
`helm template` rendering the same objects as the kustomize bases for the same choices (the labels Helm
adds aside): the cluster-wide operator as manifests/operator, the namespace-scoped one as
manifests/operator-namespaced plus its namespace/ in each watched namespace, MinIO as manifests/minio (and
its local-volume variant) with manifests/network, the workload NetworkPolicies as manifests/network/workload,
and monitoring as manifests/monitoring. The chart's copies of the CRDs and monitoring files equal the
originals."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "manifests" / "helm" / "marina"
MANIFESTS = REPO / "manifests"
NAMESPACE = "marina-system"  # the kustomize bases' namespace
#: Labels Helm's chart adds to every object's metadata that the kustomize bases do not have.
HELM_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
)
OPERATOR_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Deployment",
    "PodDisruptionBudget",
    "ClusterKopfPeering",
    "KopfPeering",
}
#: Cluster-scoped kinds: kustomize's namespace transformer, not knowing kopf's CRD, puts the namespace on a
#: ClusterKopfPeering too; kubectl drops it for cluster-scoped objects, so the comparison does.
CLUSTER_KINDS = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
WATCHED = ("team-a", "team-b")
NAMESPACED = ("--set", "install.scope=namespace", "--set", f"install.namespaces={{{','.join(WATCHED)}}}")

Key = tuple[str, str, str, str]


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(helm: Path, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(helm), "template", "marina", str(CHART), "--namespace", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return documents(result.stdout)


def kustomize_build(kustomize: list[str], folder: Path, namespace: str | None = None) -> list[dict[str, Any]]:
    """The folder's objects as `kubectl apply -k` sends them (`-n namespace` for the per-namespace bases)."""
    result = subprocess.run(
        [*kustomize, str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    objects = documents(result.stdout)
    if namespace is not None:
        for body in objects:
            body["metadata"].setdefault("namespace", namespace)
    return objects


def by_key(objects: Sequence[dict[str, Any]], kinds: set[str] | None = None) -> dict[Key, dict[str, Any]]:
    """Objects by (apiVersion, kind, namespace, name), without Helm's labels and annotations."""
    found = {}
    for body in objects:
        if kinds is not None and body["kind"] not in kinds:
            continue
        meta = body["metadata"]
        if body["kind"] in CLUSTER_KINDS:
            meta.pop("namespace", None)
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in HELM_LABELS}
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
        # helm.sh/resource-policy: keep (MinIO's volume and credentials outlive `helm uninstall`; kustomize
        # has no uninstall to survive)
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("helm.sh/")
        }
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        found[(body["apiVersion"], body["kind"], meta.get("namespace", ""), meta["name"])] = body
    return found


def assert_same(helm: dict[Key, dict[str, Any]], kustomize: dict[Key, dict[str, Any]]) -> None:
    assert sorted(helm) == sorted(kustomize)
    for key, body in kustomize.items():
        assert helm[key] == body, f"{key} differs:\n{yaml.safe_dump(helm[key])}\n---\n{yaml.safe_dump(body)}"


@pytest.mark.parametrize(
    "choices",
    [
        (),
        NAMESPACED,
        ("--set", "monitoring.enabled=true", "--set", "networkPolicies.workloadNamespaces={team-a}"),
        ("--set", "minio.enabled=false", "--set", "storage.endpoint=https://s3.example.test"),
        ("--set", "minio.persistence.enabled=false", "--set", "userRoles.create=false"),
    ],
    ids=["default", "namespaced", "monitoring", "external-storage", "ephemeral-minio"],
)
def test_helm_lint(helm: Path, choices: tuple[str, ...]) -> None:
    result = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART), *choices], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def operator_objects(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in OPERATOR_KINDS and o["metadata"]["name"] != "minio"]


def test_the_default_operator_is_manifests_operator(helm: Path, kustomize: list[str]) -> None:
    rendered = by_key(operator_objects(helm_template(helm)))
    assert_same(rendered, by_key(kustomize_build(kustomize, MANIFESTS / "operator")))


def test_the_namespaced_operator_is_manifests_operator_namespaced(helm: Path, kustomize: list[str]) -> None:
    rendered = helm_template(helm, *NAMESPACED)
    expected = kustomize_build(kustomize, MANIFESTS / "operator-namespaced")
    for namespace in WATCHED:
        expected += kustomize_build(kustomize, MANIFESTS / "operator-namespaced" / "namespace", namespace)
    assert_same(by_key(operator_objects(rendered)), by_key(expected))
    (config,) = (o for o in rendered if o["kind"] == "ConfigMap")
    # what hack/deploy.sh creates:
    #   kubectl create configmap marina-operator-namespaces --from-literal=namespaces=a,b
    assert (config["metadata"]["name"], config["data"]) == (
        "marina-operator-namespaces",
        {"namespaces": "team-a,team-b"},
    )
    assert not [
        o for o in rendered if o["kind"].startswith("Cluster") and o["metadata"]["name"] == "marina-operator"
    ]


@pytest.mark.parametrize(
    ("choices", "base"),
    [
        ((), "minio"),
        (
            (
                "--set",
                "minio.persistence.storageClassName=",
                "--set",
                "minio.persistence.volumeNamePrefix=marina-minio-drive-",
            ),
            "minio/local-volume",
        ),
    ],
    ids=["default-storage-class", "local-volume"],
)
def test_minio_is_manifests_minio_and_its_network_policy(
    helm: Path, kustomize: list[str], choices: tuple[str, ...], base: str
) -> None:
    kinds = {"PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy"}
    rendered = {
        k: v for k, v in by_key(helm_template(helm, *choices), kinds).items() if k[3] != "marina-operator"
    }
    expected = kustomize_build(kustomize, MANIFESTS / base) + kustomize_build(
        kustomize, MANIFESTS / "network"
    )
    assert_same(rendered, by_key(expected, kinds))
    (secret,) = (o for o in helm_template(helm, *choices) if o["kind"] == "Secret")
    assert set(secret["stringData"]) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }  # hack/minio-up.sh's keys
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_workload_network_policies_are_manifests_network_workload(
    helm: Path, kustomize: list[str]
) -> None:
    rendered = by_key(
        helm_template(helm, "--set", "networkPolicies.workloadNamespaces={team-a}"), {"NetworkPolicy"}
    )
    workload = {k: v for k, v in rendered.items() if k[2] == "team-a"}
    assert_same(workload, by_key(kustomize_build(kustomize, MANIFESTS / "network" / "workload", "team-a")))
    namespaced = by_key(helm_template(helm, *NAMESPACED), {"NetworkPolicy"})
    assert {k[2] for k in namespaced} == {NAMESPACE, *WATCHED}  # the watched namespaces get them too


def test_monitoring_is_manifests_monitoring(helm: Path, kustomize: list[str]) -> None:
    kinds = {"PodMonitor", "PrometheusRule", "ConfigMap"}
    rendered = by_key(helm_template(helm, "--set", "monitoring.enabled=true"), kinds)
    assert_same(rendered, by_key(kustomize_build(kustomize, MANIFESTS / "monitoring", NAMESPACE)))
    assert not by_key(helm_template(helm), kinds)  # off by default, as it is not part of manifests/


def test_without_minio_the_operator_uses_the_given_storage(helm: Path) -> None:
    rendered = helm_template(
        helm, "--set", "minio.enabled=false", "--set", "storage.endpoint=https://s3.example.test"
    )
    assert not [o for o in rendered if o["metadata"]["name"].startswith("minio")]
    (operator,) = (o for o in rendered if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MARINA_S3_ENDPOINT"] == "https://s3.example.test"
    result = subprocess.run(
        [str(helm), "template", "m", str(CHART), "--set", "minio.enabled=false"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        result.returncode != 0 and "storage.endpoint is required when minio.enabled is false" in result.stderr
    )


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        (("--set", "install.scope=namespace"), "install.scope namespace needs install.namespaces"),
        (("--set", "install.scope=everywhere"), "value must be one of 'cluster', 'namespace'"),
    ],
)
def test_wrong_choices_are_refused_with_the_reason(
    helm: Path, choices: tuple[str, ...], message: str
) -> None:
    result = subprocess.run(
        [str(helm), "template", "m", str(CHART), *choices], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_charts_copies_are_current() -> None:
    check = subprocess.run(
        [sys.executable, str(REPO / "hack" / "chart_files.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(
        p.name for p in (REPO / "crds").glob("*.yaml") if p.name != "kustomization.yaml"
    )
