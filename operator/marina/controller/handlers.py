"""kopf registrations: thin wrappers that route every trigger to the per-kind reconcilers.

Each object is reconciled level-wise (observe everything, act, write status) whenever it changes,
whenever one of its children (Jobs, Deployments) changes, and whenever something it follows (a
Dataset's version, a TrainingJob's model) changes. WAITING outcomes raise TemporaryError so kopf
retries with a delay (so do BLOCKED ones: Stalled, but the object in the way may go); FAILED
outcomes raise PermanentError so a bad spec is not retried forever.
A slow timer re-checks objects still in progress, in case a pod is stuck without any event.
ModelDeployments with spec.monitoring get a drift check on 5-second ticks whenever one is due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from marina.controller import builders, datasets, modeldeployments, monitoring, trainingjobs
from marina.controller.conditions import Outcome, State, ready_condition
from marina.controller.kube import Kube, KubeApi, KubeError
from marina.controller.reconciler import Reconcile, lock_for
from marina.controller.settings import Settings

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
    """Watch-event work is best effort: the next event or the timer tries again."""
    try:
        action()
    except KubeError as error:
        log.warning("%s: %s", what, error)


def owner_of(body: Mapping[str, Any]) -> tuple[str, str] | None:
    for reference in body["metadata"].get("ownerReferences") or []:
        if reference.get("controller") and reference.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(reference["kind"]), str(reference["name"])
    return None


def followers(
    kube: KubeApi, kind: str, namespace: str, matches: Callable[[Mapping[str, Any]], bool]
) -> list[str]:
    return [
        item["metadata"]["name"]
        for item in kube.list(builders.API_VERSION, kind, namespace)
        if matches(item.get("spec") or {})
    ]


def dataset_followers(kube: KubeApi, namespace: str, dataset: str) -> list[str]:
    return followers(
        kube, trainingjobs.KIND, namespace, lambda spec: (spec.get("dataset") or {}).get("name") == dataset
    )


def model_followers(kube: KubeApi, namespace: str, training_job: str) -> list[str]:
    return followers(
        kube,
        modeldeployments.KIND,
        namespace,
        lambda spec: (spec.get("model") or {}).get("trainingJob") == training_job,
    )


def needs_attention(status: Mapping[str, Any] | None, generation: int) -> bool:
    """Still working or waiting (so worth a periodic look); settled objects are left alone."""
    status = status or {}
    ready = ready_condition(status).get("status") == "True"
    stalled = any(
        c.get("type") == "Stalled" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    current = status.get("observedGeneration") == generation
    return not (current and (ready or stalled))


def register(config: Settings, kube_factory: Callable[[], KubeApi] = Kube) -> None:
    """Register every handler with kopf's default registry."""
    state: dict[str, KubeApi] = {}

    def kube() -> KubeApi:
        if "kube" not in state:
            state["kube"] = kube_factory()
        return state["kube"]

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf ignores every annotation under its storage prefix when it looks for changes, so its
        # prefix must not be marina.dev (users set marina.dev/refresh to re-read a Dataset's source).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX)
        # The re-check timer makes kopf keep a finalizer on each object (so it can stop the timer
        # before the object goes); children still go by ownerReferences. Delete Marina's objects
        # before the operator (hack/undeploy.sh does).
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        # Marina posts its own events on each transition; kopf's per-retry events would only repeat them.
        settings.posting.enabled = False
        settings.execution.max_workers = 8
        settings.networking.connect_timeout = 10
        settings.watching.server_timeout = 300
        kube()

    for kind, plural in PLURALS.items():

        def on_change(*, name: str, namespace: str | None, kind: str = kind, **_: Any) -> None:
            raise_for(reconcile_object(kube(), config, kind, namespace or "", name), config)

        def on_tick(
            *,
            name: str,
            namespace: str | None,
            status: kopf.Status,
            meta: kopf.Meta,
            kind: str = kind,
            **_: Any,
        ) -> None:
            if needs_attention(status, int(meta.get("generation") or 0)):
                quietly(
                    lambda: reconcile_object(kube(), config, kind, namespace or "", name), f"{kind} {name}"
                )

        for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorator(GROUP, VERSION, plural, id=f"reconcile-{plural}")(on_change)
        kopf.timer(GROUP, VERSION, plural, interval=20, initial_delay=20, id=f"recheck-{plural}")(on_tick)

    @kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
    @kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
    def on_child(*, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = owner_of(body)
        if owner is not None and owner[0] in RECONCILERS:
            kind, name = owner
            quietly(lambda: reconcile_object(kube(), config, kind, namespace or "", name), f"{kind} {name}")

    def reconcile_followers(kind: str, namespace: str, names: list[str]) -> None:
        for name in names:
            reconcile_object(kube(), config, kind, namespace, name)

    # Drift monitoring (spec.monitoring): the timer ticks often and `monitor` checks when intervalSeconds
    # have passed, since a kopf timer's interval is fixed when it is registered.
    @kopf.timer(
        GROUP,
        VERSION,
        "modeldeployments",
        interval=monitoring.TICK_SECONDS,
        sharp=True,
        field="spec.monitoring",
        value=kopf.PRESENT,
        id="monitor-drift",
    )
    def on_monitor_tick(*, name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
        quietly(
            lambda: modeldeployments.monitor(kube(), namespace or "", name, memo),
            f"drift check of ModelDeployment {name}",
        )

    @kopf.on.field(
        GROUP, VERSION, "modeldeployments", field="spec.monitoring", new=kopf.ABSENT, id="monitoring-off"
    )
    def on_monitoring_off(*, name: str, namespace: str | None, **_: Any) -> None:
        quietly(
            lambda: modeldeployments.forget_drift(kube(), namespace or "", name),
            f"drift status of ModelDeployment {name}",
        )

    @kopf.on.event(GROUP, VERSION, "datasets")
    def on_dataset(*, name: str, namespace: str | None, **_: Any) -> None:
        ns = namespace or ""
        quietly(
            lambda: reconcile_followers(trainingjobs.KIND, ns, dataset_followers(kube(), ns, name)),
            f"followers of Dataset {name}",
        )

    @kopf.on.event(GROUP, VERSION, "trainingjobs")
    def on_trainingjob(*, name: str, namespace: str | None, **_: Any) -> None:
        ns = namespace or ""
        quietly(
            lambda: reconcile_followers(modeldeployments.KIND, ns, model_followers(kube(), ns, name)),
            f"followers of TrainingJob {name}",
        )
