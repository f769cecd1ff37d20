"""kopf registrations: each kind registers its own (`<kind>.handlers.register`); this module composes them
with the operator-wide parts: kopf's settings, the background loop, the liveness probe, and routing the
events of Marina's Jobs and Deployments to the object that owns them.

The operator's own loop (`background`, not kopf timers, which would put a finalizer on every object)
re-checks objects still in progress every 20 s, in case a pod is stuck without any event, and runs the
kinds' own periodic work (drift checks, canary steps). Two replicas run; kopf's peering pauses all but
the leader (`leadership`). The liveness probe fails when the worker threads are stuck (`health`).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kopf

from marina.contract import GROUP
from marina.controller.batchpredictions import handlers as batchpredictions
from marina.controller.datasets import handlers as datasets
from marina.controller.kube import background, leadership
from marina.controller.kube.client import Kube, KubeApi
from marina.controller.kube.health import Health
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import handlers as modeldeployments
from marina.controller.modeldeployments import monitoring, rollout
from marina.controller.shared import builders
from marina.controller.shared.registration import (
    Registered,
    entries,
    known_index,
    quietly,
    unsettled_index,
)
from marina.controller.shared.runtime import Runtime
from marina.controller.trainingjobs import handlers as trainingjobs

KOPF_PREFIX = f"kopf.{GROUP}"
MANAGED = {"app.kubernetes.io/managed-by": builders.MANAGED_BY}
RECHECK_SECONDS = 20.0
# How often what this process remembers of objects that no index knows any more is forgotten (a deletion
# whose event was missed while a watch reconnected; the DELETED event forgets at once otherwise).
SWEEP_SECONDS = 60.0
# A replica that stops writing to the peering object for this long (killed, frozen) is presumed dead and
# the other takes over; it writes every 10-15 s (kopf: lifetime minus 5-10 s).
PEERING_LIFETIME = 20
KINDS = (datasets, trainingjobs, modeldeployments, batchpredictions)


def register(
    config: Settings,
    kube_factory: Callable[[], KubeApi] | None = None,
    peering: leadership.Peering | None = None,
    health: Health | None = None,
) -> None:
    """Register every handler with kopf's default registry. `peering` None runs standalone (always leads)."""
    health = health or Health(config.stall_seconds)
    runtime = Runtime(config, health, kube_factory or (lambda: Kube(timeout=config.api_timeout)))
    kinds = [kind.register(runtime) for kind in KINDS]
    register_configuration(runtime, peering)
    register_background(runtime, kinds, peering)
    register_probe(health)
    register_children(runtime, kinds)


def register_configuration(runtime: Runtime, peering: leadership.Peering | None) -> None:
    config = runtime.settings

    @kopf.on.startup(id="configure")
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf ignores every annotation under its storage prefix when it looks for changes, so its
        # prefix must not be marina.dev (users set marina.dev/refresh to re-read a Dataset's source).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)
        # No handler needs a finalizer (no deletion handlers, no kopf timers), so kopf adds none and
        # removes this one, which earlier versions put on every object; deleting an object or its
        # namespace never waits for the operator. Children go by ownerReferences.
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        # Marina posts its own events on each transition; kopf's per-retry events would only repeat them.
        settings.posting.enabled = False
        settings.execution.max_workers = 8
        # Every call kopf makes gives up in time; a watch is re-made every 5 minutes, and dropped when
        # its connection stays silent longer than that.
        settings.networking.request_timeout = config.api_timeout_seconds
        settings.networking.connect_timeout = config.api_connect_timeout_seconds
        settings.watching.connect_timeout = config.api_connect_timeout_seconds
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        # The cluster-wide install's replicas meet in a ClusterKopfPeering; the namespace-scoped one's,
        # which may touch nothing cluster-wide, in the KopfPeering of each namespace they watch.
        namespaced = peering is not None and not peering.clusterwide
        settings.peering.clusterwide = not namespaced
        # Nor may it list namespaces or watch CRDs: kopf would retry each 403 for a minute before it falls
        # back to the namespaces it was given and the resources it found at start, which is all it needs.
        settings.scanning.disabled = namespaced
        settings.peering.lifetime = PEERING_LIFETIME
        settings.peering.stealth = True  # no log line per keep-alive
        runtime.kube()


def register_background(
    runtime: Runtime, kinds: Sequence[Registered], peering: leadership.Peering | None
) -> None:
    """The loop that runs, on the leader only, the re-check of unsettled objects and the kinds' chores."""
    tasks: list[asyncio.Task[None]] = []

    def leading() -> bool:
        if peering is None:
            return True
        body = runtime.kube().get(leadership.API_VERSION, peering.kind, peering.namespace, peering.name)
        peers = (body or {}).get("status") or {}
        return leadership.leads(peers, peering.identity, datetime.datetime.now(datetime.UTC))

    @kopf.on.startup(id="start-background")
    async def start_background(settings: kopf.OperatorSettings, **indices: Any) -> None:
        chores = [recheck(runtime, kinds, indices), sweep(runtime, kinds, indices)]
        chores += [chore for kind in kinds for chore in kind.chores(indices)]
        tick = min(monitoring.TICK_SECONDS, rollout.TICK_SECONDS)
        loop = background.run(chores, settings.execution.executor, runtime.health, leading, tick)
        tasks.append(asyncio.create_task(loop, name="marina background"))

    @kopf.on.cleanup(id="stop-background")
    async def stop_background(**_: Any) -> None:
        for task in tasks:
            task.cancel()


def recheck(runtime: Runtime, kinds: Sequence[Registered], indices: Mapping[str, Any]) -> background.Chore:
    """Every RECHECK_SECONDS, a reconcile of each object still working or waiting (its kind's index)."""
    by_kind = {kind.kind: kind for kind in kinds}

    def unsettled_items() -> list[tuple[str, str, str]]:
        return [
            (kind.kind, namespace, name)
            for kind in kinds
            for namespace, name in entries(indices[unsettled_index(kind.plural)])
        ]

    def again(item: tuple[str, str, str]) -> None:
        kind, namespace, name = item
        reconcile = by_kind[kind].reconcile
        quietly(lambda: runtime.reconcile(kind, reconcile, namespace, name), f"{kind} {name}")

    return background.Chore("re-check", RECHECK_SECONDS, unsettled_items, again)


def sweep(runtime: Runtime, kinds: Sequence[Registered], indices: Mapping[str, Any]) -> background.Chore:
    """Every SWEEP_SECONDS, forget the objects this process remembers but no kind's index holds."""

    def gone() -> list[tuple[str, str, str]]:
        known = {
            (kind.kind, namespace, name)
            for kind in kinds
            for namespace, name in entries(indices[known_index(kind.plural)])
        }
        return sorted(runtime.remembered() - known)

    def forget(item: tuple[str, str, str]) -> None:
        runtime.forget(*item)

    return background.Chore("forget", SWEEP_SECONDS, gone, forget)


def register_probe(health: Health) -> None:
    @kopf.on.probe(id="reconciling")
    async def probe(**_: Any) -> dict[str, int]:
        problem = health.problem()
        if problem is not None:
            raise kopf.PermanentError(problem)  # kopf answers the probe with 500
        return {"busy": health.busy()}


def register_children(runtime: Runtime, kinds: Sequence[Registered]) -> None:
    """A Marina Job's or Deployment's event reconciles the object that owns it (one read of that object)."""
    by_kind = {kind.kind: kind for kind in kinds}

    @kopf.on.event("batch", "v1", "jobs", labels=MANAGED, id="owner-of-job")
    @kopf.on.event("apps", "v1", "deployments", labels=MANAGED, id="owner-of-deployment")
    def on_child(*, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = owner_of(body)
        if owner is not None and owner[0] in by_kind:
            kind, name = owner
            reconcile = by_kind[kind].reconcile
            quietly(lambda: runtime.reconcile(kind, reconcile, namespace or "", name), f"{kind} {name}")


def owner_of(body: Mapping[str, Any]) -> tuple[str, str] | None:
    for reference in body["metadata"].get("ownerReferences") or []:
        if reference.get("controller") and reference.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(reference["kind"]), str(reference["name"])
    return None
