"""A TrainingJob's kopf registrations: reconciled on its own changes, and whenever the Dataset it trains on
changes (its followers come from the TRAININGJOBS_BY_DATASET index)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marina.controller.shared.registration import Registered, register_followers, register_kind
from marina.controller.shared.runtime import Runtime
from marina.controller.trainingjobs import reconcile

PLURAL = "trainingjobs"
TRAININGJOBS_BY_DATASET = "trainingjobs_by_dataset"  # kopf passes each index as a keyword of its id


def by_dataset(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """A TrainingJob's entry in TRAININGJOBS_BY_DATASET: (namespace, Dataset) -> its name. An empty
    mapping, not None, removes an earlier entry (kopf keeps the last value when a handler returns None)."""
    dataset = (spec.get("dataset") or {}).get("name")
    return {(namespace, str(dataset)): name} if dataset else {}


def register(runtime: Runtime) -> Registered:
    registered = register_kind(runtime, reconcile.KIND, PLURAL, reconcile.reconcile)
    register_followers(runtime, registered, "datasets", TRAININGJOBS_BY_DATASET, by_dataset)
    return registered
