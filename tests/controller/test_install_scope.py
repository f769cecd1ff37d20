"""The two installs: cluster-wide (manifests/operator) and namespace-scoped (manifests/operator-namespaced).

The namespace-scoped operator watches only the namespaces it is given, meets its other replica in each
namespace's KopfPeering instead of the ClusterKopfPeering, and its per-namespace Role grants what the
cluster-wide ClusterRole grants, minus what only exists cluster-wide."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from marina.controller import command, handlers
from marina.controller.kube import leadership
from marina.controller.kube.settings import Settings

REPO = Path(__file__).resolve().parents[2]
# Only the cluster-wide install needs these (kopf falls back without them in the namespace-scoped one).
CLUSTER_ONLY = {"customresourcedefinitions", "namespaces"}
PEERINGS = {"clusterkopfpeerings": "kopfpeerings"}


def rules(path: Path, kind: str) -> list[dict[str, Any]]:
    (role,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind]
    return list(role["rules"])


def comparable(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (
        tuple(rule["apiGroups"]),
        tuple(PEERINGS.get(r, r) for r in rule["resources"]),
        tuple(rule["verbs"]),
        tuple(rule.get("resourceNames", ())),
    )


def test_the_namespaced_role_grants_the_cluster_roles_rules_in_its_namespace() -> None:
    cluster = rules(REPO / "manifests" / "operator" / "rbac.yaml", "ClusterRole")
    namespaced = rules(REPO / "manifests" / "operator-namespaced" / "namespace" / "role.yaml", "Role")
    expected = [comparable(r) for r in cluster if not CLUSTER_ONLY & set(r["resources"])]
    assert [comparable(r) for r in namespaced] == expected


def test_the_namespaced_install_has_no_cluster_wide_rights() -> None:
    text = (REPO / "manifests" / "operator-namespaced" / "kustomization.yaml").read_text()
    patched = {(p["target"]["kind"], p["target"]["name"]) for p in yaml.safe_load(text)["patches"]}
    assert {("ClusterRoleBinding", "marina-operator"), ("ClusterRole", "marina-operator")} <= patched
    assert ("ClusterKopfPeering", "marina") in patched


def run_operator(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """`marina operator ARGV` up to kopf.run, returning what it would run with (and the peering)."""
    seen: dict[str, Any] = {}
    monkeypatch.delenv("MARINA_NAMESPACES", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(kopf, "configure", lambda **_: None)
    monkeypatch.setattr(handlers, "register", lambda settings, peering: seen.update(peering=peering))
    parser = argparse.ArgumentParser()
    command.configure(parser)
    assert command.run(parser.parse_args(argv)) == 0
    return seen


def test_watching_listed_namespaces_meets_in_their_kopf_peering(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run_operator(
        monkeypatch, ["--peering=marina", "--metrics=none"], {"MARINA_NAMESPACES": "team-a, team-b"}
    )
    assert seen["clusterwide"] is False and seen["namespaces"] == ["team-a", "team-b"]
    peering = seen["peering"]
    assert (peering.kind, peering.namespace, peering.name) == (leadership.NAMESPACED_KIND, "team-a", "marina")
    assert seen["peering_name"] == "marina"


def test_watching_everything_meets_in_the_cluster_peering(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run_operator(monkeypatch, ["--all-namespaces", "--metrics=none"], {"MARINA_NAMESPACES": "team-a"})
    assert seen["clusterwide"] is True and seen["namespaces"] == []
    assert (seen["peering"].kind, seen["peering"].namespace) == (leadership.KIND, "")


@pytest.fixture
def registry() -> Any:
    previous = kopf.get_default_registry()
    kopf.set_default_registry(kopf.OperatorRegistry())
    try:
        yield kopf.get_default_registry()
    finally:
        kopf.set_default_registry(previous)


@pytest.mark.parametrize(("namespace", "clusterwide"), [("", True), ("team-a", False)])
def test_kopf_peers_in_the_scope_of_the_install(registry: Any, namespace: str, clusterwide: bool) -> None:
    class NoKube:
        """kube() at start-up only creates the client."""

    handlers.register(
        Settings(), kube_factory=lambda: NoKube(), peering=leadership.Peering("marina", "me", 1, namespace)
    )
    (configure,) = [h for h in registry._activities.get_all_handlers() if h.id == "configure"]
    settings = kopf.OperatorSettings()
    configure.fn(settings=settings)
    assert settings.peering.clusterwide is clusterwide
    assert settings.scanning.disabled is not clusterwide  # no listing of namespaces or CRDs it may not read
