"""The one module that talks to the Kubernetes API (through the official client's dynamic client).

Everything crosses this boundary as plain dicts, so reconcilers and their tests never see client
types. `KubeApi` is the interface the reconcilers use; tests pass a fake with the same methods.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any, Protocol

from marina.controller.kube import metrics
from marina.system.clock import utc_now

log = logging.getLogger(__name__)
FIELD_MANAGER = "marina-operator"


WRITES = frozenset({"create", "apply", "delete"})
CONFLICT = 409  # the object changed since it was read (or, for a create, it exists)


class KubeError(Exception):
    """An API call failed for a reason other than the object being absent.

    `code` and `reason` are the HTTP status and the reason of the server's Status object (`Invalid`,
    `Forbidden`, `AlreadyExists`, ...): what to do is decided from them, never from `detail`'s words.
    """

    def __init__(
        self, verb: str, kind: str, where: str, code: int | None = None, reason: str = "", detail: str = ""
    ) -> None:
        self.verb, self.kind, self.where = verb, kind, where
        self.code, self.reason, self.detail = code, reason, detail
        super().__init__(f"{verb} {kind} {where}: {self.said}")

    @property
    def said(self) -> str:
        """What the server answered: `422 Invalid: <its message>`."""
        status = " ".join(str(part) for part in (self.code, self.reason) if part)
        return ": ".join(part for part in (status, self.detail) if part) or "failed"

    @property
    def write(self) -> bool:
        """A write of an object (as opposed to a read or a status update): a child the server rejected."""
        return self.verb in WRITES


def api_status(exc: Exception) -> tuple[int | None, str, str]:
    """(code, reason, message) of a failed call, from the Status object the API server sent when it did."""
    http_code = getattr(exc, "status", None)
    code = http_code if isinstance(http_code, int) else None
    body = getattr(exc, "body", None)
    try:
        status = json.loads(body) if body else None
    except (TypeError, ValueError):
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        stated = status.get("code")
        return (
            stated if isinstance(stated, int) else code,
            str(status.get("reason") or ""),
            str(status.get("message") or ""),
        )
    summary = getattr(exc, "summary", None)
    lines = str(summary() if callable(summary) else exc).splitlines()
    return code, "", lines[0] if lines else type(exc).__name__


class KubeApi(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...

    def patch_status(
        self, body: Mapping[str, Any], status: Mapping[str, Any], *, unchanged_since_read: bool = False
    ) -> dict[str, Any]:
        """Merge `status` into the object's status; the object as written (its new resourceVersion).
        `unchanged_since_read`: only if the object is still at `body`'s resourceVersion, else KubeError
        409 Conflict (a decision made on a stale read)."""
        ...

    def event(self, body: Mapping[str, Any], event_type: str, reason: str, message: str) -> None: ...


DEFAULT_TIMEOUT = (10.0, 30.0)  # (connect, read) seconds; Settings.api_timeout in the operator
# urllib3 tries a request again after a reset connection (a pooled one the server closed); once is enough,
# and it bounds a call at twice its timeout (urllib3's default, 3, would allow four times).
RETRIES = 1


def timed_api_client(configuration: Any, timeout: tuple[float, float]) -> Any:
    """An ApiClient that puts `timeout` on every request that names none. The dynamic client's discovery
    (run on first use of each kind, and on a cache miss) takes no timeout argument at all, so a per-call
    `_request_timeout` would miss it: this covers every call made through the client. Sets the
    configuration's `retries` (RETRIES)."""
    import kubernetes

    client: Any = kubernetes.client  # partly typed; this module only passes dicts

    class TimedApiClient(client.ApiClient):  # type: ignore[misc]
        def call_api(
            self,
            method: str,
            url: str,
            header_params: Any = None,
            body: Any = None,
            post_params: Any = None,
            _request_timeout: Any = None,
        ) -> Any:
            return super().call_api(
                method, url, header_params, body, post_params, _request_timeout=_request_timeout or timeout
            )

    configuration.retries = RETRIES
    return TimedApiClient(configuration)


def cluster_configuration() -> Any:
    """The in-cluster configuration, or the kubeconfig's ($KUBECONFIG) outside a cluster."""
    import kubernetes

    client: Any = kubernetes  # partly typed; this module only passes dicts
    configuration = client.client.Configuration()
    try:
        client.config.load_incluster_config(client_configuration=configuration)
    except client.config.ConfigException:
        client.config.load_kube_config(client_configuration=configuration)
    return configuration


class Kube:
    """KubeApi on a real cluster; every call gives up after `timeout` (connect, read) seconds."""

    def __init__(self, timeout: tuple[float, float] = DEFAULT_TIMEOUT, configuration: Any = None) -> None:
        import kubernetes

        client: Any = kubernetes  # partly typed; this module only passes dicts
        api = timed_api_client(configuration or cluster_configuration(), timeout)
        self._client: Any = client.dynamic.DynamicClient(api)
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._client.resources.get(api_version=api_version, kind=kind)

    @staticmethod
    def _fail(verb: str, kind: str, where: str, exc: Exception) -> KubeError:
        return KubeError(verb, kind, where, *api_status(exc))

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return dict(
                self._client.get(self._resource(api_version, kind), name=name, namespace=namespace).to_dict()
            )
        except NotFoundError:
            return None
        except Exception as exc:
            raise self._fail("get", kind, f"{namespace}/{name}", exc) from exc

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        try:
            result = self._client.get(
                self._resource(api_version, kind), namespace=namespace, label_selector=label_selector
            )
        except Exception as exc:
            raise self._fail("list", kind, f"in {namespace}", exc) from exc
        return [dict(item) for item in result.to_dict().get("items") or []]

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        from kubernetes.dynamic.exceptions import ConflictError

        meta = body["metadata"]
        try:
            created = self._client.create(
                self._resource(body["apiVersion"], body["kind"]),
                body=dict(body),
                namespace=meta["namespace"],
                field_manager=FIELD_MANAGER,
            )
            metrics.created(body)
            return dict(created.to_dict())
        except ConflictError:  # already there (a retry, a concurrent reconcile, or not ours: callers check)
            existing = self.get(body["apiVersion"], body["kind"], meta["namespace"], meta["name"])
            if existing is None:
                raise KubeError(
                    "create",
                    body["kind"],
                    f"{meta['namespace']}/{meta['name']}",
                    CONFLICT,
                    "Conflict",
                    "then not found",
                ) from None
            return existing
        except Exception as exc:
            raise self._fail("create", body["kind"], f"{meta['namespace']}/{meta['name']}", exc) from exc

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        try:
            applied = self._client.server_side_apply(
                self._resource(body["apiVersion"], body["kind"]),
                body=dict(body),
                name=meta["name"],
                namespace=meta["namespace"],
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
            return dict(applied.to_dict())
        except Exception as exc:
            raise self._fail("apply", body["kind"], f"{meta['namespace']}/{meta['name']}", exc) from exc

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self._client.delete(
                self._resource(api_version, kind),
                name=name,
                namespace=namespace,
                body={"propagationPolicy": "Background"},
            )
        except NotFoundError:
            return
        except Exception as exc:
            raise self._fail("delete", kind, f"{namespace}/{name}", exc) from exc

    def patch_status(
        self, body: Mapping[str, Any], status: Mapping[str, Any], *, unchanged_since_read: bool = False
    ) -> dict[str, Any]:
        meta = body["metadata"]
        resource = self._resource(body["apiVersion"], body["kind"])
        patch: dict[str, Any] = {"status": dict(status)}
        if unchanged_since_read:  # the API server checks a resourceVersion in a patch as a precondition
            patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}
        try:
            written = self._client.patch(
                resource.status,
                body=patch,
                name=meta["name"],
                namespace=meta["namespace"],
                content_type="application/merge-patch+json",
            )
        except Exception as exc:
            raise self._fail(
                "update the status of", body["kind"], f"{meta['namespace']}/{meta['name']}", exc
            ) from exc
        metrics.status_written(body, status)
        return dict(written.to_dict())

    def event(self, body: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        meta = body["metadata"]
        now = utc_now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        metrics.event_posted(body["kind"], event_type, reason)
        try:
            self._client.create(self._resource("v1", "Event"), body=event, namespace=meta["namespace"])
        except Exception as exc:  # an event is best effort; the status already says it
            log.warning(
                "%s",
                self._fail(
                    f"post event {reason} on", body["kind"], f"{meta['namespace']}/{meta['name']}", exc
                ),
            )
