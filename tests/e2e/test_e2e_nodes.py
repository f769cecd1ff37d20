"""Marina on several nodes (issue 20), on a cluster with three workers: `make kind-up WORKERS=3`, then
`KUBECONFIG=$PWD/.cluster/kind-kubeconfig pytest -m nodes -p no:xdist` (`make test` runs them so, in a
phase of their own after the local cluster's).

- A ModelDeployment's two replicas sit on two nodes, and `kubectl drain` of one of them under a steady
  client loses no request: the PodDisruptionBudget lets one pod go at a time and a pod leaves the
  Service's endpoints before its server stops.
- A worker killed outright (its container killed) under the client: requests fail only while the dead
  pod is still listed behind the Service (until the node controller declares the node lost), and the
  model is back to two ready replicas without help, the lost pods evicted after a short toleration.
- A worker killed under a two-pod prepare and under a two-shard TrainingJob. The machine is gone, so its
  Node is deleted, as a cloud provider's node controller does: the pods it held are failed with
  DisruptionTarget, which the Jobs' podFailurePolicy does not count, and replaced; the resource ends Ready
  with exactly an undisturbed run's result (the same dataset version and statistics as one pod's; the
  same coefficients) and one model artifact.

Each killed node is started again afterwards (its kubelet registers it again), so the next test has three
workers. MinIO's node is never the victim: its volume lives on that node alone (a lost drive is the
erasure-coding test's matter). Times and failure counts are printed for the notes (`pytest -s`)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_minio_restart import MINIO_PODS, SYSTEM, model_artifacts, pods_of
from tests.e2e.test_e2e_pipeline import first_answer
from tests.e2e.test_e2e_sharded_prepare import SAME, resource, table, write_csv
from tests.e2e.traffic import Traffic

from marina.controller.shared.conditions import ready_condition
from marina.model import artifact

pytestmark = pytest.mark.nodes

WORKERS_NEEDED = 3
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
#: The Docker engine kind's nodes run on here (hack/kind/common.sh, KIND_DOCKER_SOCK); each node is a
#: container named as the node.
KIND_DOCKER_HOST = os.environ.get("MARINA_KIND_DOCKER_HOST", "unix:///run/marina-kind-docker/docker.sock")
#: The issue's bar: a lost node's replicas are replaced within 90 s. The node controller declares a node
#: lost after 50 s without heartbeats (kube-controller-manager's default grace period), the serving pods
#: tolerate that for 10 s more (NODE_LOSS_TOLERATION_SECONDS), then a new pod starts and loads the model.
BACK_WITHIN_SECONDS = 90
#: A request to a pod on the dead node hangs until the client's timeout (Traffic: 10 s).
REQUEST_TIMEOUT_SECONDS = 10
#: From a node declared lost to its pods gone from the Service's endpoints: the node controller marks them
#: not ready and the endpoints controllers follow, a matter of seconds.
ENDPOINTS_SECONDS = 10
SLOW = {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}}


def ready(body: dict[str, Any]) -> bool:
    """A node or a pod whose Ready condition is True (the operator's own reading of conditions)."""
    return ready_condition(body.get("status")).get("status") == "True"


def nodes(cluster: Any) -> list[dict[str, Any]]:
    return list(json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"])


def ready_workers(cluster: Any) -> list[str]:
    return sorted(
        n["metadata"]["name"]
        for n in nodes(cluster)
        if CONTROL_PLANE not in (n["metadata"].get("labels") or {}) and ready(n)
    )


@pytest.fixture(scope="module", autouse=True)
def three_workers(cluster: Any) -> None:
    found = ready_workers(cluster)
    if len(found) < WORKERS_NEEDED:
        pytest.fail(
            f"these tests need {WORKERS_NEEDED} ready worker nodes and {cluster.kubeconfig} has {found}: "
            "run them on `make kind-up WORKERS=3` with KUBECONFIG=$PWD/.cluster/kind-kubeconfig "
            "(make test does)",
            pytrace=False,
        )


def docker(*args: str) -> str:
    done = subprocess.run(
        ["docker", *args],
        env={**os.environ, "DOCKER_HOST": KIND_DOCKER_HOST},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args)} (kind's engine, {KIND_DOCKER_HOST}): {done.stderr}", pytrace=False
        )
    return done.stdout


def node_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"].get("nodeName") or "")


def minio_node(cluster: Any) -> str:
    (pod,) = [p for p in pods_of(cluster, SYSTEM, MINIO_PODS) if not p["metadata"].get("deletionTimestamp")]
    return node_of(pod)


@contextmanager
def killed(cluster: Any, name: str, *, deleted: bool) -> Iterator[float]:
    """Node `name`'s container killed (SIGKILL: no drain, no goodbye); with `deleted` its Node object too,
    as a cloud's node controller does when the machine is gone. Yields when it was killed (monotonic);
    afterwards the container is started again and the node waited for until Ready."""
    docker("kill", name)
    at = time.monotonic()
    try:
        if deleted:
            cluster.kubectl("delete", "node", name, "--wait=false")
        yield at
    finally:
        docker("start", name)
        deadline = time.monotonic() + 300
        while name not in ready_workers(cluster):
            if time.monotonic() > deadline:
                pytest.fail(f"node {name} not Ready 300 s after its container started again", pytrace=False)
            time.sleep(2)


def serving_pods(marina: Any, name: str) -> list[dict[str, Any]]:
    return [
        pod
        for pod in pods_of(marina.cluster, marina.namespace, f"marina.dev/modeldeployment={name}")
        if not pod["metadata"].get("deletionTimestamp")
    ]


def ready_on(marina: Any, name: str, avoiding: str) -> list[str] | None:
    """The nodes of the deployment's ready pods once two are ready and none is on `avoiding`."""
    pods = [pod for pod in serving_pods(marina, name) if ready(pod)]
    where = [node_of(pod) for pod in pods]
    return where if len(where) == 2 and avoiding not in where else None


@pytest.fixture(scope="module")
def served(marina: Any) -> Any:
    """The sample pipeline serving on two replicas, Ready, on two distinct workers."""
    marina.apply_ready(*marina.pipeline("spread", replicas=2), timeout=600)
    where = marina.wait_for(
        "two ready replicas",
        lambda: [node_of(p) for p in serving_pods(marina, "spread") if ready(p)],
        120,
    )
    assert len(where) == 2 and len(set(where)) == 2, f"both replicas on one node: {where}"
    return marina


@pytest.fixture
def client(served: Any) -> Iterator[Traffic]:
    url = served.service_url("spread")
    first_answer(served, url, "spread")
    with Traffic(url, "spread", np.asarray(load_diabetes().data, dtype=np.float64), workers=2) as running:
        yield running


def victim(marina: Any, name: str) -> str:
    """A node holding one of the deployment's replicas and not MinIO."""
    candidates = sorted({node_of(p) for p in serving_pods(marina, name)} - {minio_node(marina.cluster)})
    assert candidates, "every replica sits on MinIO's node"
    return candidates[0]


def test_a_drain_under_load_loses_no_request(served: Any, client: Traffic) -> None:
    marina = served
    node = victim(marina, "spread")
    started = time.monotonic()
    try:
        marina.cluster.kubectl(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=300s", timeout=330
        )
        where = marina.wait_for(
            "two ready replicas off the drained node", lambda: ready_on(marina, "spread", node)
        )
    finally:
        marina.cluster.kubectl("uncordon", node)
    drained = time.monotonic() - started
    client.end()
    print(f"\ndrain of {node}: replicas back on {where} after {drained:.1f} s; {client.summary()}")
    assert len(set(where)) == 2 and node not in where
    client.assert_none_failed()
    assert client.answers > 0


def test_a_killed_worker_costs_only_requests_in_flight_and_the_replicas_come_back(
    served: Any, client: Traffic
) -> None:
    marina = served
    node = victim(marina, "spread")
    with killed(marina.cluster, node, deleted=False) as at:
        marina.wait_for("the node declared lost", lambda: node not in ready_workers(marina.cluster), 120)
        lost = time.monotonic()
        where = marina.wait_for(
            "two ready replicas off the killed node", lambda: ready_on(marina, "spread", node), timeout=240
        )
        back = time.monotonic() - at
    client.end()
    # A request that failed had begun at most the client's timeout before; one begun after the node was
    # declared lost (and its pods' endpoints withdrawn, ENDPOINTS_SECONDS) should have found a live pod.
    late = [f - at for f in client.failed_at if f - REQUEST_TIMEOUT_SECONDS > lost + ENDPOINTS_SECONDS]
    print(
        f"\n{node} killed: declared lost {lost - at:.1f} s later, replicas back on {where} {back:.1f} s "
        f"later; {client.summary()}, failures between {min(client.failed_at, default=at) - at:.1f} s and "
        f"{max(client.failed_at, default=at) - at:.1f} s after the kill"
    )
    assert back <= BACK_WITHIN_SECONDS, f"two ready replicas only {back:.1f} s after the kill"
    assert late == [], f"requests failed after the dead pod left the Service: {late}"
    assert client.answers > 0


def slow_training(name: str, parallelism: int) -> dict[str, Any]:
    return {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"dataset": {"name": "wide"}, "resources": SLOW, "parallelism": parallelism},
    }


def dataset(name: str, uri: str, parallelism: int) -> dict[str, Any]:
    """test_e2e_sharded_prepare's Dataset of a CSV (400,000 x 10, median fills), its pods slowed down so
    that a node can be killed under them."""
    body = resource(name, {"csv": {"uri": uri}}, parallelism)
    body["spec"]["resources"] = SLOW
    return body


def running_pod(marina: Any, selector: str) -> dict[str, Any] | None:
    """A pod of `selector` whose container runs, on a node other than MinIO's."""
    avoid = minio_node(marina.cluster)
    for pod in pods_of(marina.cluster, marina.namespace, selector):
        states = [s.get("state") or {} for s in pod["status"].get("containerStatuses") or []]
        if any("running" in state for state in states) and node_of(pod) not in ("", avoid):
            return pod
    return None


def kill_under(marina: Any, selector: str) -> tuple[str, str]:
    """Kill (and delete) the node of a running pod of `selector`: (pod, node)."""
    pod = marina.wait_for(
        f"a running pod of {selector} off MinIO's node", lambda: running_pod(marina, selector)
    )
    return pod["metadata"]["name"], node_of(pod)


def coefficients(status: dict[str, Any]) -> np.ndarray:
    model = artifact.load(status["model"]["uri"], status["model"]["sha256"])
    return np.array([*model.coefficients, model.intercept])


def test_a_worker_killed_under_a_two_pod_prepare_and_two_shards_changes_nothing(
    marina: Any, storage_env: None
) -> None:
    uri = f"s3://marina/raw/{marina.namespace}/wide.csv"
    write_csv(uri, *table())
    marina.apply(dataset("calm", uri, 1))
    calm = marina.wait_ready("dataset", "calm", timeout=900)
    marina.apply(dataset("wide", uri, 2))
    pod, node = kill_under(marina, "marina.dev/dataset=wide,batch.kubernetes.io/job-completion-index")
    with killed(marina.cluster, node, deleted=True):
        wide = marina.wait_ready("dataset", "wide", timeout=900)
    print(f"\nprepare in two pods: {pod} killed with {node}; Ready, version {wide['version'][:12]}")
    assert wide["shards"] == 2
    assert {key: wide[key] for key in SAME if key != "uri"} == {
        key: calm[key] for key in SAME if key != "uri"
    }

    marina.apply(slow_training("undisturbed", 2))
    undisturbed = marina.wait_ready("trainingjob", "undisturbed", timeout=900)
    marina.apply(slow_training("disturbed", 2))
    selector = "marina.dev/trainingjob=disturbed,batch.kubernetes.io/job-completion-index"
    pod, node = kill_under(marina, selector)
    with killed(marina.cluster, node, deleted=True):
        disturbed = marina.wait_ready("trainingjob", "disturbed", timeout=900)
    ours, theirs = coefficients(disturbed), coefficients(undisturbed)
    difference = float(np.max(np.abs(ours - theirs)) / max(1.0, float(np.max(np.abs(theirs)))))
    print(f"shards: {pod} killed with {node}; Ready; coefficients' relative difference {difference:.1e}")
    assert difference <= 1e-10
    prefix = disturbed["model"]["uri"].rsplit("/", 1)[0] + "/"
    assert model_artifacts(prefix) == [disturbed["model"]["uri"]]
