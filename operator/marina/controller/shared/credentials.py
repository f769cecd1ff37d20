"""Each namespace's object-storage credentials: a MinIO identity reaching only that namespace's storage
area (settings.py), written into the namespace's Secret before a Job or a model server there needs it.

MinIO's root credentials stay in the operator (its environment, from marina-system's Secret); a
namespace's editors, who can read its Secrets, get that namespace's identity and nothing more.

The Secret is Marina's when it carries the managed-by label and the identity annotation. Marina writes
only such a Secret, or creates it when absent, and replaces one other case: the copy of the root
credentials that earlier versions of hack/deploy.sh made (labelled part-of=marina, holding exactly the
root credentials). Any other Secret of that name blocks the namespace's work with `NameConflict` and
stays as it is. Deleting Marina's Secret rotates the namespace's key (a new one is set and written).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from marina import storage
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import DATASETS, LOGS, MODELS, PREDICTIONS, UPLOADS, Settings
from marina.controller.shared.builders import MANAGED_BY
from marina.controller.shared.conditions import Outcome, State
from marina.storage import Credentials, StorageError

IDENTITY_ANNOTATION = "marina.dev/storage-identity"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
LEGACY_LABEL = ("app.kubernetes.io/part-of", "marina")  # what hack/deploy.sh's copies carried
ACCESS_KEY, SECRET_KEY = storage.ACCESS_KEY_ENV, storage.SECRET_KEY_ENV


class Identities(Protocol):
    """Where namespace identities come from: MinIO's admin API in the operator, a fake in tests."""

    def ensure(self, settings: Settings, namespace: str, known: Credentials | None) -> Credentials: ...

    def is_root(self, credentials: Credentials) -> bool: ...


class StorageIdentities:
    """The operator's: MinIO's admin API with the root credentials of the operator's environment."""

    def ensure(self, settings: Settings, namespace: str, known: Credentials | None) -> Credentials:
        purposes = (UPLOADS, DATASETS, MODELS, PREDICTIONS, LOGS)
        own = [settings.area(purpose, namespace) for purpose in purposes]
        return storage.ensure_identity(namespace, own, settings.shared_prefixes, known)

    def is_root(self, credentials: Credentials) -> bool:
        return credentials.same_as(storage.root_credentials())


_provider: list[Identities] = [StorageIdentities()]
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def use(identities: Identities) -> None:
    """Provision through `identities` from now on (tests pass a fake)."""
    _provider[0] = identities


def _lock_for(namespace: str) -> threading.Lock:
    """One provisioning at a time per namespace: two of them would each set a new key, and the Secret
    would keep only one."""
    with _locks_guard:
        return _locks.setdefault(namespace, threading.Lock())


def secret_body(
    settings: Settings, namespace: str, credentials: Credentials, resource_version: str | None = None
) -> dict[str, Any]:
    """The namespace's Secret; with `resource_version`, a write that fails if the Secret changed since."""
    metadata: dict[str, Any] = {
        "name": settings.s3_secret,
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/name": "marina",
            "app.kubernetes.io/component": "storage-credentials",
            MANAGED_BY_LABEL: MANAGED_BY,
        },
        "annotations": {IDENTITY_ANNOTATION: credentials.access_key},
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    encoded = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in ((ACCESS_KEY, credentials.access_key), (SECRET_KEY, credentials.secret_key))
    }
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata, "data": encoded}


def credentials_of(secret: Mapping[str, Any]) -> Credentials | None:
    """The credentials a Secret holds; None when a key is missing or not base64 text."""
    data = secret.get("data") or {}
    try:
        access, key = (
            base64.b64decode(data[name], validate=True).decode() for name in (ACCESS_KEY, SECRET_KEY)
        )
    except (KeyError, TypeError, ValueError):
        return None
    return Credentials(access, key) if access and key else None


def is_ours(secret: Mapping[str, Any]) -> bool:
    meta = secret["metadata"]
    return (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY and IDENTITY_ANNOTATION in (
        meta.get("annotations") or {}
    )


def is_legacy_copy(secret: Mapping[str, Any], identities: Identities) -> bool:
    """A copy of the root credentials made by an earlier hack/deploy.sh: replaced by the scoped ones."""
    key, value = LEGACY_LABEL
    held = credentials_of(secret)
    labelled = (secret["metadata"].get("labels") or {}).get(key) == value
    return labelled and held is not None and identities.is_root(held)


def foreign(settings: Settings, namespace: str) -> Outcome:
    return Outcome(
        State.BLOCKED,
        "NameConflict",
        f"Secret {settings.s3_secret} already exists in namespace {namespace} and is not Marina's (no "
        f"{MANAGED_BY_LABEL}={MANAGED_BY} label and {IDENTITY_ANNOTATION} annotation); Marina changes "
        "nothing: remove that Secret so Marina can write the namespace's storage credentials "
        "(Marina retries by itself)",
    )


def failed(settings: Settings, namespace: str, error: StorageError) -> Outcome:
    return Outcome(
        State.WAITING,
        "StorageIdentityFailed",
        f"cannot provide namespace {namespace}'s object-storage credentials (Secret {settings.s3_secret}): "
        f"{error}; retrying every {settings.recheck_seconds:g}s",
    )


def provide(kube: KubeApi, settings: Settings, namespace: str) -> Outcome | None:
    """None once the namespace's Secret holds its identity's credentials and MinIO knows that identity;
    otherwise why not (a foreign Secret in the way, or MinIO refusing or unreachable: retried)."""
    with _lock_for(namespace):
        try:
            return _provide(kube, settings, namespace, _provider[0])
        except StorageError as error:
            return failed(settings, namespace, error)


def _provide(kube: KubeApi, settings: Settings, namespace: str, identities: Identities) -> Outcome | None:
    secret = kube.get("v1", "Secret", namespace, settings.s3_secret)
    if secret is None:
        credentials = identities.ensure(settings, namespace, None)
        secret = kube.create(secret_body(settings, namespace, credentials))  # the one found, if it appeared
        if not is_ours(secret):
            return foreign(settings, namespace)
        _hold(kube, settings, secret, credentials)
        return None
    if not (is_ours(secret) or is_legacy_copy(secret, identities)):
        return foreign(settings, namespace)
    held = credentials_of(secret) if is_ours(secret) else None
    _hold(kube, settings, secret, identities.ensure(settings, namespace, held))
    return None


def _hold(kube: KubeApi, settings: Settings, secret: Mapping[str, Any], credentials: Credentials) -> None:
    """Make the Secret (ours, or the legacy copy) hold `credentials`, unless it already does."""
    held = credentials_of(secret)
    if held is None or not held.same_as(credentials) or not is_ours(secret):
        meta = secret["metadata"]
        kube.apply(secret_body(settings, meta["namespace"], credentials, meta.get("resourceVersion")))
