"""The one module that talks to the Kubernetes API (through the official client's dynamic client).

Everything crosses this boundary as plain dicts, so reconcilers and their tests never see client
types. `KubeApi` is the interface the reconcilers use; tests pass a fake with the same methods.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any, Protocol

from marina.clock import utc_now

log = logging.getLogger(__name__)
FIELD_MANAGER = "marina-operator"


class KubeError(Exception):
    """An API call failed for a reason other than the object being absent."""


class KubeApi(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...

    def patch_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None: ...

    def event(self, body: Mapping[str, Any], event_type: str, reason: str, message: str) -> None: ...


class Kube:
    """KubeApi on a real cluster: in-cluster config, or the kubeconfig ($KUBECONFIG) outside one."""

    def __init__(self) -> None:
        import kubernetes

        client: Any = kubernetes  # the client package is untyped
        try:
            client.config.load_incluster_config()
        except client.config.ConfigException:
            client.config.load_kube_config()
        self._client: Any = client.dynamic.DynamicClient(client.client.ApiClient())
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._client.resources.get(api_version=api_version, kind=kind)

    @staticmethod
    def _fail(action: str, exc: Exception) -> KubeError:
        status = getattr(exc, "status", None)
        summary = getattr(exc, "summary", None)
        detail = summary() if callable(summary) else str(exc).splitlines()[0]
        return KubeError(f"{action}: {f'{status} ' if status else ''}{detail}")

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return dict(
                self._client.get(self._resource(api_version, kind), name=name, namespace=namespace).to_dict()
            )
        except NotFoundError:
            return None
        except Exception as exc:
            raise self._fail(f"get {kind} {namespace}/{name}", exc) from exc

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        try:
            result = self._client.get(
                self._resource(api_version, kind), namespace=namespace, label_selector=label_selector
            )
        except Exception as exc:
            raise self._fail(f"list {kind} in {namespace}", exc) from exc
        return [dict(item) for item in result.to_dict().get("items") or []]

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        from kubernetes.dynamic.exceptions import ConflictError

        meta = body["metadata"]
        try:
            created = self._client.create(
                self._resource(body["apiVersion"], body["kind"]), body=dict(body), namespace=meta["namespace"]
            )
            return dict(created.to_dict())
        except ConflictError:  # already there (a retry, or a concurrent reconcile): use it
            existing = self.get(body["apiVersion"], body["kind"], meta["namespace"], meta["name"])
            if existing is None:
                raise KubeError(f"create {body['kind']} {meta['name']}: conflict, then not found") from None
            return existing
        except Exception as exc:
            raise self._fail(f"create {body['kind']} {meta['namespace']}/{meta['name']}", exc) from exc

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
            raise self._fail(f"apply {body['kind']} {meta['namespace']}/{meta['name']}", exc) from exc

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
            raise self._fail(f"delete {kind} {namespace}/{name}", exc) from exc

    def patch_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        resource = self._resource(body["apiVersion"], body["kind"])
        try:
            self._client.patch(
                resource.status,
                body={"status": dict(status)},
                name=meta["name"],
                namespace=meta["namespace"],
                content_type="application/merge-patch+json",
            )
        except Exception as exc:
            raise self._fail(
                f"update the status of {body['kind']} {meta['namespace']}/{meta['name']}", exc
            ) from exc

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
        try:
            self._client.create(self._resource("v1", "Event"), body=event, namespace=meta["namespace"])
        except Exception as exc:  # an event is best effort; the status already says it
            log.warning("%s", self._fail(f"post event {reason} on {meta['namespace']}/{meta['name']}", exc))
