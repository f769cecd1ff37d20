"""The operator's roles grant `delete` on every kind its controller deletes (and only through Marina's own
actions: the `Delete(apiVersion, kind, name)` the reconcilers return). A kind deleted without the verb is
refused by the API server on every reconcile, which a fake API cannot show: the shadow phase's Service was
(found by its e2e test). The Helm chart renders the same rules (tests/manifests/test_helm_chart.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONTROLLER = REPO / "operator" / "marina" / "controller"
ROLES = (
    REPO / "manifests" / "operator" / "rbac.yaml",
    REPO / "manifests" / "operator-namespaced" / "namespace" / "role.yaml",
)


def deleted_kinds() -> set[tuple[str, str]]:
    """(API group, resource) of every literal `Delete("<apiVersion>", "<Kind>", ...)` in the controller."""
    found = set()
    for path in CONTROLLER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Delete"
                and len(node.args) >= 2
                and all(isinstance(arg, ast.Constant) for arg in node.args[:2])
            ):
                api_version, kind = str(node.args[0].value), str(node.args[1].value)
                group = api_version.rpartition("/")[0]
                found.add((group, kind.lower() + "s"))
    return found


def granted(path: Path, verb: str) -> set[tuple[str, str]]:
    rules = [
        rule
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") in ("ClusterRole", "Role")
        for rule in document.get("rules") or []
    ]
    return {
        (group, resource)
        for rule in rules
        if verb in rule.get("verbs", [])
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    }


def test_the_controller_deletes_some_kinds() -> None:
    assert {("apps", "deployments"), ("", "services")} <= deleted_kinds()


@pytest.mark.parametrize("role", ROLES, ids=lambda path: str(path.relative_to(REPO)))
def test_every_kind_the_controller_deletes_may_be_deleted(role: Path) -> None:
    missing = deleted_kinds() - granted(role, "delete")
    assert not missing, f"{role.name} lacks delete on {sorted(missing)}"
