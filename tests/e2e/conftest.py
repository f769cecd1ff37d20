"""Fixtures for Marina's end-to-end tests: the operator deployed in the cluster, a namespace of their own
(whose storage credentials the operator provides), and `Marina`, a small client for applying resources
and waiting on their status."""

from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_command import kubectl_command
from run_once import once

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "manifests" / "samples"


#: The operator the e2e tests deploy: manifests/operator with shorter waits (tests/e2e/operator), so that what
#: a test waits for comes sooner; what it checks is the same.
OPERATOR_MANIFESTS = Path(__file__).resolve().parent / "operator"


@pytest.fixture(scope="session")
def operator(cluster: Any, images: None, minio: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """CRDs, MinIO and the operator deployed by hack/deploy.sh, as a user would (once per run)."""
    once(tmp_path_factory, "operator", deploy)


def deploy() -> None:
    log = REPO / ".cluster" / "deploy.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run(
            ["bash", str(REPO / "hack" / "deploy.sh"), "default"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "MARINA_OPERATOR_MANIFESTS": str(OPERATOR_MANIFESTS)},
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        pytest.fail(f"hack/deploy.sh failed (exit {result.returncode}):\n{tail}", pytrace=False)


#: The kinds tests read over and over (each poll of a status), read in the test process through the API
#: client instead of one kubectl process per read (a tenth of a second of CPU each: a fifth of the machine's
#: CPU went to kubectl while the cluster tests ran side by side). Other kinds go through kubectl.
MARINA_PLURALS = {"dataset": "datasets", "trainingjob": "trainingjobs", "modeldeployment": "modeldeployments"}
READ_IN_PROCESS = {*MARINA_PLURALS, "deployment", "job", "horizontalpodautoscaler", "service"}


@functools.cache
def api_client(kubeconfig: str) -> Any:
    """One kubernetes ApiClient per kubeconfig and process (it keeps its connections)."""
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


def read_raw(api: Any, kind: str, namespace: str, name: str) -> Any:
    """The object's JSON as the API server sent it, kubectl's `-o json` (the raw response, not the client's
    models, whose timestamps and field names would differ)."""
    from kubernetes import client

    raw = {"_preload_content": False, "_request_timeout": 60}
    if kind in MARINA_PLURALS:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(
            "marina.dev", "v1alpha1", namespace, MARINA_PLURALS[kind], name, **raw
        )
    if kind == "deployment":
        return client.AppsV1Api(api).read_namespaced_deployment(name, namespace, **raw)
    if kind == "job":
        return client.BatchV1Api(api).read_namespaced_job(name, namespace, **raw)
    if kind == "horizontalpodautoscaler":
        return client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(name, namespace, **raw)
    return client.CoreV1Api(api).read_namespaced_service(name, namespace, **raw)


@dataclass
class Marina:
    """kubectl for one namespace, plus waiting on Marina's status conventions."""

    cluster: Any
    namespace: str
    proxy: str | None = None  # `kubectl proxy` where the host cannot reach ClusterIPs

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return str(self.cluster.kubectl("-n", self.namespace, *args, stdin=stdin))

    def try_kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        command = [
            *kubectl_command(),
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "-n",
            self.namespace,
            *args,
        ]
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

    def apply(self, *documents: dict[str, Any]) -> None:
        # JSON, not YAML: kubectl's YAML reads strings such as `y` or `on` as booleans.
        self.kubectl(
            "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})
        )

    def sample(self, kind: str) -> dict[str, Any]:
        return dict(yaml.safe_load((SAMPLES / f"marina.dev_v1alpha1_{kind.lower()}.yaml").read_text()))

    def pipeline(self, name: str, **serving: Any) -> list[dict[str, Any]]:
        """The sample Dataset, TrainingJob and ModelDeployment, all named `name` and following each other;
        `serving` sets fields of the ModelDeployment's spec (monitoring, autoscaling, ...)."""
        dataset, training, deployment = (
            self.sample(k) for k in ("Dataset", "TrainingJob", "ModelDeployment")
        )
        for body in (dataset, training, deployment):
            body["metadata"]["name"] = name
        training["spec"]["dataset"]["name"] = name
        deployment["spec"]["model"]["trainingJob"] = name
        deployment["spec"].update(serving)
        return [dataset, training, deployment]

    def apply_ready(self, *documents: dict[str, Any], timeout: float = 300) -> None:
        """Apply, then wait until each of them is Ready, in order."""
        self.apply(*documents)
        for body in documents:
            self.wait_ready(body["kind"].lower(), body["metadata"]["name"], timeout=timeout)

    def checked_after(self, name: str, moment: float) -> dict[str, Any] | None:
        """status.monitoring of ModelDeployment `name` once a drift check that began after `moment`
        (epoch seconds; status times are whole seconds) is written."""
        monitoring = self.status("modeldeployment", name).get("monitoring") or {}
        checked = monitoring.get("lastChecked")
        if checked and datetime.fromisoformat(checked.replace("Z", "+00:00")).timestamp() >= moment + 1:
            return dict(monitoring)
        return None

    def get(self, kind: str, name: str) -> dict[str, Any]:
        if kind in READ_IN_PROCESS:
            found = self.read(kind, name)
            if found is None:
                pytest.fail(f"{kind} {self.namespace}/{name} not found", pytrace=False)
            return found
        return dict(json.loads(self.kubectl("get", kind, name, "-o", "json")))

    def exists(self, kind: str, name: str) -> bool:
        if kind in READ_IN_PROCESS:
            return self.read(kind, name) is not None
        return self.try_kubectl("get", kind, name, "-o", "name").returncode == 0

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        """One of READ_IN_PROCESS, read in this process; None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            response = read_raw(api_client(str(self.cluster.kubeconfig)), kind, self.namespace, name)
        except ApiException as error:
            if error.status == 404:
                return None
            pytest.fail(
                f"reading {kind} {self.namespace}/{name}: {error.status} {error.reason}", pytrace=False
            )
        return dict(json.loads(response.data))

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return dict(self.get(kind, name).get("status") or {})

    def condition(self, kind: str, name: str, kind_of_condition: str = "Ready") -> dict[str, Any]:
        for condition in self.status(kind, name).get("conditions") or []:
            if condition["type"] == kind_of_condition:
                return dict(condition)
        return {}

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 300, every: float = 1.0) -> Any:
        """Poll `check` until it returns something truthy; fail with `what` and the last status."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
            time.sleep(every)

    def wait_ready(self, kind: str, name: str, timeout: float = 300) -> dict[str, Any]:
        # kubectl gives up at --timeout; its process gets a little longer (it was capped at 120 s).
        wait = ("wait", "--for=condition=Ready", f"{kind}/{name}", f"--timeout={int(timeout)}s")
        result = self.try_kubectl(*wait, timeout=timeout + 30)
        if result.returncode != 0:
            pytest.fail(
                f"{kind}/{name} not Ready: {json.dumps(self.status(kind, name), indent=1)}", pytrace=False
            )
        return self.status(kind, name)

    def wait_reason(self, kind: str, name: str, reason: str, timeout: float = 300) -> dict[str, Any]:
        return dict(
            self.wait_for(
                f"{kind}/{name} Ready reason {reason} (now {self.condition(kind, name)})",
                lambda: (c := self.condition(kind, name)).get("reason") == reason and c,
                timeout,
            )
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        from kubernetes import client

        listed = client.CoreV1Api(api_client(str(self.cluster.kubeconfig))).list_namespaced_event(
            self.namespace,
            field_selector=f"involvedObject.name={name}",
            _preload_content=False,
            _request_timeout=60,
        )
        return list(json.loads(listed.data)["items"])

    def events_with(self, name: str, *reasons: str, timeout: float = 60) -> list[dict[str, Any]]:
        """`name`'s events once each of `reasons` is among them: the operator posts an event just after the
        status write it follows, so a test that has just seen the status waits for the event."""

        def listed() -> list[dict[str, Any]] | None:
            events = self.events(name)
            seen = {event["reason"] for event in events}
            return events if all(reason in seen for reason in reasons) else None

        found: list[dict[str, Any]] = self.wait_for(f"events {reasons} of {name}", listed, timeout=timeout)
        return found

    def events_including(
        self, name: str, *wanted: tuple[str, str], timeout: float = 60
    ) -> list[tuple[str, str]]:
        """The (type, reason) of `name`'s events once all of `wanted` are among them (see `events_with`)."""
        events = self.events_with(name, *(reason for _, reason in wanted), timeout=timeout)
        pairs = [(event["type"], event["reason"]) for event in events]
        assert all(pair in pairs for pair in wanted), (wanted, pairs)
        return pairs

    def credentials(self, secret_name: str) -> dict[str, str]:
        """The storage credentials in the namespace's Secret (the operator writes them; never printed)."""
        secret = json.loads(self.kubectl("get", "secret", secret_name, "-o", "json"))
        return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}

    def service_url(self, name: str) -> str:
        """Where the test process reaches a Service: its ClusterIP on the local cluster (this host runs
        kube-proxy), elsewhere the API server's service proxy through `kubectl proxy`."""
        if self.proxy is not None:
            return f"{self.proxy}/api/v1/namespaces/{self.namespace}/services/{name}:80/proxy"
        ip = self.kubectl("get", "service", name, "-o", "jsonpath={.spec.clusterIP}").strip()
        return f"http://{ip}:80"


def new_namespace(cluster: Any, proxy: str | None) -> Iterator[Marina]:
    """A fresh namespace, deleted afterwards (unless MARINA_E2E_KEEP is set). No credentials are put in
    it: the operator writes the namespace's own storage identity into its Secret when it needs one."""
    name = f"marina-e2e-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield Marina(cluster, name, proxy)
    finally:
        if not os.environ.get("MARINA_E2E_KEEP"):
            cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def marina(cluster: Any, operator: None, minio: Any, api_proxy: str | None) -> Iterator[Marina]:
    """A namespace of its own (per test module)."""
    yield from new_namespace(cluster, api_proxy)


@pytest.fixture(scope="module")
def other_marina(cluster: Any, operator: None, minio: Any, api_proxy: str | None) -> Iterator[Marina]:
    """A second namespace, for what one namespace must not reach of another's."""
    yield from new_namespace(cluster, api_proxy)


@pytest.fixture
def storage_env(minio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """marina.storage in the test process talks to the cluster's MinIO."""
    for key, value in minio.environment().items():
        monkeypatch.setenv(key, value)
