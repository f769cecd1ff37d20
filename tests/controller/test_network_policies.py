"""The NetworkPolicies shipped in manifests/network select the pods the builders and manifests really make:
Marina's Job pods and model servers reach MinIO, nothing else does, Job pods are confined to MinIO and DNS,
and the ports in the policies are the ports the containers listen on. A label renamed in builders.py or a
manifest, without the policies following, fails here rather than as a silent outage on a cluster."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from marina.controller.datasets import manifests as dataset_manifests
from marina.controller.datasets import spec as dataset_spec
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import manifests as modeldeployment_manifests
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.shared import builders
from marina.controller.trainingjobs import manifests as trainingjob_manifests
from marina.controller.trainingjobs import spec as trainingjob_spec

REPO = Path(__file__).resolve().parents[2]
NETWORK = REPO / "manifests" / "network"
SETTINGS = Settings()
DATA_URI = "s3://marina/datasets/team-a/diabetes/abc"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # the Job controller adds it to each of a Job's pods
SYSTEM, DNS_NAMESPACE = "marina-system", "kube-system"


def documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a manifest; hack/addons' @PLACEHOLDERS@ (filled in by cluster-up) as strings."""
    return [d for d in yaml.safe_load_all(re.sub(r"@([A-Z_]+)@", r"\1", path.read_text())) if d]


def policy(path: Path) -> dict[str, Any]:
    (document,) = [d for d in documents(path) if d["kind"] == "NetworkPolicy"]
    return document


def template(path: Path) -> dict[str, Any]:
    """The pod template of the manifest's one Deployment."""
    (document,) = [d for d in documents(path) if d["kind"] == "Deployment"]
    return dict(document["spec"]["template"])


def template_labels(path: Path) -> dict[str, str]:
    return dict(template(path)["metadata"]["labels"])


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against an object's labels."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        held = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not held:
            return False
    return True


def peer_admits(
    peer: Mapping[str, Any], policy_namespace: str, namespace: str, labels: Mapping[str, str]
) -> bool:
    """Whether one `from`/`to` entry admits a pod (namespaces are matched by kubernetes.io/metadata.name)."""
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        in_namespace = namespace == policy_namespace
    else:
        in_namespace = selects(namespace_selector, {"kubernetes.io/metadata.name": namespace})
    return in_namespace and selects(peer.get("podSelector") or {}, labels)


def minio_admits(namespace: str, labels: Mapping[str, str]) -> bool:
    (rule,) = policy(NETWORK / "minio.yaml")["spec"]["ingress"]
    return any(peer_admits(peer, SYSTEM, namespace, labels) for peer in rule["from"])


def job_pod_labels(job: Mapping[str, Any]) -> dict[str, str]:
    return {**job["spec"]["template"]["metadata"]["labels"], JOB_NAME_LABEL: job["metadata"]["name"]}


def prepare_pod() -> dict[str, str]:
    spec = dataset_spec.parse({"source": {"builtin": "diabetes"}})
    owner = builders.Owner("Dataset", "diabetes", "team-a", "uid-1")
    return job_pod_labels(dataset_manifests.prepare_job(SETTINGS, owner, spec, "0123456789"))


def train_pod() -> dict[str, str]:
    spec = trainingjob_spec.parse({"dataset": {"name": "diabetes"}})
    owner = builders.Owner("TrainingJob", "ridge", "team-a", "uid-2")
    return job_pod_labels(trainingjob_manifests.train_job(SETTINGS, owner, spec, DATA_URI, "0123456789"))


def shard_pod() -> dict[str, str]:
    spec = trainingjob_spec.parse({"dataset": {"name": "diabetes"}, "parallelism": 2})
    owner = builders.Owner("TrainingJob", "ridge", "team-a", "uid-2")
    return job_pod_labels(trainingjob_manifests.shard_job(SETTINGS, owner, spec, DATA_URI, "0123456789"))


def serving_deployment() -> dict[str, Any]:
    spec = modeldeployment_spec.parse({"model": {"trainingJob": "ridge"}})
    owner = builders.Owner("ModelDeployment", "diabetes", "team-a", "uid-3")
    model = builders.ModelReference("s3://marina/models/team-a/ridge/model-" + "b" * 64 + ".json", "b" * 64)
    return modeldeployment_manifests.deployment(SETTINGS, owner, spec, model)


def serve_pod() -> dict[str, str]:
    return dict(serving_deployment()["spec"]["template"]["metadata"]["labels"])


JOB_PODS = [prepare_pod, train_pod, shard_pod]


@pytest.mark.parametrize("pod", [*JOB_PODS, serve_pod], ids=["prepare", "train", "shard", "serve"])
def test_marina_pods_in_any_namespace_reach_minio(pod: Any) -> None:
    assert minio_admits("team-a", pod())


def test_the_operator_reaches_minio_from_its_namespace_only() -> None:
    operator = template_labels(REPO / "manifests" / "operator" / "deployment.yaml")
    assert minio_admits(SYSTEM, operator)
    assert not minio_admits("team-a", operator)  # a look-alike elsewhere is not the operator


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"app": "web"},
        {"app.kubernetes.io/name": "marina"},
        {"app.kubernetes.io/managed-by": "marina-operator"},
    ],
)
def test_other_pods_do_not_reach_minio(labels: dict[str, str]) -> None:
    assert not minio_admits("team-a", labels) and not minio_admits(SYSTEM, labels)


def test_the_minio_policy_selects_minio_on_its_port() -> None:
    minio = REPO / "manifests" / "minio" / "base" / "deployment.yaml"
    shipped = policy(NETWORK / "minio.yaml")["spec"]
    assert selects(shipped["podSelector"], template_labels(minio))
    (container,) = template(minio)["spec"]["containers"]
    assert shipped["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": container["ports"][0]["containerPort"]}
    ]


def egress() -> dict[str, Any]:
    return policy(NETWORK / "workload" / "jobs-egress.yaml")["spec"]


@pytest.mark.parametrize("pod", JOB_PODS, ids=["prepare", "train", "shard"])
def test_job_pods_are_confined(pod: Any) -> None:
    assert egress()["policyTypes"] == ["Egress"] and selects(egress()["podSelector"], pod())


@pytest.mark.parametrize(
    "labels", [serve_pod(), {"app": "batch", JOB_NAME_LABEL: "user-job"}], ids=["server", "user's Job"]
)
def test_servers_and_users_jobs_are_not_confined(labels: dict[str, str]) -> None:
    assert not selects(egress()["podSelector"], labels)


def allowed_destinations(namespace: str, labels: Mapping[str, str]) -> list[list[dict[str, Any]]]:
    return [
        rule["ports"]
        for rule in egress()["egress"]
        if any(peer_admits(p, "", namespace, labels) for p in rule["to"])
    ]


def test_job_pods_reach_minio_and_dns_and_nothing_else() -> None:
    minio = template_labels(REPO / "manifests" / "minio" / "base" / "deployment.yaml")
    coredns = template_labels(REPO / "hack" / "addons" / "coredns.yaml")
    assert allowed_destinations(SYSTEM, minio) == [[{"protocol": "TCP", "port": 9000}]]
    (dns_ports,) = allowed_destinations(DNS_NAMESPACE, coredns)
    (container,) = template(REPO / "hack" / "addons" / "coredns.yaml")["spec"]["containers"]
    named = {(p["name"], p["protocol"]) for p in container["ports"]}
    assert {(p["port"], p["protocol"]) for p in dns_ports} == {("dns", "UDP"), ("dns-tcp", "TCP")} <= named
    operator = template_labels(REPO / "manifests" / "operator" / "deployment.yaml")
    for namespace, labels in [
        (SYSTEM, operator),
        ("team-a", serve_pod()),
        ("team-a", minio),
        (SYSTEM, coredns),
    ]:
        assert allowed_destinations(namespace, labels) == []
    assert all("ipBlock" not in peer for rule in egress()["egress"] for peer in rule["to"])  # nothing outside


def test_servers_open_only_their_serving_port_to_the_cluster() -> None:
    shipped = policy(NETWORK / "workload" / "serving-ingress.yaml")["spec"]
    assert selects(shipped["podSelector"], serve_pod())
    assert not any(selects(shipped["podSelector"], pod()) for pod in JOB_PODS)
    (rule,) = shipped["ingress"]
    (container,) = serving_deployment()["spec"]["template"]["spec"]["containers"]
    assert rule["ports"] == [{"protocol": "TCP", "port": container["ports"][0]["containerPort"]}]
    assert rule["from"] == [{"namespaceSelector": {}}]  # every pod of the cluster; patch to narrow it
