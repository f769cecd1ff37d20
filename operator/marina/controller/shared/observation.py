"""What a reconcile has read, so that deciding is a pure function of it.

A kind's `decide(settings, seen)` reads the cluster only through its `Observation` (`seen.child(...)`,
`seen.get(read)`). A read not made yet raises `Unobserved`; `observe_then_decide` makes that one read
and decides again from the start. Deciding is pure and cheap, so deciding again changes nothing; each
object is read at most once per reconcile, and only when a decision needs it (a Job's pods once the Job
exists, a canary's traffic when a step is analysed); and every write comes after the last read, since
`decide` returns a `plan.Plan` that `plan.act` carries out. A test decides on an `Observation` it made.

One observation is not a plain read: `Preflight`, whether the namespace is ready for Marina's pods
(object storage reachable, its credentials provided: that may write the namespace's Secret). A decision
asks for it only before it plans a pod-making child, as the reconcilers always did, and its answer
changes the decision (the Job is not created; the promotion gate holds its challenger).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from marina.contract import Failure, Success
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import Settings
from marina.controller.shared import preflight
from marina.controller.shared.conditions import Outcome
from marina.jobs import progress, results

STAMP = "%Y-%m-%dT%H:%M:%SZ"  # as Kubernetes writes times (marina.system.clock.utc_now)
Decision = TypeVar("Decision")


class Read(Protocol):
    """One observation: hashable (a frozen dataclass), made at most once per reconcile."""

    def perform(self, kube: KubeApi, settings: Settings) -> Any: ...


@dataclass(frozen=True)
class Get:
    api_version: str
    kind: str
    namespace: str
    name: str

    def perform(self, kube: KubeApi, settings: Settings) -> dict[str, Any] | None:
        return kube.get(self.api_version, self.kind, self.namespace, self.name)


@dataclass(frozen=True)
class Listing:
    api_version: str
    kind: str
    namespace: str
    selector: str

    def perform(self, kube: KubeApi, settings: Settings) -> tuple[dict[str, Any], ...]:
        return tuple(kube.list(self.api_version, self.kind, self.namespace, self.selector))


@dataclass(frozen=True)
class StoredResult:
    """The result document a finished Job's command stored (marina.jobs.results)."""

    uri: str

    def perform(self, kube: KubeApi, settings: Settings) -> Success | Failure | None:
        return results.read_stored(self.uri)


@dataclass(frozen=True)
class ProgressReport:
    """What a running Job's pod last reported (marina.jobs.progress)."""

    uri: str

    def perform(self, kube: KubeApi, settings: Settings) -> dict[str, Any] | None:
        return progress.read(self.uri)


@dataclass(frozen=True)
class Preflight:
    """Why the namespace is not ready for new pods, or None (see the module docstring)."""

    namespace: str

    def perform(self, kube: KubeApi, settings: Settings) -> Outcome | None:
        return preflight.blocking_outcome(kube, settings, self.namespace)


class Unobserved(Exception):
    """A decision needs `read`, which has not been made yet."""

    def __init__(self, read: Read) -> None:
        super().__init__(f"not observed yet: {read}")
        self.read = read


@dataclass(frozen=True)
class Observation:
    """The object reconciled (`body`), when the reconcile began (`now`) and everything read since."""

    body: Mapping[str, Any]
    now: datetime.datetime
    reads: Mapping[Read, Any] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def stamp(self) -> str:
        return self.now.strftime(STAMP)

    def get(self, read: Read) -> Any:
        if read not in self.reads:
            raise Unobserved(read)
        return self.reads[read]

    def child(self, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        """An object of the reconciled one's namespace (None when absent)."""
        found: dict[str, Any] | None = self.get(Get(api_version, kind, self.namespace, name))
        return found

    def children(self, api_version: str, kind: str, selector: str) -> tuple[dict[str, Any], ...]:
        """The objects of the reconciled one's namespace that `selector` selects."""
        found: tuple[dict[str, Any], ...] = self.get(Listing(api_version, kind, self.namespace, selector))
        return found

    def blocked(self) -> Outcome | None:
        """Why no pod may start in the namespace now (`Preflight`), or None."""
        found: Outcome | None = self.get(Preflight(self.namespace))
        return found

    def seconds_since(self, moment: datetime.datetime) -> float:
        return (self.now - moment).total_seconds()

    def with_read(self, read: Read, value: Any) -> Observation:
        return replace(self, reads={**self.reads, read: value})


def now() -> datetime.datetime:
    """The reconcile's time (tests move it)."""
    return datetime.datetime.now(datetime.UTC)


def observe_then_decide(
    kube: KubeApi,
    settings: Settings,
    body: Mapping[str, Any],
    decide: Callable[[Settings, Observation], Decision],
) -> Decision:
    """Decide on `body`, making each read the decision asks for (once) and deciding again. A failing read
    raises KubeError (kopf retries)."""
    seen = Observation(body, now())
    while True:
        try:
            return decide(settings, seen)
        except Unobserved as missing:
            if missing.read in seen.reads:  # a decision asking twice would loop forever
                raise RuntimeError(f"{missing.read} was read and is asked for again") from None
            seen = seen.with_read(missing.read, missing.read.perform(kube, settings))
