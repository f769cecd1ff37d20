"""What the cluster's controllers and kubelet would do with the children the reconcilers create, done on
this machine: a Job's pods run `marina <command>` as processes (the same command line, environment and
result file as in the container), and a Deployment's pods are `marina serve` processes on loopback ports.

A Job runs to its end inside the create (the next reconcile reads its result as the operator would read
a finished Job); a server starts in the background and its Deployment counts it ready once
`/v2/health/ready` answers, or failed once its process exits (the pod then says why, as a crash-looping
pod's last termination does).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marina.local.api import LocalApi
from marina.system.clock import utc_now
from marina.system.text import one_line

TERMINATION_LOG = "/dev/termination-log"
RETRYABLE = 75  # EX_TEMPFAIL: the podFailurePolicy retries it within backoffLimit
LOG_TAIL_BYTES = 4096  # what FallbackToLogsOnError keeps of a pod's log


def command(module_args: list[str]) -> list[str]:
    """`marina <args>` as this machine runs it: the same Python, the same package."""
    return [sys.executable, "-c", "import sys; from marina.cli import main; sys.exit(main())", *module_args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """One serving pod: its process and the port it answers on."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/v2/health/ready"
            with urllib.request.urlopen(url, timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def said(self) -> str:
        return one_line(_tail(self.log), 1024, keep_end=True)


@dataclass
class LocalWorkloads:
    """Runs Jobs and serves Deployments for a `LocalApi`; logs go to `logs`."""

    logs: Path
    environment: Mapping[str, str]
    servers: dict[tuple[str, str], list[Server]] = field(default_factory=dict)  # by (namespace, name)

    def created(self, api: LocalApi, body: dict[str, Any]) -> None:
        if body["kind"] == "Job":
            self._run_job(api, body)
        elif body["kind"] == "Deployment":
            self._serve(api, body)

    def deleted(self, api: LocalApi, body: Mapping[str, Any]) -> None:
        if body["kind"] == "Deployment":
            self._stop(str(body["metadata"].get("namespace") or ""), str(body["metadata"]["name"]))

    # --- Jobs ------------------------------------------------------------------------------------------

    def _run_job(self, api: LocalApi, job: dict[str, Any]) -> None:
        spec = job["spec"]
        indexes = (
            range(int(spec.get("completions") or 1)) if spec.get("completionMode") == "Indexed" else [None]
        )
        started = utc_now()
        failed = None
        for index in indexes:
            failed = self._run_index(api, job, index)
            if failed is not None:
                break
        conditions = [
            {"type": "Failed" if failed else "Complete", "status": "True", "lastTransitionTime": utc_now()}
        ]
        if failed:
            conditions[0].update({"reason": "PodFailurePolicy", "message": failed})
        status: dict[str, Any] = {"conditions": conditions, "startTime": started}
        if not failed:
            status.update({"completionTime": utc_now(), "succeeded": len(indexes)})
        api.patch_status(job, status)

    def _run_index(self, api: LocalApi, job: Mapping[str, Any], index: int | None) -> str | None:
        """Run one index's pod until it succeeds, fails for good, or retries run out; why it failed."""
        limit = int(job["spec"].get("backoffLimitPerIndex", job["spec"].get("backoffLimit", 0)) or 0)
        for attempt in range(limit + 1):
            code = self._run_pod(api, job, index, attempt)
            if code == 0:
                return None
            if code != RETRYABLE:
                return f"container marina exited with {code}"
        return f"backoff limit of {limit} reached"

    def _run_pod(self, api: LocalApi, job: Mapping[str, Any], index: int | None, attempt: int) -> int:
        template = job["spec"]["template"]
        container = template["spec"]["containers"][0]
        name = f"{job['metadata']['name']}-{'' if index is None else f'{index}-'}{attempt}"
        log = self.logs / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="marina-pod-") as scratch, log.open("wb") as output:
            args, result = self._arguments(api, job, container, Path(scratch))
            environment = {**self.environment, **_variables(container), "HOME": scratch, "TMPDIR": scratch}
            if index is not None:
                environment["JOB_COMPLETION_INDEX"] = str(index)
            code = subprocess.run(command(args), env=environment, stdout=output, stderr=output).returncode
            message = result.read_text() if result.exists() and result.read_text().strip() else _tail(log)
        terminated = {"exitCode": code, "message": message, "reason": "Completed" if code == 0 else "Error"}
        labels = {**(template["metadata"].get("labels") or {}), "job-name": job["metadata"]["name"]}
        api.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": job["metadata"]["namespace"],
                    "labels": labels,
                    "ownerReferences": [
                        {"kind": "Job", "name": job["metadata"]["name"], "uid": job["metadata"]["uid"]}
                    ],
                },
                "spec": template["spec"],
                "status": {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "containerStatuses": [{"name": container["name"], "state": {"terminated": terminated}}],
                },
            }
        )
        return code

    def _arguments(
        self, api: LocalApi, job: Mapping[str, Any], container: Mapping[str, Any], scratch: Path
    ) -> tuple[list[str], Path]:
        """The container's args with its mounted ConfigMaps and its termination log made into files here."""
        args = [str(arg) for arg in container.get("args") or []]
        result = scratch / "termination-log"
        mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts") or []}
        for volume in job["spec"]["template"]["spec"].get("volumes") or []:
            source = volume.get("configMap")
            if source is None or volume["name"] not in mounts:
                continue
            config = api.get("v1", "ConfigMap", job["metadata"]["namespace"], source["name"]) or {}
            folder = scratch / volume["name"]
            folder.mkdir()
            for file, text in (config.get("data") or {}).items():
                (folder / file).write_text(text)
            args = [arg.replace(mounts[volume["name"]], str(folder)) for arg in args]
        return [str(result) if arg == TERMINATION_LOG else arg for arg in args], result

    # --- Deployments -----------------------------------------------------------------------------------

    def _serve(self, api: LocalApi, deployment: dict[str, Any]) -> None:
        """(Re)start the Deployment's servers: one process per replica, each on its own loopback port."""
        namespace, name = str(deployment["metadata"]["namespace"]), str(deployment["metadata"]["name"])
        self._stop(namespace, name)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        servers = []
        for replica in range(int(deployment["spec"].get("replicas", 1) or 0)):
            port = free_port()
            log = self.logs / f"{name}-{replica}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            args = _listening(list(container.get("args") or []), port)
            environment = {**self.environment, **_variables(container)}
            with log.open("wb") as output:
                process = subprocess.Popen(command(args), env=environment, stdout=output, stderr=output)
            servers.append(Server(process, port, log))
        self.servers[(namespace, name)] = servers
        self.refresh(api)

    def _stop(self, namespace: str, name: str) -> None:
        for server in self.servers.pop((namespace, name), []):
            server.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=10)
            if server.process.poll() is None:
                server.process.kill()

    def refresh(self, api: LocalApi) -> bool:
        """Bring every Deployment's status and pods up to what its servers do now; whether any changed."""
        changed = False
        for (namespace, name), servers in self.servers.items():
            deployment = api.get("apps/v1", "Deployment", namespace, name)
            if deployment is None:
                continue
            status = _deployment_status(deployment, servers)
            if {k: (deployment.get("status") or {}).get(k) for k in status} != status:
                api.patch_status(deployment, status)
                changed = True
        return changed

    def urls(self, namespace: str, name: str) -> list[str]:
        return [f"http://127.0.0.1:{server.port}" for server in self.servers.get((namespace, name), [])]

    def stop_all(self) -> None:
        for namespace, name in list(self.servers):
            self._stop(namespace, name)


def _deployment_status(deployment: Mapping[str, Any], servers: list[Server]) -> dict[str, Any]:
    ready = sum(1 for server in servers if server.process.poll() is None and server.ready())
    exited = [server for server in servers if server.process.poll() is not None]
    status: dict[str, Any] = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": len(servers),
        "updatedReplicas": len(servers),
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    if exited:  # it will never be ready: what the progress deadline would say, now, with the pod's words
        status["conditions"] = [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f"a server exited with {exited[0].process.returncode}: {exited[0].said()}",
            }
        ]
    return status


def _listening(args: list[str], port: int) -> list[str]:
    """The server's args bound to loopback and `port` instead of the pod's 0.0.0.0:8080."""
    replaced = {"--host": "127.0.0.1", "--port": str(port)}
    out: list[str] = []
    values = iter(args)
    for arg in values:
        out.append(arg)
        if arg in replaced:
            next(values, None)
            out.append(replaced[arg])
    return out


def _variables(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's plain variables (a Secret's, by reference, have no meaning here)."""
    return {str(v["name"]): str(v["value"]) for v in container.get("env") or [] if "value" in v}


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError), log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
        return handle.read().decode(errors="replace")
    return ""


def environment(store: Path | None) -> dict[str, str]:
    """The environment every local pod gets: this one's, with the local store when there is one."""
    variables = dict(os.environ)
    if store is not None:
        variables["MARINA_LOCAL_STORE"] = str(store)
    return variables


def all_servers(workloads: LocalWorkloads) -> Iterator[Server]:
    for servers in workloads.servers.values():
        yield from servers
