"""The kopf registrations every kind makes the same way, and what a kind hands the operator-wide ones.

Each object is reconciled level-wise when it changes (`register_kind`: create, update, resume, from
kopf's body), when one of its children changes, when something it follows changes (followers come
from kopf's in-memory indices, not from listing the namespace on every event), and on the background
loop's re-check while it is unsettled (its kind's `unsettled_<plural>` index). A WAITING outcome is
left to those: kopf's own retry (TemporaryError) would patch its progress into the object and touch it
again after the delay, two writes and a worker task holding the body per waiting object every delay, which
at 1,000 waiting objects was 200 writes a second and the bulk of the operator's memory. BLOCKED outcomes
(Stalled, but the object in the way may go; the re-check skips Stalled objects) raise TemporaryError so
kopf retries them with a delay; FAILED outcomes raise PermanentError so a bad spec is not retried forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import kopf

from marina.contract import GROUP, VERSION
from marina.controller.kube.background import Chore
from marina.controller.kube.client import KubeError
from marina.controller.kube.settings import Settings
from marina.controller.shared.conditions import Outcome, State, ready_condition
from marina.controller.shared.reconciler import Reconcile
from marina.controller.shared.runtime import Runtime

log = logging.getLogger(__name__)

Chores = Callable[[Mapping[str, Any]], list[Chore]]  # from kopf's indices, by handler id


def no_chores(indices: Mapping[str, Any]) -> list[Chore]:
    return []


@dataclass(frozen=True)
class Registered:
    """A kind as the operator-wide handlers see it: its reconciler (for its children's events and the
    re-check) and its own periodic work."""

    kind: str
    plural: str
    reconcile: Reconcile
    chores: Chores = field(default=no_chores)


def register_kind(runtime: Runtime, kind: str, plural: str, reconcile: Reconcile) -> Registered:
    """Reconcile on create, update and resume (from kopf's body, when current: `runtime`), and the
    re-check index."""

    def on_change(*, body: kopf.Body, name: str, namespace: str | None, **_: Any) -> None:
        raise_for(runtime.reconcile(kind, reconcile, namespace or "", name, body), runtime.settings)

    def index_unsettled(
        *, name: str, namespace: str | None, status: kopf.Status, meta: kopf.Meta, **_: Any
    ) -> dict[str, str]:
        return unsettled(namespace or "", name, status, int(meta.get("generation") or 0))

    def index_known(*, name: str, namespace: str | None, **_: Any) -> dict[str, str]:
        return {namespace or "": name}

    def on_event(*, event: Mapping[str, Any], name: str, namespace: str | None, **_: Any) -> None:
        if event.get("type") == "DELETED":
            runtime.forget(kind, namespace or "", name)

    for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
        decorator(GROUP, VERSION, plural, id=f"reconcile-{plural}")(on_change)
    kopf.index(GROUP, VERSION, plural, id=unsettled_index(plural))(index_unsettled)
    kopf.index(GROUP, VERSION, plural, id=known_index(plural))(index_known)
    # Deletion needs no finalizer: only what this process remembers of the object goes (`Runtime.forget`).
    kopf.on.event(GROUP, VERSION, plural, id=f"forget-{plural}")(on_event)
    return Registered(kind, plural, reconcile)


def register_followers(
    runtime: Runtime,
    follower: Registered,
    followed: str,
    index: str,
    entry: Callable[[str, str, Mapping[str, Any]], dict[tuple[str, str], str]],
) -> None:
    """Objects of `follower`'s kind follow objects of the plural `followed`: kopf's index `index` (each
    follower's `entry`, from its spec) says which, and every event of a followed object reconciles its
    followers (each its own try: one that fails does not keep the others waiting)."""

    @kopf.index(GROUP, VERSION, follower.plural, id=index)
    def index_followed(*, name: str, namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[Any, str]:
        return entry(namespace or "", name, spec)

    # The id names both kinds: several kinds may follow one (ModelDeployments and BatchPredictions follow
    # TrainingJobs), and kopf wants each handler's id unique.
    @kopf.on.event(GROUP, VERSION, followed, id=f"{follower.plural}-follow-{followed}")
    def on_followed(*, name: str, namespace: str | None, **indices: Any) -> None:
        ns = namespace or ""
        for each in followers(indices[index], ns, name):
            again = partial(runtime.reconcile, follower.kind, follower.reconcile, ns, each)
            quietly(again, f"{follower.kind} {each}, a follower of {name}")


def raise_for(outcome: Outcome | None, settings: Settings) -> None:
    """Translate an outcome into kopf's retry semantics."""
    if outcome is None:
        return
    if outcome.state is State.BLOCKED:
        raise kopf.TemporaryError(outcome.message, delay=settings.retry_delay_seconds)
    if outcome.state is State.FAILED:
        raise kopf.PermanentError(outcome.message)


def quietly(action: Callable[[], Any], what: str) -> None:
    """Watch-event and background work is best effort: the next event or the re-check tries again."""
    try:
        action()
    except KubeError as error:
        log.warning("%s: %s", what, error)


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


def unsettled_index(plural: str) -> str:
    return f"unsettled_{plural}"


def known_index(plural: str) -> str:
    """Every object of the kind (namespace -> name): what exists, for the sweep of what is gone."""
    return f"known_{plural}"


def entries(index: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """Every (namespace, name) of an index keyed by namespace."""
    return sorted({(namespace, name) for namespace in list(index) for name in index[namespace]})
