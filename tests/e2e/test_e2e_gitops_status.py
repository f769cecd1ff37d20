"""Every Marina kind in every phase on the real cluster, read as GitOps tools read it: Argo CD through
manifests/argocd's health.lua in Argo CD's Lua environment (hack/tools/argocd-health, gopher-lua) and Flux
through kstatus (hack/tools/kstatus, cli-utils' status.Compute), both on the live objects that
`kubectl get -o json` returns.

The phases are tests/manifests/status_cases.PHASES: Dataset preparing / Ready / PrepareFailed, TrainingJob
waiting for its Dataset / training / Ready / Stalled (OutOfMemory), ModelDeployment rolling out / Available /
in a canary step / RolledBack, BatchPrediction scoring / Ready / Stalled (InvalidSpec). Each is caught by
polling the object every quarter second until its Ready condition names the phase's reason; what kstatus says
at every poll is kept, so the test also shows each kind going InProgress -> Current (and -> Failed).

    MARINA_CAPTURE_TESTDATA=1 python -m pytest tests/e2e/test_e2e_gitops_status.py

also writes the captured objects (normalized) into manifests/argocd/resource_customizations/marina.dev/
<Kind>/testdata and rewrites each kind's health_test.yaml, replacing the seeded objects; commit the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.manifests import status_cases
from tests.manifests.status_cases import ARGOCD, PHASES

from marina import storage

CAPTURE = os.environ.get("MARINA_CAPTURE_TESTDATA") == "1"
SCRIPT = ARGOCD / "health.lua"
EVERY = 0.25  # seconds between reads while waiting for a phase
#: The Ready condition's reason in each phase (this test reads reasons to know where an object is; the health
#: checks never do).
REASONS = {
    ("Dataset", "preparing"): "Preparing",
    ("Dataset", "ready"): "Prepared",
    ("Dataset", "prepare-failed"): "PrepareFailed",
    ("TrainingJob", "waiting"): "DatasetNotFound",
    ("TrainingJob", "training"): "Training",
    ("TrainingJob", "ready"): "Trained",
    ("TrainingJob", "stalled"): "OutOfMemory",
    ("ModelDeployment", "rolling-out"): "RollingOut",
    ("ModelDeployment", "available"): "Available",
    ("ModelDeployment", "canary"): "Canary",
    ("ModelDeployment", "rolled-back"): "RolledBack",
    ("BatchPrediction", "scoring"): "Scoring",
    ("BatchPrediction", "ready"): "Scored",
    ("BatchPrediction", "stalled"): "InvalidSpec",
}


def tool(path: Path, *args: str, stdin: str) -> list[dict[str, str]]:
    result = subprocess.run(
        [str(path), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return [json.loads(line) for line in result.stdout.splitlines()]


@dataclass
class Capture:
    marina: Any
    kstatus: Path
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (kind, phase) -> live
    seen: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (kind, name) -> kstatus reads

    def read(self, kind: str, name: str) -> dict[str, Any]:
        body = self.marina.get(kind.lower(), name)
        if body.get("status"):
            (result,) = tool(self.kstatus, stdin=json.dumps(body))
            reads = self.seen.setdefault((kind, name), [])
            if not reads or reads[-1] != result["status"]:
                reads.append(result["status"])
        return body

    def phase(self, kind: str, name: str, phase: str, timeout: float = 300) -> dict[str, Any]:
        """Poll `kind/name` until its Ready condition has the phase's reason and describes the object's
        generation; keep that object."""
        reason = REASONS[(kind, phase)]

        def reached() -> dict[str, Any] | None:
            body = self.read(kind, name)
            status = body.get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            current = status.get("observedGeneration") == body["metadata"]["generation"]
            return body if current and ready.get("reason") == reason else None

        body: dict[str, Any] = self.marina.wait_for(
            f"{kind}/{name} {phase} (reason {reason})", reached, timeout=timeout, every=EVERY
        )
        self.objects[(kind, phase)] = body
        return body

    def apply(self, kind: str, name: str, spec: dict[str, Any]) -> None:
        self.marina.apply(
            {"apiVersion": "marina.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
        )


def drive(capture: Capture) -> None:
    """Every phase of PHASES, in the order the kinds depend on each other."""
    marina = capture.marina
    dataset = marina.sample("Dataset")["spec"]
    capture.apply("Dataset", "diabetes", dataset)
    capture.phase("Dataset", "diabetes", "preparing")
    capture.phase("Dataset", "diabetes", "ready")

    uri = f"s3://marina/raw/{marina.namespace}/floors.csv"
    storage.write_bytes(uri, b"rooms,floors,price\n3,Paris,100\n4,2,120\n2,1,90\n5,3,150\n", "text/csv")
    capture.apply("Dataset", "floors", {"source": {"csv": {"uri": uri}}, "target": "price"})
    capture.phase("Dataset", "floors", "prepare-failed", timeout=180)
    # 50,000 x 100 float64 for the training that runs out of memory (tests/e2e/test_e2e_memory.py)
    wide = {
        "source": {"synthetic": {"rows": 50_000, "features": 100, "seed": 3}},
        "resources": {"limits": {"memory": "1Gi"}},
    }
    capture.apply("Dataset", "wide", wide)

    training = marina.sample("TrainingJob")["spec"]
    capture.apply("TrainingJob", "late", {**training, "dataset": {"name": "late"}})
    capture.phase("TrainingJob", "late", "waiting", timeout=60)
    capture.apply("TrainingJob", "diabetes", training)
    capture.phase("TrainingJob", "diabetes", "training")
    capture.phase("TrainingJob", "diabetes", "ready", timeout=420)
    better = {**training, "model": {**training["model"], "alpha": 0.2}}
    capture.apply("TrainingJob", "better", better)
    marina.wait_ready("dataset", "wide", timeout=300)
    small = {"dataset": {"name": "wide"}, "resources": {"limits": {"memory": "24Mi"}}}
    capture.apply("TrainingJob", "small", small)
    capture.phase("TrainingJob", "small", "stalled", timeout=180)

    serving = marina.sample("ModelDeployment")["spec"]
    capture.apply("ModelDeployment", "diabetes", serving)
    capture.phase("ModelDeployment", "diabetes", "rolling-out")
    capture.phase("ModelDeployment", "diabetes", "available")

    model = marina.status("trainingjob", "diabetes")["model"]
    pinned = {
        "model": {"uri": model["uri"], "sha256": model["sha256"]},
        "replicas": 1,
        "rollout": {"progressDeadlineSeconds": 15},
    }
    capture.apply("ModelDeployment", "pinned", pinned)
    marina.wait_ready("modeldeployment", "pinned", timeout=180)
    patch = json.dumps({"spec": {"model": {"sha256": "0" * 64}}})
    marina.kubectl("patch", "modeldeployment", "pinned", "--type=merge", "-p", patch)
    capture.phase("ModelDeployment", "pinned", "rolled-back", timeout=240)

    marina.wait_ready("trainingjob", "better", timeout=420)
    canary = {
        "model": {"trainingJob": "diabetes"},
        "replicas": 2,
        "rollout": {
            "progressDeadlineSeconds": 60,
            "strategy": "Canary",
            "steps": [{"weight": 50, "pauseSeconds": 5}, {"weight": 100, "pauseSeconds": 5}],
            "analysis": {"maxPredictionShift": 1.0, "minRequests": 20},  # no traffic: the step waits
        },
    }
    capture.apply("ModelDeployment", "canary", canary)
    marina.wait_ready("modeldeployment", "canary", timeout=300)
    patch = json.dumps({"spec": {"model": {"trainingJob": "better"}}})
    marina.kubectl("patch", "modeldeployment", "canary", "--type=merge", "-p", patch)
    capture.phase("ModelDeployment", "canary", "canary", timeout=180)

    scoring = {
        "model": {"trainingJob": "diabetes"},
        "source": {"dataset": {"name": "diabetes"}},
        "outputs": ["predict"],
    }
    capture.apply("BatchPrediction", "scores", scoring)
    capture.phase("BatchPrediction", "scores", "scoring")
    capture.phase("BatchPrediction", "scores", "ready", timeout=300)
    elsewhere = {**scoring, "output": {"uri": "s3://marina/predictions/another-namespace/"}}
    capture.apply("BatchPrediction", "elsewhere", elsewhere)
    capture.phase("BatchPrediction", "elsewhere", "stalled", timeout=60)


@pytest.fixture(scope="module")
def captured(marina: Any, kstatus: Path, storage_env: None) -> Capture:
    capture = Capture(marina, kstatus)
    started = time.monotonic()
    drive(capture)
    print(f"\nevery phase captured in {time.monotonic() - started:.0f} s")
    if CAPTURE:
        for kind in status_cases.KINDS:
            objects = {
                phase: status_cases.normalize(body, marina.namespace)
                for (k, phase), body in capture.objects.items()
                if k == kind
            }
            for path in status_cases.write(objects, status_cases.CAPTURED, kind):
                print(f"wrote {path.relative_to(status_cases.REPO)}")
    return capture


@pytest.fixture(scope="module")
def storage_env(minio: Any) -> Any:
    """marina.storage in the test process talks to the cluster's MinIO (for the module's `captured`)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in minio.environment().items():
            patch.setenv(key, value)
        yield


def test_argo_cd_reads_every_phase_as_it_must(captured: Capture, argocd_health: Path) -> None:
    objects = [captured.objects[(p.kind, p.name)] for p in PHASES]
    results = tool(argocd_health, "eval", str(SCRIPT), stdin=json.dumps({"kind": "List", "items": objects}))
    got = {
        (p.kind, p.name): (r.get("status"), r.get("message")) for p, r in zip(PHASES, results, strict=True)
    }
    expected = {
        (p.kind, p.name): (p.health, status_cases.expected_health(o)[1])
        for p, o in zip(PHASES, objects, strict=True)
    }
    assert got == expected


def test_kstatus_reads_every_phase_as_it_must(captured: Capture, kstatus: Path) -> None:
    objects = [captured.objects[(p.kind, p.name)] for p in PHASES]
    results = tool(kstatus, stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    assert {(p.kind, p.name): r["status"] for p, r in zip(PHASES, results, strict=True)} == {
        (p.kind, p.name): p.kstatus for p in PHASES
    }


@pytest.mark.parametrize(
    ("kind", "name", "reads"),
    [
        ("Dataset", "diabetes", ["InProgress", "Current"]),
        ("Dataset", "floors", ["InProgress", "Failed"]),
        ("TrainingJob", "diabetes", ["InProgress", "Current"]),
        ("TrainingJob", "small", ["InProgress", "Failed"]),
        ("ModelDeployment", "diabetes", ["InProgress", "Current"]),
        ("ModelDeployment", "pinned", ["InProgress", "Failed"]),
        ("BatchPrediction", "scores", ["InProgress", "Current"]),
    ],
)
def test_kstatus_follows_each_kind_through_its_phases(
    captured: Capture, kind: str, name: str, reads: list[str]
) -> None:
    """What kstatus said at every read from the first status on (repeats folded). `pinned` is first made
    Current by its Ready wait, which this test does not read, then patched to a model that never starts."""
    assert captured.seen[(kind, name)][-len(reads) :] == reads, captured.seen[(kind, name)]
    assert "Failed" not in captured.seen[(kind, name)][:-1]


def test_flux_and_kubectl_read_the_live_list_of_every_kind(captured: Capture, kstatus: Path) -> None:
    """`kubectl get <plural> -o json | kstatus`, as a Flux health check sees the namespace now."""
    for kind in status_cases.KINDS:
        listed = captured.marina.kubectl("get", kind.lower(), "-o", "json")
        statuses = {r["name"]: r["status"] for r in tool(kstatus, stdin=listed)}
        assert set(statuses.values()) <= {"InProgress", "Current", "Failed"}, statuses
