"""What the operator remembers of an object (its lock, the status it last wrote, its metrics' series) lives
as long as the object: a deletion forgets it at once, and the sweep forgets what no index holds any more,
so memory and series follow the live objects however many come and go."""

from __future__ import annotations

from typing import Any

from tests.controller.conftest import FakeKube

from marina.controller import handlers
from marina.controller.datasets import reconcile as datasets
from marina.controller.kube import metrics
from marina.controller.kube.health import Health
from marina.controller.kube.settings import Settings
from marina.controller.shared.registration import Registered, known_index
from marina.controller.shared.runtime import Runtime

SPEC = {"source": {"builtin": "diabetes"}}


def runtime_on(kube: FakeKube, settings: Settings) -> Runtime:
    return Runtime(settings, Health(60), lambda: kube)


def reconcile_all(runtime: Runtime, kube: FakeKube, names: list[str]) -> None:
    for name in names:
        kube.add_resource("Dataset", name, SPEC)
        runtime.reconcile(datasets.KIND, datasets.reconcile, "default", name)


def test_deleted_objects_are_forgotten_in_rounds_and_memory_stays_flat(
    kube: FakeKube, settings: Settings
) -> None:
    runtime = runtime_on(kube, settings)
    before = runtime.remembered()  # other tests' objects, in the process-wide locks and metrics
    after_round = []
    for round_ in range(5):
        names = [f"churn-{round_}-{index}" for index in range(200)]
        reconcile_all(runtime, kube, names)
        assert {(datasets.KIND, "default", name) for name in names} <= runtime.remembered()
        for name in names:
            runtime.forget(datasets.KIND, "default", name)  # what the DELETED event does
        after_round.append(len(runtime.remembered() - before))
    assert after_round == [0] * 5
    assert not [s for f in metrics.REGISTRY.collect() for s in f.samples if "churn-" in str(s.labels)]


def test_the_sweep_forgets_what_no_index_holds(kube: FakeKube, settings: Settings) -> None:
    runtime = runtime_on(kube, settings)
    names = {"sweep-kept", "sweep-missed"}
    reconcile_all(runtime, kube, sorted(names))
    kinds = [Registered(datasets.KIND, "datasets", datasets.reconcile)]
    indices: dict[str, Any] = {known_index("datasets"): {"default": ["sweep-kept"]}}
    chore = handlers.sweep(runtime, kinds, indices)
    gone = [item for item in chore.due() if item[2] in names]
    assert gone == [(datasets.KIND, "default", "sweep-missed")]
    for item in gone:
        chore.work(item)
    remembered = {key for key in runtime.remembered() if key[2] in names}
    assert remembered == {(datasets.KIND, "default", "sweep-kept")}
