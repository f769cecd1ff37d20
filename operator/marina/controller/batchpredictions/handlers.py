"""A BatchPrediction's kopf registrations: reconciled on its own changes, and whenever what it scores
changes: the TrainingJob or ModelDeployment whose model it uses, the Dataset whose split it reads (a new
model or a new version scores again)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from marina.controller.batchpredictions import reconcile
from marina.controller.shared.registration import Registered, register_followers, register_kind
from marina.controller.shared.runtime import Runtime

PLURAL = "batchpredictions"
FOLLOWED = {  # followed plural -> (index id, where the spec names it)
    "trainingjobs": ("batchpredictions_by_trainingjob", ("model", "trainingJob")),
    "modeldeployments": ("batchpredictions_by_modeldeployment", ("model", "modelDeployment")),
    "datasets": ("batchpredictions_by_dataset", ("source", "dataset", "name")),
}


def naming(path: tuple[str, ...]) -> Callable[[str, str, Mapping[str, Any]], dict[tuple[str, str], str]]:
    """A BatchPrediction's index entry: (namespace, the name its spec gives at `path`) -> its name."""

    def entry(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[tuple[str, str], str]:
        value: Any = spec
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return {(namespace, str(value)): name} if isinstance(value, str) and value else {}

    return entry


def register(runtime: Runtime) -> Registered:
    registered = register_kind(runtime, reconcile.KIND, PLURAL, reconcile.reconcile)
    for followed, (index, path) in FOLLOWED.items():
        register_followers(runtime, registered, followed, index, naming(path))
    return registered
