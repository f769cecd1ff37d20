"""Session fixtures for tests that need a real Kubernetes cluster.

`cluster` uses `$KUBECONFIG` when it reaches a cluster (kind, k3d, a cloud cluster), else the local
cluster's `.cluster/kubeconfig`, else brings the local cluster up with `hack/cluster-up.sh`. `images` makes
sure `marina.local/marina:dev` and `marina.local/minio:dev` are in the cluster, `minio` runs MinIO and tells
the test process how to reach it. Without a cluster a test fails with the reason; it is never skipped.
Tests under tests/cluster and tests/e2e get the `cluster` marker automatically.

The expensive set-up (bringing the cluster up, building and loading images, deploying) runs once per test
run, however many pytest-xdist workers ask for it (`once`): the first takes a lock and does it, the others
wait for it and find it done, or failed with the same message. Tests marked `serial` disturb the whole
cluster and run alone (`make test` runs them in a phase of their own, without -n).
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kubectl_command import kubectl_command
from run_once import once

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
LOCAL_KUBECONFIG = REPO / ".cluster" / "kubeconfig"
LOCAL_API_SERVER = "https://10.244.0.1:6443"  # hack/lib/cluster.sh: NODE_IP and API_PORT
CLUSTER_TEST_FOLDERS = {"cluster", "e2e"}
MINIO_NAMESPACE = "marina-system"
MINIO_SECRET = "marina-s3-credentials"
LOG_TAIL_LINES = 40
IMAGES_LISTED_SECONDS = 90
MARINA_IMAGES = ("marina.local/marina:dev", "marina.local/minio:dev")
# minio_server, s3_env: a local MinIO for the S3 tests; trained: datasets and models the commands make;
# go_tools: argocd_health, kstatus and helm built from their Go modules
pytest_plugins = ("minio_server", "trained", "go_tools")


#: The order in which the cluster test modules are handed to pytest-xdist's workers (make test: --dist
#: loadfile --no-loadscope-reorder); others follow in their usual order. A worker is given its next module as
#: soon as it starts its last test, so the four longest go first, each with a shorter one queued behind it,
#: then the rest: in a simulation of xdist's scheduling with measured times (683 s of tests, 4 workers) the
#: side-by-side phase took 191 s on average, against 216 s longest first.
MODULE_ORDER = (
    "e2e/test_e2e_served_retraining.py",
    "e2e/test_e2e_served_canary.py",
    "e2e/test_e2e_promotion.py",
    "e2e/test_e2e_closed_loop.py",
    "e2e/test_e2e_canary.py",
    "e2e/test_e2e_credentials.py",
    "e2e/test_e2e_eviction.py",
    "e2e/test_e2e_categories.py",
    "e2e/test_e2e_drift.py",
    "e2e/test_e2e_ownership.py",
    "cluster/test_cluster.py",
    "e2e/test_e2e_errors.py",
    "e2e/test_e2e_alerts.py",
    "e2e/test_e2e_new_data.py",
    "e2e/test_e2e_parquet_folder.py",
    "e2e/test_e2e_memory.py",
    "e2e/test_e2e_pipeline.py",
    "e2e/test_e2e_retention.py",
    "e2e/test_e2e_tenancy.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if path.is_relative_to(TESTS) and path.relative_to(TESTS).parts[0] in CLUSTER_TEST_FOLDERS:
            item.add_marker(pytest.mark.cluster)
    rank = {name: index for index, name in enumerate(MODULE_ORDER)}

    def position(item: pytest.Item) -> int:
        path = Path(str(item.path)).resolve()
        name = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else ""
        return rank.get(name, len(rank))

    items.sort(key=position)  # stable: each module's tests keep their order


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `serial` test beside others (pytest-xdist with more than one worker) would disturb them and be
    disturbed: it fails at once instead of flakily."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if item.get_closest_marker("serial") is not None and workers > 1:
        pytest.fail(
            f"{item.nodeid} is marked serial (it disturbs the whole cluster) and runs alone: "
            "run it without -n, e.g. `pytest -m serial` (`make test` does)",
            pytrace=False,
        )


@dataclass(frozen=True)
class Cluster:
    """A reachable cluster: its kubeconfig; `local` when it is ours (the host reaches its ClusterIPs)."""

    kubeconfig: Path
    local: bool

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        """Runs kubectl against this cluster and returns stdout; fails the test with stderr on error."""
        command = [*kubectl_command(), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout


@dataclass(frozen=True, repr=False)
class MinioEndpoint:
    """Where MinIO answers: `url` from the test process, `cluster_url` from pods (via cluster DNS)."""

    url: str
    cluster_url: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    namespace: str = MINIO_NAMESPACE
    secret_name: str = MINIO_SECRET

    def __repr__(self) -> str:  # never print credentials
        return f"MinioEndpoint(url={self.url!r}, cluster_url={self.cluster_url!r})"

    def environment(self) -> dict[str, str]:
        """The variables marina.storage reads, for use from the test process."""
        return {
            "MARINA_S3_ENDPOINT": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


def _api_server(kubeconfig: Path) -> str | None:
    """The server URL of the kubeconfig's current context, read without contacting it."""
    import yaml

    try:
        document = yaml.safe_load(kubeconfig.read_text())
        context = next(c["context"] for c in document["contexts"] if c["name"] == document["current-context"])
        return str(
            next(c["cluster"]["server"] for c in document["clusters"] if c["name"] == context["cluster"])
        )
    except (OSError, yaml.YAMLError, KeyError, StopIteration, TypeError):
        return None


def _reachable(kubeconfig: Path) -> str | None:
    """None when the cluster answers /version within a few seconds, else the reason it does not."""
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        client.VersionApi(api).get_code(_request_timeout=5)
        return None
    except Exception as error:  # any failure means "not usable"; report it
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _run_script(script: str, log_name: str, args: Sequence[str] = ()) -> None:
    """Runs a hack/ script with its output in .cluster/<log_name>; fails the test with the log's tail."""
    log = REPO / ".cluster" / log_name
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run(
            ["bash", str(REPO / "hack" / script), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        pytest.fail(
            f"hack/{script} failed (exit {result.returncode}); full log {log}:\n{tail}", pytrace=False
        )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """A reachable Kubernetes cluster, brought up locally when none is configured (once per run)."""
    kubeconfig = Path(once(tmp_path_factory, "cluster", _find_or_bring_up))
    reason = _reachable(kubeconfig)
    if reason is not None:
        pytest.fail(f"the cluster of {kubeconfig} no longer answers: {reason}", pytrace=False)
    return _use(kubeconfig)


def _find_or_bring_up() -> str:
    """The kubeconfig of a reachable cluster: $KUBECONFIG's, the local one's, or the local one's after
    hack/cluster-up.sh."""
    reasons = []
    configured = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    candidates = [Path(configured)] if configured else []
    candidates.append(LOCAL_KUBECONFIG)
    for kubeconfig in candidates:
        if not kubeconfig.is_file():
            reasons.append(f"{kubeconfig}: no such file")
            continue
        reason = _reachable(kubeconfig)
        if reason is None:
            return str(kubeconfig)
        reasons.append(f"{kubeconfig}: {reason}")
    if os.geteuid() != 0:
        pytest.fail(
            "no reachable cluster (" + "; ".join(reasons) + ") and bringing up the local one needs root: "
            "run `sudo make cluster-up` or point KUBECONFIG at a cluster",
            pytrace=False,
        )
    _run_script("cluster-up.sh", "cluster-up.log")
    reason = _reachable(LOCAL_KUBECONFIG)
    if reason is not None:
        pytest.fail(f"hack/cluster-up.sh succeeded but the cluster does not answer: {reason}", pytrace=False)
    return str(LOCAL_KUBECONFIG)


def _use(kubeconfig: Path) -> Cluster:
    os.environ["KUBECONFIG"] = str(kubeconfig)  # kubectl and clients started by tests see the same cluster
    return Cluster(kubeconfig=kubeconfig, local=_api_server(kubeconfig) == LOCAL_API_SERVER)


PROMETHEUS_URL = "http://127.0.0.1:9090"  # hack/lib/monitoring.sh: PROMETHEUS_PORT


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The local cluster's Prometheus (`make monitoring`), started by hack/monitoring-up.sh when it does not
    answer; its URL. Scrapes Marina's serving pods and operator and evaluates manifests/monitoring's rules."""
    if not cluster.local:
        pytest.fail(
            "the monitoring tests need the local cluster's Prometheus (hack/monitoring-up.sh)", pytrace=False
        )
    if not _answers(f"{PROMETHEUS_URL}/-/ready"):
        once(
            tmp_path_factory,
            "prometheus",
            lambda: _run_script("monitoring-up.sh", "monitoring-up-prometheus.log", ["prometheus"]),
        )
    return PROMETHEUS_URL


@pytest.fixture(scope="session")
def metrics_api(cluster: Cluster, kube: ApiClient, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The Metrics API (metrics.k8s.io, served by metrics-server) answers, so HPAs and `kubectl top` work;
    on the local cluster hack/monitoring-up.sh starts metrics-server when it does not."""
    if _metrics_api_available(kube):
        return
    if not cluster.local:
        pytest.fail(
            "the autoscaling tests need the Metrics API (metrics.k8s.io): install metrics-server",
            pytrace=False,
        )
    once(
        tmp_path_factory,
        "metrics-server",
        lambda: _run_script("monitoring-up.sh", "monitoring-up-metrics-server.log", ["metrics-server"]),
    )
    if not _metrics_api_available(kube):
        pytest.fail("hack/monitoring-up.sh ran but the Metrics API is not Available", pytrace=False)


def _metrics_api_available(kube: ApiClient) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        service = client.ApiregistrationV1Api(kube).read_api_service("v1beta1.metrics.k8s.io")
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    conditions = (service.status.conditions if service.status else None) or []
    return any(c.type == "Available" and c.status == "True" for c in conditions)


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> ApiClient:
    """A kubernetes.client.ApiClient for the session's cluster."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def images(cluster: Cluster, kube: ApiClient, tmp_path_factory: pytest.TempPathFactory) -> None:
    """marina.local/marina:dev and marina.local/minio:dev are in the cluster: built and loaded here (once
    per run), or already on a remote cluster's nodes under exactly these names (the manifests' and the
    operator's)."""
    if cluster.local:
        once(tmp_path_factory, "images", lambda: _run_script("images.sh", "images.log"))
        return
    from kubernetes import client

    def missing_images() -> list[str]:
        names = {
            name
            for node in client.CoreV1Api(kube).list_node().items
            for image in node.status.images or []
            for name in image.names or []
        }
        return [image for image in MARINA_IMAGES if image not in names]

    # A kubelet lists an image loaded into its node at its next status update (every 10 s, or after a
    # minute unchanged), not at once: a run that starts right after `make kind-up` waits for that.
    deadline = time.monotonic() + IMAGES_LISTED_SECONDS
    while (missing := missing_images()) and time.monotonic() < deadline:
        time.sleep(2)
    if missing:
        pytest.fail(
            f"images {missing} are not on the cluster's nodes: for kind run `make kind-up`", pytrace=False
        )


@pytest.fixture(scope="session")
def minio(
    cluster: Cluster, kube: ApiClient, images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MinioEndpoint]:
    """MinIO running in marina-system (hack/minio-up.sh, once per run); on the local cluster the test process
    reaches its ClusterIP directly, elsewhere through `kubectl port-forward` for the session."""
    from kubernetes import client

    once(tmp_path_factory, "minio", lambda: _run_script("minio-up.sh", "minio-up.log"))
    core = client.CoreV1Api(kube)
    secret = core.read_namespaced_secret(MINIO_SECRET, MINIO_NAMESPACE).data
    keys = {
        name: base64.b64decode(secret[name]).decode()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    cluster_url = f"http://minio.{MINIO_NAMESPACE}.svc.cluster.local:9000"
    forward = None
    if cluster.local:
        url = f"http://{core.read_namespaced_service('minio', MINIO_NAMESPACE).spec.cluster_ip}:9000"
    else:
        forward = KubectlForward(cluster, ["-n", MINIO_NAMESPACE, "port-forward", "svc/minio"], remote=9000)
        url = forward.start()
    try:
        yield MinioEndpoint(
            url=url,
            cluster_url=cluster_url,
            access_key=keys["AWS_ACCESS_KEY_ID"],
            secret_key=keys["AWS_SECRET_ACCESS_KEY"],
        )
    finally:
        if forward is not None:
            forward.stop()


@pytest.fixture(scope="session")
def api_proxy(cluster: Cluster) -> Iterator[str | None]:
    """On clusters whose ClusterIPs this host cannot reach (kind, remote ones): `kubectl proxy`, through
    which tests reach Services at /api/v1/namespaces/<ns>/services/<name>:<port>/proxy. None locally."""
    if cluster.local:
        yield None
        return
    proxy = KubectlForward(cluster, ["proxy"], remote=None)
    try:
        yield proxy.start()
    finally:
        proxy.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KubectlForward:
    """`kubectl port-forward` or `kubectl proxy` on a fixed loopback port, restarted whenever it exits.

    A port-forward ends when the pod behind it goes away (a test that scales MinIO to 0 does that);
    later tests must still reach the Service once it is back, at the same address. Restarts wait on
    an event (1 s between tries), so stopping is immediate.
    """

    def __init__(self, cluster: Cluster, args: Sequence[str], remote: int | None) -> None:
        self.port = _free_port()
        mapping = [f"{self.port}:{remote}"] if remote is not None else [f"--port={self.port}"]
        self.command = [
            *kubectl_command(),
            "--kubeconfig",
            str(cluster.kubeconfig),
            *args,
            "--address",
            "127.0.0.1",
            *mapping,
        ]
        self.stopping = threading.Event()
        self.process: subprocess.Popen[str] | None = None
        self.thread = threading.Thread(target=self._supervise, daemon=True)

    def start(self, timeout: float = 30) -> str:
        """Starts the supervisor; returns the local URL once the port accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                pytest.fail(f"{' '.join(self.command[2:])} did not listen within {timeout}s", pytrace=False)
            self.stopping.wait(0.1)
        return f"http://127.0.0.1:{self.port}"

    def _supervise(self) -> None:
        while not self.stopping.is_set():
            self.process = subprocess.Popen(
                self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
            )
            self.process.wait()
            self.stopping.wait(1.0)

    def stop(self) -> None:
        self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.thread.join(timeout=10)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def namespace(cluster: Cluster, kube: ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    from kubernetes import client

    name = f"marina-test-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def s3_namespace(namespace: str, kube: ApiClient, minio: MinioEndpoint) -> str:
    """A fresh namespace holding the marina-s3-credentials Secret (with MARINA_S3_ENDPOINT) for envFrom."""
    from kubernetes import client

    body: dict[str, Any] = {
        "metadata": {"name": minio.secret_name, "namespace": namespace},
        "stringData": {
            "AWS_ACCESS_KEY_ID": minio.access_key,
            "AWS_SECRET_ACCESS_KEY": minio.secret_key,
            "MARINA_S3_ENDPOINT": minio.cluster_url,
        },
    }
    client.CoreV1Api(kube).create_namespaced_secret(namespace, body)
    return namespace
