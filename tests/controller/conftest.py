"""Fakes for the controller's unit tests: an in-memory KubeApi and resource factories."""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from marina.contract import Failure, encode
from marina.controller.kube.client import CONFLICT, KubeError
from marina.controller.kube.settings import Settings
from marina.controller.shared import credentials
from marina.storage import Credentials, StorageError

Key = tuple[str, str, str, str]


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """JSON merge patch (RFC 7386): None deletes, dicts merge, everything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def matches(labels: Mapping[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    return all(labels.get(k) == v for k, v in (term.split("=", 1) for term in selector.split(",")))


class FakeKube:
    """Behaves like the API server for what the reconcilers use: objects, generations, status, events,
    writes refused with the server's code and reason (`reject`), and the garbage collector's cascade.
    Counts the reads (`gets` by kind, namespace and name; `lists` by kind, namespace and selector) and the
    status writes (`status_writes`), which `forget_reads` starts again."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str, str]] = []  # (object name, type, reason, message)
        self.applied: list[str] = []
        self.deleted: list[str] = []
        self.writes: list[str] = []  # "verb Kind/name" of every create, apply and delete (not status)
        self.rejections: dict[tuple[str, str], tuple[int, str, str]] = {}
        self.gets: Counter[tuple[str, str, str]] = Counter()
        self.lists: Counter[tuple[str, str, str]] = Counter()
        self.status_writes: list[str] = []  # "Kind/name" of every status write
        self._uids = itertools.count(1)
        self._versions = itertools.count(1)

    @staticmethod
    def key(body: Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        return body["apiVersion"], body["kind"], meta["namespace"], meta["name"]

    def add(self, body: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(body))
        meta = stored["metadata"]
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        if stored.get("kind") == "Service":  # the API server gives each Service its address on create
            stored.setdefault("spec", {}).setdefault("clusterIP", f"10.96.0.{next(self._uids) % 250 + 1}")
        self._touch(stored)
        self.objects[self.key(stored)] = stored
        return copy.deepcopy(stored)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets[(kind, namespace, name)] += 1
        return self._stored(api_version, kind, namespace, name)

    def _stored(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def forget_reads(self) -> None:
        self.gets.clear()
        self.lists.clear()
        self.status_writes.clear()

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        self.lists[(kind, namespace, label_selector or "")] += 1
        return [
            copy.deepcopy(o)
            for (v, k, ns, _), o in self.objects.items()
            if (v, k, ns) == (api_version, kind, namespace)
            and matches(o["metadata"].get("labels") or {}, label_selector)
        ]

    def reject(self, verb: str, kind: str, code: int, reason: str, message: str) -> None:
        """From now on, refuse `verb` (create, apply, delete) of every `kind` as the API server would."""
        self.rejections[(verb, kind)] = (code, reason, message)

    def _write(self, verb: str, kind: str, name: str) -> None:
        self.writes.append(f"{verb} {kind}/{name}")
        if (verb, kind) in self.rejections:
            raise KubeError(verb, kind, f"default/{name}", *self.rejections[(verb, kind)])

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._write("create", body["kind"], body["metadata"]["name"])
        existing = self.objects.get(self.key(body))
        return copy.deepcopy(existing) if existing else self.add(body)  # as Kube.create on AlreadyExists

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._write("apply", body["kind"], body["metadata"]["name"])
        self.applied.append(f"{body['kind']}/{body['metadata']['name']}")
        existing = self.objects.get(self.key(body))
        if existing is None:
            return self.add(body)
        if "spec" not in body and "data" not in body:  # metadata only: set these annotations, keep the rest
            annotations = existing["metadata"].setdefault("annotations", {})
            annotations.update(body["metadata"].get("annotations") or {})
            return copy.deepcopy(existing)
        address = (existing.get("spec") or {}).get("clusterIP")  # immutable: an apply leaves it
        spec = copy.deepcopy(body.get("spec"))
        if address is not None and isinstance(spec, dict):
            spec.setdefault("clusterIP", address)
        changed = existing.get("spec") != spec
        existing["spec"] = spec
        existing["metadata"]["annotations"] = dict(body["metadata"].get("annotations") or {})
        if "data" in body:  # a Secret or ConfigMap; labels other managers set stay, as with apply
            existing["data"] = copy.deepcopy(body["data"])
            existing["metadata"]["labels"] = {
                **(existing["metadata"].get("labels") or {}),
                **(body["metadata"].get("labels") or {}),
            }
        if changed:
            existing["metadata"]["generation"] += 1
        self._touch(existing)
        return copy.deepcopy(existing)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._write("delete", kind, name)
        gone = self.objects.pop((api_version, kind, namespace, name), None)
        if gone is not None:
            self.deleted.append(f"{kind}/{name}")
            self.collect_dependents(gone["metadata"]["uid"])

    def collect_dependents(self, uid: str) -> None:
        """The garbage collector: whatever names `uid` in its ownerReferences goes too (and so on)."""
        for key, body in list(self.objects.items()):
            if key in self.objects and any(
                ref.get("uid") == uid for ref in body["metadata"].get("ownerReferences") or []
            ):
                del self.objects[key]
                self.collect_dependents(body["metadata"]["uid"])

    def patch_status(
        self, body: Mapping[str, Any], status: Mapping[str, Any], *, unchanged_since_read: bool = False
    ) -> dict[str, Any]:
        stored = self.objects[self.key(body)]
        version = stored["metadata"]["resourceVersion"]
        if unchanged_since_read and body["metadata"].get("resourceVersion") != version:
            raise KubeError("update the status of", body["kind"], "default", CONFLICT, "Conflict")
        _merge(stored.setdefault("status", {}), status)
        self._touch(stored)
        self.status_writes.append(f"{body['kind']}/{body['metadata']['name']}")
        return copy.deepcopy(stored)

    def _touch(self, stored: dict[str, Any]) -> None:
        stored["metadata"]["resourceVersion"] = str(next(self._versions))

    def event(self, body: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        self.events.append((body["metadata"]["name"], event_type, reason, message))

    # Helpers to play the parts of the cluster's controllers and kubelet.
    def set_status(
        self, api_version: str, kind: str, name: str, status: Mapping[str, Any], namespace: str = "default"
    ) -> None:
        stored = self.objects[(api_version, kind, namespace, name)]
        stored["status"] = copy.deepcopy(dict(status))
        self._touch(stored)

    def finish_job(
        self,
        name: str,
        message: str,
        succeeded: bool = True,
        namespace: str = "default",
        exit_code: int | None = None,
    ) -> None:
        """The Job controller marks the Job, its pod terminated with `message` as termination message."""
        condition = {
            "type": "Complete" if succeeded else "Failed",
            "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:09Z",
        }
        self.set_status(
            "batch/v1",
            "Job",
            name,
            {
                "conditions": [condition],
                "startTime": "2026-01-01T00:00:01Z",
                **({"completionTime": "2026-01-01T00:00:09Z"} if succeeded else {}),
            },
            namespace,
        )
        code = exit_code if exit_code is not None else (0 if succeeded else 1)
        terminated = {"exitCode": code, "message": message}
        self.add(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{name}-pod", "namespace": namespace, "labels": {"job-name": name}},
                "status": {"containerStatuses": [{"name": "marina", "state": {"terminated": terminated}}]},
            }
        )

    def fail_job(self, name: str, failure: Failure) -> None:
        """The Job failed with the result file and exit code a command writes for `failure`."""
        self.finish_job(name, encode(failure.to_json()), False, exit_code=failure.exit_code)

    def add_resource(
        self, kind: str, name: str, spec: Mapping[str, Any], status: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "default"},
            "spec": dict(spec),
        }
        if status is not None:
            body["status"] = dict(status)
        return self.add(body)

    def current(self, kind: str, name: str) -> dict[str, Any]:
        """The object as stored now (not counted as a read)."""
        found = self._stored("marina.dev/v1alpha1", kind, "default", name)
        assert found is not None, f"{kind} {name} is gone"
        return found

    def jobs(self) -> list[str]:
        return sorted(n for (_, k, _, n) in self.objects if k == "Job")


ROOT = Credentials("minio-root", "root-secret-value")  # as test_controller_credentials.ROOT


class FakeIdentities:
    """MinIO's admin API as the operator sees it: a user per namespace with a secret key, which the
    test can make fail (`failing`) or forget (`users.clear()`, as a reset volume would)."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {}  # access key -> secret key
        self.calls: list[tuple[str, Credentials | None]] = []
        self.failing: StorageError | None = None
        self._keys = itertools.count(1)

    def ensure(self, settings: Settings, namespace: str, known: Credentials | None) -> Credentials:
        self.calls.append((namespace, known))
        if self.failing is not None:
            raise self.failing
        name = f"marina-{namespace}"
        kept = known if known is not None and known.access_key == name else None
        if kept is None or name not in self.users:
            self.users[name] = kept.secret_key if kept else f"scoped-secret-{next(self._keys)}"
        return Credentials(name, self.users[name])

    def is_root(self, held: Credentials) -> bool:
        return held.same_as(ROOT)


@pytest.fixture(autouse=True)
def identities(monkeypatch: pytest.MonkeyPatch) -> FakeIdentities:
    fake = FakeIdentities()
    monkeypatch.setattr(credentials, "_provider", [fake])
    return fake


@pytest.fixture
def kube(settings: Settings, identities: FakeIdentities) -> FakeKube:
    """A cluster whose namespace `default` already holds Marina's Secret for its identity."""
    fake = FakeKube()
    scoped = identities.ensure(settings, "default", None)
    identities.calls.clear()
    fake.add(credentials.secret_body(settings, "default", scoped))
    return fake


@pytest.fixture
def settings() -> Settings:
    return Settings(probe_storage=False)


def assert_left_to_the_recheck(
    kube: FakeKube, kind: str, name: str, outcome: Any, settings: Settings
) -> None:
    """A WAITING outcome: kopf is not asked to retry (it would patch its progress into the object and
    touch it after the delay), and the stored status keeps the object in the re-check's index."""
    from marina.controller.shared import registration
    from marina.controller.shared.conditions import State

    assert outcome.state is State.WAITING
    registration.raise_for(outcome, settings)  # returns: no TemporaryError
    stored = kube.current(kind, name)
    assert registration.needs_attention(stored.get("status"), int(stored["metadata"].get("generation") or 0))
