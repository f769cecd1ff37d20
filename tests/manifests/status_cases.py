"""Each Marina kind in each phase of its life, as Argo CD and kstatus must read it.

The objects come from the cluster (tests/e2e/test_e2e_gitops_status.py captures them when
MARINA_CAPTURE_TESTDATA=1) or, until they have been captured, from the operator's own reconcilers on the fake
API (tests/manifests/seed_status_cases.py). Either way `write` puts them in Argo CD's layout,
manifests/argocd/resource_customizations/marina.dev/<Kind>/testdata/<phase>.yaml, adds the cases derived from
each kind's Ready object (a new generation not yet observed, no status yet), and writes the kind's
health_test.yaml: each case's status is the health its PHASE must have, its message the one `expected_health`
(this module's own reading of the rule health.lua implements) gives for the object.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "manifests" / "argocd"
CUSTOMIZATIONS = ARGOCD / "resource_customizations" / "marina.dev"
NAMESPACE = "default"  # every object's namespace in testdata
MOMENT = "2026-01-01T00:00:00Z"  # every timestamp in testdata
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

CAPTURED = "captured"
SEEDED = "seeded"
PROVENANCE = {
    CAPTURED: "# Captured from a live cluster by tests/e2e/test_e2e_gitops_status.py\n"
    "# (MARINA_CAPTURE_TESTDATA=1); uid, resourceVersion, managedFields, annotations and timestamps\n"
    "# normalized, the namespace renamed default.\n",
    SEEDED: "# SEEDED, NOT CAPTURED: written by Marina's own reconcilers on the fake API of\n"
    "# tests/controller (tests/manifests/seed_status_cases.py). Replace by capturing from a cluster:\n"
    "# MARINA_CAPTURE_TESTDATA=1 python -m pytest tests/e2e/test_e2e_gitops_status.py\n",
}


@dataclass(frozen=True)
class Phase:
    kind: str
    name: str  # testdata/<name>.yaml
    health: str  # the Argo CD health it must have
    kstatus: str  # the kstatus it must have
    what: str


PHASES = (
    Phase("Dataset", "preparing", "Progressing", "InProgress", "its prepare Job runs"),
    Phase("Dataset", "ready", "Healthy", "Current", "prepared and versioned"),
    Phase("Dataset", "prepare-failed", "Degraded", "Failed", "the data is bad (PrepareFailed): Stalled"),
    Phase("TrainingJob", "waiting", "Progressing", "InProgress", "its Dataset does not exist yet: retried"),
    Phase("TrainingJob", "training", "Progressing", "InProgress", "its training Job runs"),
    Phase("TrainingJob", "ready", "Healthy", "Current", "trained, model stored"),
    Phase("TrainingJob", "stalled", "Degraded", "Failed", "its run failed and is not retried: Stalled"),
    Phase("ModelDeployment", "rolling-out", "Progressing", "InProgress", "its first model's pods start"),
    Phase("ModelDeployment", "available", "Healthy", "Current", "serving"),
    Phase("ModelDeployment", "canary", "Progressing", "InProgress", "a new model in a canary step"),
    Phase(
        "ModelDeployment",
        "rolled-back",
        "Degraded",
        "Failed",
        "a new model never got ready: the previous one serves (Ready and Stalled)",
    ),
    Phase("BatchPrediction", "scoring", "Progressing", "InProgress", "its predict Job runs"),
    Phase("BatchPrediction", "ready", "Healthy", "Current", "scored"),
    Phase(
        "BatchPrediction", "stalled", "Degraded", "Failed", "a spec Marina cannot use (InvalidSpec): Stalled"
    ),
)
KINDS = tuple(dict.fromkeys(phase.kind for phase in PHASES))
#: The phase of each kind whose object is Ready (the base of the derived cases).
READY = {
    "Dataset": "ready",
    "TrainingJob": "ready",
    "ModelDeployment": "available",
    "BatchPrediction": "ready",
}


@dataclass(frozen=True)
class Derivation:
    name: str
    health: str
    kstatus: str
    what: str
    change: Callable[[dict[str, Any]], None]


def _new_generation(body: dict[str, Any]) -> None:
    body["metadata"]["generation"] = int(body["metadata"]["generation"]) + 1


def _no_status(body: dict[str, Any]) -> None:
    body.pop("status", None)


#: Cases made from each kind's Ready object. kstatus reads an object without status as Current: it cannot tell
#: a resource whose controller has not written yet from one that has nothing to report (its documented rule).
DERIVATIONS = (
    Derivation(
        "new-generation",
        "Progressing",
        "InProgress",
        "its spec changed (metadata.generation + 1); the operator has not observed it yet",
        _new_generation,
    ),
    Derivation("no-status", "Progressing", "Current", "just created: no status written yet", _no_status),
)


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    health: str
    kstatus: str
    what: str

    @property
    def path(self) -> Path:
        return CUSTOMIZATIONS / self.kind / "testdata" / f"{self.name}.yaml"


def cases() -> list[Case]:
    found = [Case(p.kind, p.name, p.health, p.kstatus, p.what) for p in PHASES]
    for kind in KINDS:
        found.extend(Case(kind, f"{READY[kind]}-{d.name}", d.health, d.kstatus, d.what) for d in DERIVATIONS)
    return found


def _conditions(body: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = body.get("status") or {}
    wanted = ("Ready", "Reconciling", "Stalled")
    return {c["type"]: c for c in status.get("conditions") or [] if c.get("type") in wanted}


def _describe(condition: Mapping[str, Any]) -> str:
    reason, message = condition.get("reason") or "", condition.get("message") or ""
    return f"{reason}: {message}" if reason and message else reason or message


def expected_health(body: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) Argo CD must show for a Marina object: generation first, then Stalled, Reconciling,
    Ready; reasons only shown, never interpreted."""
    status = body.get("status")
    if status is None:
        return "Progressing", "Waiting for the operator to report a status"
    generation = body["metadata"].get("generation")
    observed = status.get("observedGeneration")
    waiting = f"Waiting for the operator to observe generation {generation}"
    if isinstance(generation, int):
        if not isinstance(observed, int):
            return "Progressing", waiting
        if observed < generation:
            return "Progressing", f"{waiting} (the status is of generation {observed})"
        for condition in status.get("conditions") or []:
            seen = condition.get("observedGeneration")
            watched = condition.get("type") in ("Ready", "Reconciling", "Stalled")
            if watched and isinstance(seen, int) and seen < generation:
                stale = f"the {condition['type']} condition is of generation {seen}"
                return "Progressing", f"{waiting} ({stale})"
    conditions = _conditions(body)
    stalled, reconciling, ready = (conditions.get(t) for t in ("Stalled", "Reconciling", "Ready"))
    if stalled and stalled.get("status") == "True":
        if not stalled.get("message") and ready:
            return "Degraded", _describe({"reason": stalled.get("reason"), "message": ready.get("message")})
        return "Degraded", _describe(stalled)
    if reconciling and reconciling.get("status") == "True":
        return "Progressing", _describe(reconciling)
    if not ready or ready.get("status") not in ("True", "False"):
        return "Progressing", "Waiting for the Ready condition"
    return ("Healthy" if ready["status"] == "True" else "Progressing"), _describe(ready)


def normalize(body: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """A live object made reproducible: volatile metadata gone, timestamps fixed, its namespace `default`."""
    text = json.dumps(body)
    if namespace != NAMESPACE:
        text = text.replace(namespace, NAMESPACE)
    cleaned: dict[str, Any] = _fix_times(json.loads(text))
    meta = cleaned["metadata"]
    for key in ("uid", "resourceVersion", "managedFields", "selfLink"):
        meta.pop(key, None)
    meta["creationTimestamp"] = MOMENT
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(("kubectl.kubernetes.io/", "kopf.zalando.org/"))
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return cleaned


def _fix_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fix_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_times(v) for v in value]
    if isinstance(value, str) and TIMESTAMP.match(value):
        return MOMENT
    return value


def check_phase(phase: Phase, body: Mapping[str, Any]) -> None:
    """Raise when an object is not in the phase it was taken for (the capture's own check)."""
    health, message = expected_health(body)
    if health != phase.health:
        raise AssertionError(
            f"{phase.kind} {phase.name}: the object reads {health} ({message}), not {phase.health}: "
            f"{json.dumps((body.get('status') or {}).get('conditions'), indent=1)}"
        )


def _dump(body: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(body), sort_keys=False, width=110, allow_unicode=True)


def write(objects: Mapping[str, Mapping[str, Any]], provenance: str, kind: str) -> list[Path]:
    """Write one kind's testdata (objects by phase name, normalized), the derived cases and health_test.yaml.
    Phases not given keep their present file."""
    folder = CUSTOMIZATIONS / kind
    (folder / "testdata").mkdir(parents=True, exist_ok=True)
    written = []
    for phase in (p for p in PHASES if p.kind == kind and p.name in objects):
        body = objects[phase.name]
        check_phase(phase, body)
        path = folder / "testdata" / f"{phase.name}.yaml"
        path.write_text(f"# {kind}: {phase.what}.\n{PROVENANCE[provenance]}{_dump(body)}")
        written.append(path)
    ready_path = folder / "testdata" / f"{READY[kind]}.yaml"
    ready = yaml.safe_load(ready_path.read_text())
    comments = [line for line in ready_path.read_text().splitlines() if line.startswith("#")]
    origin = "".join(f"{line}\n" for line in comments[1:])
    for derivation in DERIVATIONS:
        body = copy.deepcopy(ready)
        derivation.change(body)
        path = folder / "testdata" / f"{READY[kind]}-{derivation.name}.yaml"
        header = f"# {kind}: {derivation.what}.\n# Derived from {ready_path.name}:\n"
        path.write_text(header + origin + _dump(body))
        written.append(path)
    written.append(write_tests(kind))
    return written


def tests_text(kind: str) -> str:
    """health_test.yaml of one kind, from its testdata files."""
    tests = []
    for case in (c for c in cases() if c.kind == kind):
        body = yaml.safe_load(case.path.read_text())
        health, message = expected_health(body)
        if health != case.health:
            raise AssertionError(f"{case.path} reads {health} ({message}), not {case.health}")
        tests.append(
            {
                "healthStatus": {"status": health, "message": message},
                "inputPath": f"testdata/{case.name}.yaml",
            }
        )
    header = (
        "# Written by tests/manifests/status_cases.py with the testdata: each case's status is the health\n"
        "# its phase must have, its message the deciding condition's reason and message. Run by\n"
        "# tests/manifests/test_argocd_health.py through hack/tools/argocd-health (Argo CD's Lua).\n"
    )
    return header + yaml.safe_dump({"tests": tests}, sort_keys=False, width=1000)


def write_tests(kind: str) -> Path:
    path = CUSTOMIZATIONS / kind / "health_test.yaml"
    path.write_text(tests_text(kind))
    return path
