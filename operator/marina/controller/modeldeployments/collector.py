"""Reading the serving pods' bin counts for drift monitoring: which pods, and one HTTP GET each.

Each ready pod is asked directly at its pod IP (not through the Service, which would answer from one
pod at random) for `GET /v2/models/<model>/distribution`, with a short timeout so one stuck pod
cannot hold up a check. What the pods say is parsed by `monitoring.parse_counts`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from marina.controller.kube.client import KubeApi
from marina.controller.modeldeployments.manifests import SERVER_PORT
from marina.controller.modeldeployments.monitoring import PodCounts, parse_counts
from marina.system.text import one_line

TIMEOUT_SECONDS = 3.0
MAX_PARALLEL = 8
#: The largest answer read: a model with 1,000 features, 60 windows of 10 bins each is about 2 MB.
MAX_BYTES = 32 * 1024 * 1024


class CollectError(Exception):
    """A pod did not answer with counts; `status` is the HTTP status when it answered at all."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Pod:
    name: str
    uid: str
    ip: str


@dataclass
class Collected:
    """The readings of the pods that answered, and what the others said instead."""

    readings: list[PodCounts] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    no_reference: bool = False  # a pod answered 404: its model carries no reference distribution


Fetch = Callable[[str], Any]


def ready_pods(kube: KubeApi, namespace: str, selector: str) -> list[Pod]:
    """The pods of `selector` that are Ready, have an IP and are not going away."""
    found = []
    for pod in kube.list("v1", "Pod", namespace, selector):
        status, meta = pod.get("status") or {}, pod["metadata"]
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        if ready and status.get("podIP") and not meta.get("deletionTimestamp"):
            found.append(Pod(str(meta["name"]), str(meta.get("uid") or meta["name"]), str(status["podIP"])))
    return found


def distribution_url(pod: Pod, model: str, port: int = SERVER_PORT) -> str:
    return pod_url(pod, f"/v2/models/{model}/distribution", port)


def pod_url(pod: Pod, path: str, port: int = SERVER_PORT) -> str:
    host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
    return f"http://{host}:{port}{path}"


def fetch_json(url: str, timeout: float = TIMEOUT_SECONDS) -> Any:
    """GET `url` and parse its JSON; CollectError (with the HTTP status when there is one) otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise CollectError(f"HTTP {error.code} {_said(error)}", error.code) from error
    except (urllib.error.URLError, OSError) as error:
        raise CollectError(str(getattr(error, "reason", error))) from error
    if len(body) > MAX_BYTES:
        raise CollectError(f"answer larger than {MAX_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as error:
        raise CollectError(f"answer is not JSON: {error}") from error


def collect(pods: Sequence[Pod], model: str, at: float, fetch: Fetch = fetch_json) -> Collected:
    """Ask every pod at once; each reading is stamped `at` (one time per check, so the spans of the
    pods are cut at the same moment)."""
    collected = Collected()
    answers = ask(pods, f"/v2/models/{model}/distribution", fetch)
    for pod, answer in zip(pods, answers, strict=True):
        reading = _counts(answer, pod, at)
        if isinstance(reading, PodCounts):
            collected.readings.append(reading)
            continue
        collected.problems.append(f"pod {pod.name}: {reading}")
        collected.no_reference |= isinstance(reading, CollectError) and reading.status == 404
    return collected


def ask(pods: Sequence[Pod], path: str, fetch: Fetch = fetch_json) -> list[Any]:
    """GET `path` from every pod at once: each one's JSON answer, or the CollectError it gave instead."""
    if not pods:
        return []

    def one(pod: Pod) -> Any:
        try:
            return fetch(pod_url(pod, path))
        except CollectError as error:
            return error

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pods))) as pool:
        return list(pool.map(one, pods))


def _counts(answer: Any, pod: Pod, at: float) -> PodCounts | Exception:
    if isinstance(answer, CollectError):
        return answer
    try:
        return parse_counts(answer, pod.uid, at)
    except ValueError as error:
        return ValueError(f"unexpected distribution: {error}")


def _said(error: urllib.error.HTTPError) -> str:
    """The server's own message when it sent a JSON error body (`{"error": ...}`)."""
    try:
        document = json.loads(error.read(4096) or b"{}")
    except (ValueError, OSError):
        return str(error.reason)
    said = document.get("error") if isinstance(document, Mapping) else None
    return one_line(str(said or error.reason), 300)
