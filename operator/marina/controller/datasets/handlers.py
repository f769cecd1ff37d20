"""A Dataset's kopf registrations: reconciled on its own changes (and by the operator-wide handlers on its
Jobs' events and the re-check)."""

from __future__ import annotations

from marina.controller.datasets import reconcile
from marina.controller.shared.registration import Registered, register_kind
from marina.controller.shared.runtime import Runtime

PLURAL = "datasets"


def register(runtime: Runtime) -> Registered:
    return register_kind(runtime, reconcile.KIND, PLURAL, reconcile.reconcile)
