"""kopf registrations: thin wrappers that route every trigger to the per-kind reconcilers.

Each object is reconciled level-wise (observe everything, act, write status) whenever it changes,
whenever one of its children (Jobs, Deployments) changes, and whenever something it follows (a
Dataset's version, a TrainingJob's model) changes; followers come from kopf's in-memory indices, not
from listing the namespace on every event. WAITING outcomes raise TemporaryError so kopf retries with
a delay (so do BLOCKED ones: Stalled, but the object in the way may go); FAILED outcomes raise
PermanentError so a bad spec is not retried forever.
The operator's own loop (`background`, not kopf timers, which would put a finalizer on every object)
re-checks objects still in progress every 20 s (MARINA_RECHECK_SECONDS), in case a pod is stuck without
any event, and runs the drift checks of ModelDeployments with spec.monitoring on 5-second ticks whenever
one is due.
Two replicas run; kopf's peering pauses all but the leader (`leadership`). The liveness probe fails
when the worker threads are stuck (`health`).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import kopf

from marina.controller.datasets import reconcile as datasets
from marina.controller.kube import background, leadership
from marina.controller.kube.client import Kube, KubeApi, KubeError
from marina.controller.kube.health import Health
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import monitoring, rollout
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.shared import builders
from marina.controller.shared.conditions import Outcome, State, ready_condition
from marina.controller.shared.reconciler import Reconcile, lock_for
from marina.controller.trainingjobs import reconcile as trainingjobs

log = logging.getLogger(__name__)
GROUP, VERSION = builders.GROUP, "v1alpha1"
RECONCILERS: dict[str, Reconcile] = {
    datasets.KIND: datasets.reconcile,
    trainingjobs.KIND: trainingjobs.reconcile,
    modeldeployments.KIND: modeldeployments.reconcile,
}
PLURALS = {
    datasets.KIND: "datasets",
    trainingjobs.KIND: "trainingjobs",
    modeldeployments.KIND: "modeldeployments",
}
KOPF_PREFIX = f"kopf.{GROUP}"
MANAGED = {"app.kubernetes.io/managed-by": builders.MANAGED_BY}
# A replica that stops writing to the peering object for this long (killed, frozen) is presumed dead and
# the other takes over; it writes every 10-15 s (kopf: lifetime minus 5-10 s).
PEERING_LIFETIME = 20
# kopf's indices, by handler id (kopf passes each to the handlers as a keyword argument of that name).
TRAININGJOBS_BY_DATASET = "trainingjobs_by_dataset"
MODELDEPLOYMENTS_BY_TRAININGJOB = "modeldeployments_by_trainingjob"
MONITORED = "monitored_modeldeployments"
CANARIES = "canary_modeldeployments"


def reconcile_object(
    kube: KubeApi, settings: Settings, kind: str, namespace: str, name: str
) -> Outcome | None:
    """Reconcile the current version of an object (None when it no longer exists)."""
    with lock_for(kind, namespace, name):
        body = kube.get(builders.API_VERSION, kind, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        return RECONCILERS[kind](kube, settings, body)


def raise_for(outcome: Outcome | None, settings: Settings) -> None:
    """Translate an outcome into kopf's retry semantics."""
    if outcome is None:
        return
    if outcome.state in (State.WAITING, State.BLOCKED):
        raise kopf.TemporaryError(outcome.message, delay=settings.retry_delay_seconds)
    if outcome.state is State.FAILED:
        raise kopf.PermanentError(outcome.message)


def quietly(action: Callable[[], Any], what: str) -> None:
    """Watch-event work is best effort: the next event or the re-check loop tries again."""
    try:
        action()
    except KubeError as error:
        log.warning("%s: %s", what, error)


def owner_of(body: Mapping[str, Any]) -> tuple[str, str] | None:
    for reference in body["metadata"].get("ownerReferences") or []:
        if reference.get("controller") and reference.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(reference["kind"]), str(reference["name"])
    return None


def by_dataset(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """A TrainingJob's entry in TRAININGJOBS_BY_DATASET: (namespace, Dataset) -> its name. An empty
    mapping, not None, removes an earlier entry (kopf keeps the last value when a handler returns None)."""
    dataset = (spec.get("dataset") or {}).get("name")
    return {(namespace, str(dataset)): name} if dataset else {}


def by_training_job(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """A ModelDeployment's entry in MODELDEPLOYMENTS_BY_TRAININGJOB: (namespace, TrainingJob) -> its name."""
    training_job = (spec.get("model") or {}).get("trainingJob")
    return {(namespace, str(training_job)): name} if training_job else {}


def followers(index: Mapping[Hashable, Iterable[str]], namespace: str, name: str) -> list[str]:
    """The names an index holds for (namespace, name), sorted."""
    return sorted(set(index.get((namespace, name), ())))


def needs_attention(status: Mapping[str, Any] | None, generation: int) -> bool:
    """Still working or waiting (so worth a periodic look); settled objects are left alone."""
    status = status or {}
    ready = ready_condition(status).get("status") == "True"
    stalled = any(
        c.get("type") == "Stalled" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    current = status.get("observedGeneration") == generation
    return not (current and (ready or stalled))


def unsettled(namespace: str, name: str, status: Mapping[str, Any] | None, generation: int) -> dict[str, str]:
    """An object's entry in its kind's `unsettled_<plural>` index (namespace -> name): the re-check list."""
    return {namespace: name} if needs_attention(status, generation) else {}


def monitored(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, str]:
    """A ModelDeployment's entry in MONITORED (namespace -> name) while it has spec.monitoring or a
    retraining schedule (the loop checks drift and the schedule on the same ticks)."""
    scheduled = (spec.get("retraining") or {}).get("everySeconds") is not None
    return {namespace: name} if spec.get("monitoring") is not None or scheduled else {}


def in_canary(namespace: str, name: str, status: Mapping[str, Any] | None) -> dict[str, str]:
    """A ModelDeployment's entry in CANARIES (namespace -> name) while a canary runs or is promoted."""
    phase = ((status or {}).get("rollout") or {}).get("phase")
    return {namespace: name} if phase in (rollout.PROGRESSING, rollout.PROMOTING) else {}


def entries(index: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """Every (namespace, name) of an index keyed by namespace."""
    return sorted({(namespace, name) for namespace in list(index) for name in index[namespace]})


def unsettled_index(plural: str) -> str:
    return f"unsettled_{plural}"


def register(
    config: Settings,
    kube_factory: Callable[[], KubeApi] | None = None,
    peering: leadership.Peering | None = None,
    health: Health | None = None,
) -> None:
    """Register every handler with kopf's default registry. `peering` None runs standalone (always leads)."""
    state: dict[str, KubeApi] = {}
    health = health or Health(config.stall_seconds)
    make_kube = kube_factory or (lambda: Kube(timeout=config.api_timeout))

    def kube() -> KubeApi:
        if "kube" not in state:
            state["kube"] = make_kube()
        return state["kube"]

    def reconcile(kind: str, namespace: str, name: str) -> Outcome | None:
        with health.working(f"reconcile of {kind} {namespace}/{name}"):
            return reconcile_object(kube(), config, kind, namespace, name)

    def leading() -> bool:
        if peering is None:
            return True
        body = kube().get(leadership.API_VERSION, peering.kind, peering.namespace, peering.name)
        peers = (body or {}).get("status") or {}
        return leadership.leads(peers, peering.identity, datetime.datetime.now(datetime.UTC))

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
        kube()

    tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(id="start-background")
    async def start_background(settings: kopf.OperatorSettings, **indices: Any) -> None:
        chores = background_chores(indices)
        tick = min(monitoring.TICK_SECONDS, rollout.TICK_SECONDS)
        loop = background.run(chores, settings.execution.executor, health, leading, tick)
        tasks.append(asyncio.create_task(loop, name="marina background"))

    @kopf.on.cleanup(id="stop-background")
    async def stop_background(**_: Any) -> None:
        for task in tasks:
            task.cancel()

    @kopf.on.probe(id="reconciling")
    async def probe(**_: Any) -> dict[str, int]:
        problem = health.problem()
        if problem is not None:
            raise kopf.PermanentError(problem)  # kopf answers the probe with 500
        return {"busy": health.busy()}

    def background_chores(indices: Mapping[str, Any]) -> list[background.Chore]:
        memories: dict[tuple[str, str], dict[str, Any]] = {}  # each ModelDeployment's drift memory

        def unsettled_items() -> list[tuple[str, str, str]]:
            return [
                (kind, namespace, name)
                for kind, plural in PLURALS.items()
                for namespace, name in entries(indices[unsettled_index(plural)])
            ]

        def recheck(item: tuple[str, str, str]) -> None:
            kind, namespace, name = item
            quietly(lambda: reconcile(kind, namespace, name), f"{kind} {name}")

        def monitored_items() -> list[tuple[str, str]]:
            items = entries(indices[MONITORED])
            for gone in set(memories) - set(items):
                del memories[gone]
            return items

        def canary_items() -> list[tuple[str, str, str]]:
            return [
                (modeldeployments.KIND, namespace, name) for namespace, name in entries(indices[CANARIES])
            ]

        def check_drift(item: tuple[str, str]) -> None:
            namespace, name = item
            memory = memories.setdefault(item, {})
            with health.working(f"drift check of ModelDeployment {namespace}/{name}"):
                quietly(
                    lambda: modeldeployments.monitor(kube(), namespace, name, memory),
                    f"drift check of ModelDeployment {name}",
                )

        return [
            background.Chore("re-check", config.recheck_seconds, unsettled_items, recheck),
            # Drift monitoring (spec.monitoring): `monitor` checks when intervalSeconds have passed.
            background.Chore("drift check", monitoring.TICK_SECONDS, monitored_items, check_drift),
            # Canary rollouts: a step's pause ends, and its analysis runs, within a tick.
            background.Chore("canary", rollout.TICK_SECONDS, canary_items, recheck),
        ]

    for kind, plural in PLURALS.items():

        def on_change(*, name: str, namespace: str | None, kind: str = kind, **_: Any) -> None:
            raise_for(reconcile(kind, namespace or "", name), config)

        def index_unsettled(
            *, name: str, namespace: str | None, status: kopf.Status, meta: kopf.Meta, **_: Any
        ) -> dict[str, str]:
            return unsettled(namespace or "", name, status, int(meta.get("generation") or 0))

        for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorator(GROUP, VERSION, plural, id=f"reconcile-{plural}")(on_change)
        kopf.index(GROUP, VERSION, plural, id=unsettled_index(plural))(index_unsettled)

    @kopf.index(GROUP, VERSION, "trainingjobs", id=TRAININGJOBS_BY_DATASET)
    def index_by_dataset(*, name: str, namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[Any, str]:
        return by_dataset(namespace or "", name, spec)

    @kopf.index(GROUP, VERSION, "modeldeployments", id=MODELDEPLOYMENTS_BY_TRAININGJOB)
    def index_by_training_job(
        *, name: str, namespace: str | None, spec: kopf.Spec, **_: Any
    ) -> dict[Any, str]:
        return by_training_job(namespace or "", name, spec)

    @kopf.index(GROUP, VERSION, "modeldeployments", id=MONITORED)
    def index_monitored(*, name: str, namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[str, str]:
        return monitored(namespace or "", name, spec)

    @kopf.index(GROUP, VERSION, "modeldeployments", id=CANARIES)
    def index_canaries(*, name: str, namespace: str | None, status: kopf.Status, **_: Any) -> dict[str, str]:
        return in_canary(namespace or "", name, status)

    @kopf.on.event("batch", "v1", "jobs", labels=MANAGED, id="owner-of-job")
    @kopf.on.event("apps", "v1", "deployments", labels=MANAGED, id="owner-of-deployment")
    def on_child(*, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = owner_of(body)
        if owner is not None and owner[0] in RECONCILERS:
            kind, name = owner
            quietly(lambda: reconcile(kind, namespace or "", name), f"{kind} {name}")

    def reconcile_followers(kind: str, namespace: str, names: list[str]) -> None:
        for name in names:
            reconcile(kind, namespace, name)

    @kopf.on.field(
        GROUP, VERSION, "modeldeployments", field="spec.monitoring", new=kopf.ABSENT, id="monitoring-off"
    )
    def on_monitoring_off(*, name: str, namespace: str | None, **_: Any) -> None:
        quietly(
            lambda: modeldeployments.forget_drift(kube(), namespace or "", name),
            f"drift status of ModelDeployment {name}",
        )

    @kopf.on.event(GROUP, VERSION, "datasets", id="followers-of-dataset")
    def on_dataset(*, name: str, namespace: str | None, **indices: Any) -> None:
        ns = namespace or ""
        names = followers(indices[TRAININGJOBS_BY_DATASET], ns, name)
        quietly(lambda: reconcile_followers(trainingjobs.KIND, ns, names), f"followers of Dataset {name}")

    @kopf.on.event(GROUP, VERSION, "trainingjobs", id="followers-of-trainingjob")
    def on_trainingjob(*, name: str, namespace: str | None, **indices: Any) -> None:
        ns = namespace or ""
        names = followers(indices[MODELDEPLOYMENTS_BY_TRAININGJOB], ns, name)
        quietly(
            lambda: reconcile_followers(modeldeployments.KIND, ns, names), f"followers of TrainingJob {name}"
        )
