"""NetworkPolicy on the real cluster (manifests/network, applied by hack/deploy.sh; enforced locally by
kube-network-policies, hack/lib/network-policies.sh): a pod in another namespace that is not Marina's
cannot connect to MinIO, while the same pod carrying the labels the operator gives its pods can; a Job pod
of Marina's, under its namespace's egress policy, reaches MinIO through the cluster DNS and nothing else.

Each probe is a few lines of Python run by `kubectl exec` in a waiting pod of marina.local/marina:dev (an
image the cluster has): one TCP connection with a short timeout, and how it went as the exit code."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

# Runs alone (serial): its verdicts (connected, or timed out after 5 s) rely on the NetworkPolicy enforcer
# keeping up, and every other test's new pod connections pass through the same enforcer.
pytestmark = pytest.mark.serial

REPO = Path(__file__).resolve().parents[2]
WORKLOAD_POLICIES = REPO / "manifests" / "network" / "workload"
MINIO_HOST, MINIO_PORT = "minio.marina-system.svc.cluster.local", 9000
TARGET_PORT = 8080  # a plain pod of the test's own, listening there, under no policy of its own
# A connection the policy drops never completes: its SYN is dropped and the client waits. An allowed one takes
# a round trip over the node's bridge plus one verdict of the enforcer, whose log gives each verdict's
# duration: over 3,217 verdicts on a 2-core machine at a load of 15, median 0.23 ms, at most 93 ms. So a
# timeout of CONNECT_SECONDS, 50 times that maximum, means the policy dropped the connection.
CONNECT_SECONDS = 5
CONNECTED, TIMED_OUT, REFUSED, UNRESOLVED = 0, 3, 4, 5
OUTCOMES = {
    CONNECTED: "connected",
    TIMED_OUT: "timed out",
    REFUSED: "refused",
    UNRESOLVED: "name not resolved",
}
PROBE = f"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
except socket.gaierror:
    sys.exit({UNRESOLVED})
try:
    socket.create_connection(address, timeout={CONNECT_SECONDS}).close()
except socket.timeout:
    sys.exit({TIMED_OUT})
except ConnectionRefusedError:
    sys.exit({REFUSED})
sys.exit({CONNECTED})
"""
MARINA_LABELS = {"app.kubernetes.io/name": "marina", "app.kubernetes.io/managed-by": "marina-operator"}
# What the operator puts on a training Job's pods (builders.labels), besides the owner's name.
TRAIN_LABELS = {**MARINA_LABELS, "app.kubernetes.io/component": "train"}


def pod_spec(command: list[str]) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "main",
                "image": "marina.local/marina:dev",
                "imagePullPolicy": "IfNotPresent",
                "command": command,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


WAIT = ["python3", "-c", "import signal; signal.pause()"]  # holds the pod's network for `kubectl exec`


def waiting(kind: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A Pod, or a Job (whose pod the Job controller labels batch.kubernetes.io/job-name as it does
    Marina's), that only waits, so that probes run in its network once its address is known."""
    meta = {"name": name, "labels": labels}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec(WAIT)}
    template = {"metadata": {"labels": labels}, "spec": {**pod_spec(WAIT), "restartPolicy": "Never"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {"backoffLimit": 0, "template": template},
    }


def outcome(marina: Any, kind: str, labels: dict[str, str], host: str, port: int) -> str:
    """One connection from a Pod or a Job's pod with these labels, named by how it went.

    The probe runs by `kubectl exec` once the pod is Ready, in the pod's network: by then the API server
    has the pod's address, and so has the enforcer (it learns pods' addresses from the API server; a pod's
    first packets may come before that, which NRI would close, and containerd 1.6 has no NRI)."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    marina.apply(waiting(kind, name, {**labels, "marina-e2e/probe": name}))
    selector = f"marina-e2e/probe={name}"
    try:
        found = marina.wait_for(
            f"the pod of {kind} {name}",
            lambda: marina.try_kubectl("get", "pod", "-l", selector, "-o", "name").stdout.split(),
        )
        (pod,) = found
        marina.kubectl("wait", "--for=condition=Ready", pod, "--timeout=120s")
        probe = marina.try_kubectl("exec", pod, "--", "python3", "-c", PROBE, host, str(port))
        return OUTCOMES.get(probe.returncode, f"failed otherwise: {probe.stderr.strip()}")
    finally:
        marina.kubectl("delete", kind.lower(), name, "--wait=false", "--ignore-not-found")


def enforcing(marina: Any) -> None:
    """The MinIO policy is in place (deploy.sh applied it) before anything is concluded from a probe."""
    policies = marina.cluster.kubectl("-n", "marina-system", "get", "networkpolicy", "-o", "name").split()
    assert "networkpolicy.networking.k8s.io/minio" in policies


def test_a_pod_in_another_namespace_cannot_reach_minio(marina: Any) -> None:
    enforcing(marina)
    assert outcome(marina, "Pod", {"app": "probe"}, MINIO_HOST, MINIO_PORT) == "timed out"
    # The same pod with the labels Marina's pods carry connects: the network works, the policy decides.
    assert outcome(marina, "Pod", MARINA_LABELS, MINIO_HOST, MINIO_PORT) == "connected"


def target_pod(marina: Any) -> str:
    """A pod that listens on TARGET_PORT and that no policy selects; its address."""
    name = f"target-{uuid.uuid4().hex[:6]}"
    spec = pod_spec(["python3", "-m", "http.server", str(TARGET_PORT)])
    spec["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": TARGET_PORT}, "periodSeconds": 1}
    marina.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    marina.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s")
    return str(marina.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}").strip())


def test_marina_job_pods_reach_only_minio_and_dns(marina: Any) -> None:
    enforcing(marina)
    marina.kubectl("apply", "-k", str(WORKLOAD_POLICIES))
    target = target_pod(marina)
    # Under the egress policy the Job's pod still resolves MinIO's name (DNS allowed) and connects.
    assert outcome(marina, "Job", TRAIN_LABELS, MINIO_HOST, MINIO_PORT) == "connected"
    # Another pod is not MinIO: dropped. A Job without Marina's labels is not confined and reaches it.
    assert outcome(marina, "Job", TRAIN_LABELS, target, TARGET_PORT) == "timed out"
    assert outcome(marina, "Job", {"app": "probe"}, target, TARGET_PORT) == "connected"
