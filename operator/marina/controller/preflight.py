"""Checks before starting a Job, so a missing Secret or unreachable storage gets a clear condition
instead of a pod stuck in CreateContainerConfigError or a run that fails half-way."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from marina.controller.conditions import Outcome, State
from marina.controller.kube import KubeApi
from marina.controller.settings import Settings


def storage_problem(endpoint: str, timeout: float = 2.0) -> str | None:
    """None when the object-storage endpoint accepts TCP connections, else why not."""
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"object storage at {endpoint} is unreachable ({exc.strerror or type(exc).__name__})"


def blocking_outcome(kube: KubeApi, settings: Settings, namespace: str) -> Outcome | None:
    """A WAITING outcome when the namespace or the cluster is not ready for Marina's Jobs."""
    if kube.get("v1", "Secret", namespace, settings.s3_secret) is None:
        return Outcome(
            State.WAITING,
            "CredentialsMissing",
            f"Secret {settings.s3_secret} (object-storage credentials) not found in namespace "
            f"{namespace}; create it (hack/deploy.sh does) and Marina retries by itself",
        )
    if settings.probe_storage:
        problem = storage_problem(settings.s3_endpoint)
        if problem:
            return Outcome(State.WAITING, "StorageUnavailable", f"{problem}; retrying")
    return None
