"""The namespace-scoped install's rights are enough to run the operator, and are all it has.

The cluster-wide operator of the other tests watches every namespace, so a second operator must not
reconcile Marina resources beside it. This test runs `marina operator --namespace NS` on this host under
a ServiceAccount that holds only manifests/operator-namespaced/namespace's Role in NS (a RoleBinding to
it, nothing cluster-wide), and checks what the namespaced mode changes: kopf starts in NS without
cluster-wide rights and without asking for any (no 403 in its log), the replica registers in NS's
KopfPeering (not the ClusterKopfPeering), the liveness probe answers, and the same identity can neither
list namespaces nor touch another namespace."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# Runs alone (serial): a second operator on this host, beside the cluster-wide one, with a peering of its own.
pytestmark = pytest.mark.serial

REPO = Path(__file__).resolve().parents[2]
PER_NAMESPACE = REPO / "manifests" / "operator-namespaced" / "namespace"
PEERING = "marina"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def account(marina: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A ServiceAccount bound to the namespace-scoped Role in the test's namespace; its kubeconfig."""
    name = f"operator-{uuid.uuid4().hex[:6]}"
    marina.kubectl("create", "serviceaccount", name)
    documents = [d for d in yaml.safe_load_all((PER_NAMESPACE / "role.yaml").read_text()) if d]
    for document in documents:
        if document["kind"] == "RoleBinding":
            document["subjects"] = [{"kind": "ServiceAccount", "name": name, "namespace": marina.namespace}]
    documents.append(yaml.safe_load((PER_NAMESPACE / "peering.yaml").read_text()))
    marina.apply(*documents)
    token = marina.kubectl("create", "token", name, "--duration=10m").strip()
    admin = yaml.safe_load(Path(marina.cluster.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": marina.namespace}}
                ],
                "current-context": "x",
            }
        )
    )
    kubeconfig.chmod(0o600)
    yield name, kubeconfig


def peers(marina: Any) -> dict[str, Any]:
    body = json.loads(marina.kubectl("get", "kopfpeering", PEERING, "-o", "json"))
    return dict(body.get("status") or {})


def can(marina: Any, name: str, *what: str) -> bool:
    user = f"system:serviceaccount:{marina.namespace}:{name}"
    result = marina.try_kubectl("auth", "can-i", *what, f"--as={user}")
    return result.stdout.strip() == "yes"


def test_the_operator_runs_with_only_the_namespaced_rights(marina: Any, account: tuple[str, Path]) -> None:
    name, kubeconfig = account
    identity = f"e2e-{name}"
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "POD_NAME": identity,
        "MARINA_NAMESPACES": marina.namespace,
        "MARINA_PROBE_STORAGE": "false",
    }
    command = [sys.executable, "-m", "marina.cli", "operator", f"--peering={PEERING}", "--metrics=none"]
    command.append(f"--liveness=http://127.0.0.1:{port}/healthz")
    log = kubeconfig.parent / "operator.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:

        def registered() -> bool:
            assert process.poll() is None, f"the operator exited:\n{log.read_text()[-3000:]}"
            return identity in peers(marina)

        marina.wait_for(f"{identity} in KopfPeering {marina.namespace}/{PEERING}", registered, timeout=120)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200
    finally:
        process.terminate()
        process.wait(timeout=60)
    # What it ran with is only the namespaced Role: nothing cluster-wide, nothing in another namespace.
    assert can(marina, name, "create", "jobs.batch")
    assert can(marina, name, "patch", f"kopfpeerings.kopf.dev/{PEERING}")
    assert not can(marina, name, "list", "namespaces")
    assert not can(marina, name, "patch", f"clusterkopfpeerings.kopf.dev/{PEERING}")
    assert not can(marina, name, "create", "jobs.batch", "-n", "default")
    text = log.read_text()
    assert "Traceback" not in text and "Forbidden" not in text  # it asked for nothing its Role denies
