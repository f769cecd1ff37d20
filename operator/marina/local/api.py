"""An in-memory Kubernetes API for `marina run`: what the reconcilers read and write (objects, their
generations and resourceVersions, status merges, events, the garbage collector's cascade), and the work
the cluster's controllers would do with the children they create (`Workloads`: a Job's pods run, a
Deployment's server starts). The reconcilers cannot tell it from the real `kube.client.Kube`."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from marina.controller.kube.client import CONFLICT, KubeError
from marina.system.clock import utc_now

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


class Workloads(Protocol):
    """What happens to a child once it exists: a Job runs its pods, a Deployment serves."""

    def created(self, api: LocalApi, body: dict[str, Any]) -> None: ...

    def deleted(self, api: LocalApi, body: Mapping[str, Any]) -> None: ...


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """A JSON merge patch (RFC 7386), as the API server applies one to a status: None deletes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def matches(labels: Mapping[str, str], selector: str | None) -> bool:
    """Equality-based label selectors (`a=b,c=d`), the only kind the reconcilers use."""
    if not selector:
        return True
    return all(labels.get(k) == v for k, v in (term.split("=", 1) for term in selector.split(",")))


class LocalApi:
    """Objects by (apiVersion, kind, namespace, name); `on_event` hears every event a reconciler posts."""

    def __init__(self, workloads: Workloads, on_event: Callable[[str, str, str, str], None]) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.workloads = workloads
        self.on_event = on_event
        self._uids = itertools.count(1)
        self._versions = itertools.count(1)

    @staticmethod
    def key(body: Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        return str(body["apiVersion"]), str(body["kind"]), str(meta.get("namespace") or ""), str(meta["name"])

    def put(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as a create does: a uid, generation 1, a resourceVersion, a creation time."""
        stored = copy.deepcopy(dict(body))
        meta = stored["metadata"]
        meta.setdefault("uid", f"local-{next(self._uids)}")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", utc_now())
        self._touch(stored)
        self.objects[self.key(stored)] = stored
        return copy.deepcopy(stored)

    def _touch(self, stored: dict[str, Any]) -> None:
        stored["metadata"]["resourceVersion"] = str(next(self._versions))

    # --- KubeApi ---------------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(body)
            for (version, each, space, _), body in list(self.objects.items())
            if (version, each, space) == (api_version, kind, namespace)
            and matches(body["metadata"].get("labels") or {}, label_selector)
        ]

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        existing = self.objects.get(self.key(body))
        if existing is not None:  # as Kube.create answers AlreadyExists: the object found
            return copy.deepcopy(existing)
        created = self.put(body)
        self.workloads.created(self, created)
        return self.get(*self.key(created)) or created

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        existing = self.objects.get(self.key(body))
        if existing is None:
            return self.create(body)
        if "spec" not in body and "data" not in body and "stringData" not in body:  # metadata only
            annotations = existing["metadata"].setdefault("annotations", {})
            annotations.update(body["metadata"].get("annotations") or {})
            self._touch(existing)
            return copy.deepcopy(existing)
        changed = existing.get("spec") != body.get("spec")
        for part in ("spec", "data", "stringData"):
            if part in body:
                existing[part] = copy.deepcopy(body[part])
        existing["metadata"]["annotations"] = dict(body["metadata"].get("annotations") or {})
        if changed:
            existing["metadata"]["generation"] = int(existing["metadata"].get("generation") or 1) + 1
        self._touch(existing)
        if changed:
            self.workloads.created(self, existing)
        return copy.deepcopy(existing)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        gone = self.objects.pop((api_version, kind, namespace, name), None)
        if gone is not None:
            self.workloads.deleted(self, gone)
            self._collect_dependents(str(gone["metadata"]["uid"]))

    def _collect_dependents(self, uid: str) -> None:
        """The garbage collector: whatever names `uid` among its ownerReferences goes too."""
        for key, body in list(self.objects.items()):
            references = body["metadata"].get("ownerReferences") or []
            if key in self.objects and any(reference.get("uid") == uid for reference in references):
                self.delete(*key)

    def patch_status(
        self, body: Mapping[str, Any], status: Mapping[str, Any], *, unchanged_since_read: bool = False
    ) -> dict[str, Any]:
        stored = self.objects.get(self.key(body))
        where = f"{body['metadata'].get('namespace')}/{body['metadata']['name']}"
        if stored is None:
            raise KubeError("update the status of", str(body["kind"]), where, 404, "NotFound")
        if unchanged_since_read and body["metadata"].get("resourceVersion") != stored["metadata"].get(
            "resourceVersion"
        ):
            raise KubeError("update the status of", str(body["kind"]), where, CONFLICT, "Conflict")
        merge(stored.setdefault("status", {}), status)
        self._touch(stored)
        return copy.deepcopy(stored)

    def event(self, body: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        self.on_event(f"{body['kind']}/{body['metadata']['name']}", event_type, reason, message)
