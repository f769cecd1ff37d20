"""What the kinds' handlers share at run time: the settings, the one API client, the health record, and
reconciling an object under its lock from kopf's body when that body is current.

**Is kopf's body current?** kopf hands a change handler the body of the watch event it is processing.
The handler then waits for the object's lock (`reconciler.lock_for`), which a child's event, a follower
trigger or the background loop may hold while it writes the object's status; so the body can be older
than a status this process just wrote. Deciding on it would compare the outcome with a status that is
no longer there: a transition event posted twice, a condition's lastTransitionTime moved, a canary step
begun again. The object's status is written by this process alone (the leader), so the question is
whether the body carries the status this process last wrote: `Writes` keeps a digest of it (fed by
`Recording`), and a body whose status has another digest is replaced by the object read again, once.
A newer spec in the body does not matter here (kopf brings every spec change as a later event anyway).
resourceVersions cannot answer it: they are opaque (only equality means anything), and kopf moves them
right after a handler with its own annotations and takes only the last of a burst of events.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from marina.contract import API_VERSION
from marina.controller.kube import metrics
from marina.controller.kube.client import KubeApi
from marina.controller.kube.health import Health
from marina.controller.kube.settings import Settings
from marina.controller.shared.conditions import Outcome
from marina.controller.shared.reconciler import Reconcile, forget_lock, lock_for, locked_objects

Key = tuple[str, str, str]  # kind, namespace, name


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return str(body.get("kind")), str(meta.get("namespace") or ""), str(meta["name"])


class Writes:
    """A digest of the status this process last wrote on each object (module docstring)."""

    def __init__(self) -> None:
        self._last: dict[Key, str] = {}
        self._guard = threading.Lock()

    def wrote(self, written: Mapping[str, Any]) -> None:
        with self._guard:
            self._last[key_of(written)] = digest(written.get("status"))

    def forget(self, key: Key) -> None:
        with self._guard:
            self._last.pop(key, None)

    def keys(self) -> set[Key]:
        with self._guard:
            return set(self._last)

    def current(self, body: Mapping[str, Any]) -> bool:
        """Whether `body` carries the status this process last wrote on it (or it wrote none)."""
        with self._guard:
            last = self._last.get(key_of(body))
        return last is None or last == digest(body.get("status"))


def digest(status: Any) -> str:
    return hashlib.sha256(json.dumps(status, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Recording:
    """The API client, noting each status write in `writes`."""

    def __init__(self, kube: KubeApi, writes: Writes) -> None:
        self.kube, self.writes = kube, writes

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(api_version, kind, namespace, name)

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return self.kube.list(api_version, kind, namespace, label_selector)

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.kube.create(body)

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.kube.apply(body)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.kube.delete(api_version, kind, namespace, name)

    def patch_status(
        self, body: Mapping[str, Any], status: Mapping[str, Any], *, unchanged_since_read: bool = False
    ) -> dict[str, Any]:
        written = self.kube.patch_status(body, status, unchanged_since_read=unchanged_since_read)
        self.writes.wrote(written)
        return written

    def event(self, body: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        self.kube.event(body, event_type, reason, message)


@dataclass
class Runtime:
    """The operator's settings, its API client (made on first use) and its health record."""

    settings: Settings
    health: Health
    make_kube: Callable[[], KubeApi]
    writes: Writes = field(default_factory=Writes)
    _made: list[KubeApi] = field(default_factory=list)

    def kube(self) -> KubeApi:
        if not self._made:
            self._made.append(Recording(self.make_kube(), self.writes))
        return self._made[0]

    @contextmanager
    def current(
        self, kind: str, namespace: str, name: str, body: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any] | None]:
        """Under the object's lock: kopf's `body` when it is current, else the object read now (one GET);
        None when it is gone or going."""
        with lock_for(kind, namespace, name):
            found = copy.deepcopy(dict(body)) if body is not None and self.writes.current(body) else None
            if found is None:
                found = self.kube().get(API_VERSION, kind, namespace, name)
            yield None if found is None or found["metadata"].get("deletionTimestamp") else found

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """An object is gone: what this process remembered of it (its lock, the digest of the status it
        last wrote, its metrics' series) goes too, so memory and series follow the live objects."""
        forget_lock(kind, namespace, name)
        self.writes.forget((kind, namespace, name))
        metrics.forget(kind, namespace, name)

    def remembered(self) -> set[Key]:
        """Every object this process holds something of (to sweep those no index knows any more)."""
        return locked_objects() | self.writes.keys() | metrics.remembered()

    def reconcile(
        self,
        kind: str,
        reconcile: Reconcile,
        namespace: str,
        name: str,
        body: Mapping[str, Any] | None = None,
    ) -> Outcome | None:
        """Reconcile the object (None when it no longer exists); `body`: kopf's, when kopf gave one."""
        with (
            self.health.working(f"reconcile of {kind} {namespace}/{name}"),
            self.current(kind, namespace, name, body) as found,
        ):
            return None if found is None else reconcile(self.kube(), self.settings, found)
