"""Checks before starting a Job, so unreachable storage or credentials that cannot be provided get a
clear condition instead of a pod stuck in CreateContainerConfigError or a run that fails half-way."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import Settings
from marina.controller.shared import credentials
from marina.controller.shared.conditions import Outcome, State


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
    """A WAITING (or BLOCKED) outcome when the cluster or the namespace is not ready for Marina's pods;
    on the way, the namespace's storage credentials are provided (credentials.py)."""
    if settings.probe_storage:
        problem = storage_problem(settings.s3_endpoint)
        if problem:
            return Outcome(State.WAITING, "StorageUnavailable", f"{problem}; retrying")
    return credentials.provide(kube, settings, namespace)
