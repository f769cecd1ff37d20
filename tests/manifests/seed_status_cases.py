"""Seed testdata for the Argo CD health checks from Marina's own reconcilers on the fake API, until objects
captured from a cluster replace them (tests/e2e/test_e2e_gitops_status.py with MARINA_CAPTURE_TESTDATA=1):

    PYTHONPATH=operator python -m tests.manifests.seed_status_cases [KIND ...]

Each phase of status_cases.PHASES is reached the way the controller tests reach it (tests/controller: the
fake plays the Job and Deployment controllers, the clock and the serving pods' counters); the files say
they are seeded.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from tests.controller.conftest import FakeIdentities, FakeKube
from tests.manifests import status_cases

from marina.contract import API_VERSION, Failure, FailureKind
from marina.controller.batchpredictions import reconcile as batchpredictions
from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import canary
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.shared import credentials, observation
from marina.controller.trainingjobs import reconcile as trainingjobs

SHA_A, SHA_B = "a" * 64, "b" * 64
VERSION = "0123456789abcdef"
PREPARED = {
    "version": VERSION,
    "sha256": VERSION + "0" * 48,
    "uri": f"s3://marina/datasets/default/diabetes/{VERSION}",
    "rows": 442,
    "trainRows": 353,
    "testRows": 89,
    "columns": ["age", "sex", "bmi", "bp", "target"],
    "target": "target",
    "reused": False,
    "statistics": {"bmi": {"mean": 0.0, "std": 0.05, "min": -0.09, "max": 0.17, "missing": 0}},
}
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def trained(sha: str) -> dict[str, Any]:
    return {
        "uri": f"s3://marina/models/default/diabetes/model-{sha}.json",
        "sha256": sha,
        "metrics": {"mse": 2900.0, "rmse": 53.85, "mae": 42.8, "r2": 0.45, "n": 89},
        "bestParameters": {"alpha": 0.1},
    }


@contextmanager
def fake_cluster() -> Iterator[tuple[FakeKube, Settings]]:
    """The controller tests' fake API with the namespace's storage identity, the clock held at START and no
    serving pod answering (a canary step waits for traffic)."""
    settings = Settings(probe_storage=False)
    identities = FakeIdentities()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(credentials, "_provider", [identities])
        patch.setattr(observation, "now", lambda: START)
        patch.setattr(canary, "read_traffic", lambda kube, owner: [])
        kube = FakeKube()
        kube.add(credentials.secret_body(settings, "default", identities.ensure(settings, "default", None)))
        yield kube, settings


def resource(kube: FakeKube, kind: str, name: str, spec: dict[str, Any]) -> None:
    kube.add_resource(kind, name, spec)


def dataset_phases() -> dict[str, dict[str, Any]]:
    found = {}
    with fake_cluster() as (kube, settings):
        resource(kube, "Dataset", "diabetes", {"source": {"builtin": "diabetes"}, "target": "target"})
        datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
        found["preparing"] = kube.current("Dataset", "diabetes")
        kube.finish_job(kube.jobs()[0], json.dumps(PREPARED))
        datasets.reconcile(kube, settings, kube.current("Dataset", "diabetes"))
        found["ready"] = kube.current("Dataset", "diabetes")
        spec = {"source": {"csv": {"uri": "s3://marina/raw/default/floors.csv"}}, "target": "price"}
        resource(kube, "Dataset", "floors", spec)
        datasets.reconcile(kube, settings, kube.current("Dataset", "floors"))
        (job,) = [j for j in kube.jobs() if "floors" in j]
        kube.fail_job(job, Failure(FailureKind.DATA, "column 'floors' row 1: 'Paris' is not a number"))
        datasets.reconcile(kube, settings, kube.current("Dataset", "floors"))
        found["prepare-failed"] = kube.current("Dataset", "floors")
    return found


def trainingjob_phases() -> dict[str, dict[str, Any]]:
    found = {}
    with fake_cluster() as (kube, settings):
        spec = {"dataset": {"name": "diabetes"}, "model": {"penalty": "l2", "alpha": 0.1}}
        resource(kube, "TrainingJob", "diabetes", spec)
        trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "diabetes"))
        found["waiting"] = kube.current("TrainingJob", "diabetes")
        kube.add_resource(
            "Dataset",
            "diabetes",
            {"source": {"builtin": "diabetes"}},
            {"version": VERSION, "uri": PREPARED["uri"]},
        )
        trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "diabetes"))
        found["training"] = kube.current("TrainingJob", "diabetes")
        kube.finish_job(kube.jobs()[0], json.dumps(trained(SHA_A)))
        trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "diabetes"))
        found["ready"] = kube.current("TrainingJob", "diabetes")
        gd = {"dataset": {"name": "diabetes"}, "model": {"penalty": "l1", "alpha": 0.1, "solver": "gd"}}
        resource(kube, "TrainingJob", "diverged", gd)
        trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "diverged"))
        (job,) = [j for j in kube.jobs() if j.startswith("diverged-")]
        failure = "gradient descent diverged: the loss grew for 50 iterations; lower spec.model.tol or use cd"
        kube.fail_job(job, Failure(FailureKind.TRAINING, failure))
        trainingjobs.reconcile(kube, settings, kube.current("TrainingJob", "diverged"))
        found["stalled"] = kube.current("TrainingJob", "diverged")
    return found


def settle(kube: FakeKube, name: str, stuck: bool = False) -> None:
    """The Deployment controller: every replica updated and available, or the rollout past its deadline."""
    body = kube.objects[("apps/v1", "Deployment", "default", name)]
    replicas = body["spec"]["replicas"]
    progressing = {
        "type": "Progressing",
        "status": "False" if stuck else "True",
        "reason": "ProgressDeadlineExceeded" if stuck else "NewReplicaSetAvailable",
        "message": f'ReplicaSet "{name}-5d9f7c" has '
        + ("timed out progressing." if stuck else "successfully progressed."),
    }
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas if not stuck else 1,
        "readyReplicas": replicas if not stuck else replicas - 1,
        "availableReplicas": replicas if not stuck else replicas - 1,
        "conditions": [progressing],
    }


def model_of(kube: FakeKube, sha: str) -> None:
    status = {"phase": "Succeeded", "model": {"uri": trained(sha)["uri"], "sha256": sha}}
    if kube.get(API_VERSION, "TrainingJob", "default", "diabetes") is None:
        kube.add_resource("TrainingJob", "diabetes", {"dataset": {"name": "diabetes"}}, status)
    else:
        kube.set_status(API_VERSION, "TrainingJob", "diabetes", status)


def modeldeployment_phases() -> dict[str, dict[str, Any]]:
    found = {}
    with fake_cluster() as (kube, settings):

        def reconcile() -> None:
            modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "diabetes"))

        model_of(kube, SHA_A)
        spec = {
            "model": {"trainingJob": "diabetes"},
            "replicas": 2,
            "rollout": {"progressDeadlineSeconds": 60},
        }
        resource(kube, "ModelDeployment", "diabetes", spec)
        reconcile()
        found["rolling-out"] = kube.current("ModelDeployment", "diabetes")
        settle(kube, "diabetes")
        reconcile()
        found["available"] = kube.current("ModelDeployment", "diabetes")
        model_of(kube, SHA_B)
        reconcile()
        kube.add(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "diabetes-5d9f7c-x2x4q",
                    "namespace": "default",
                    "labels": {
                        "marina.dev/modeldeployment": "diabetes",
                        "marina.dev/model-version": SHA_B[:12],
                    },
                },
                "status": {
                    "containerStatuses": [
                        {
                            "name": "marina",
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {
                                "terminated": {
                                    "exitCode": 1,
                                    "message": f"sha256 mismatch: the model's content is not {SHA_B[:12]}",
                                }
                            },
                        }
                    ]
                },
            }
        )
        settle(kube, "diabetes", stuck=True)
        reconcile()
        found["rolled-back"] = kube.current("ModelDeployment", "diabetes")
    with fake_cluster() as (kube, settings):
        model_of(kube, SHA_A)
        rollout = {
            "strategy": "Canary",
            "steps": [{"weight": 50, "pauseSeconds": 30}, {"weight": 100, "pauseSeconds": 30}],
            "analysis": {"maxPredictionShift": 1.0, "minRequests": 20},
        }
        resource(
            kube,
            "ModelDeployment",
            "diabetes",
            {"model": {"trainingJob": "diabetes"}, "replicas": 2, "rollout": rollout},
        )
        modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "diabetes"))
        settle(kube, "diabetes")
        modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "diabetes"))
        model_of(kube, SHA_B)
        modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "diabetes"))
        settle(kube, "diabetes-canary")
        modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "diabetes"))
        found["canary"] = kube.current("ModelDeployment", "diabetes")
    return found


def batchprediction_phases() -> dict[str, dict[str, Any]]:
    found = {}
    with fake_cluster() as (kube, settings):
        model_of(kube, SHA_A)
        kube.add_resource(
            "Dataset",
            "diabetes",
            {"source": {"builtin": "diabetes"}},
            {"version": VERSION, "uri": PREPARED["uri"]},
        )
        spec = {
            "model": {"trainingJob": "diabetes"},
            "source": {"dataset": {"name": "diabetes"}},
            "outputs": ["predict", "lower", "upper"],
        }
        resource(kube, "BatchPrediction", "diabetes", spec)
        batchpredictions.reconcile(kube, settings, kube.current("BatchPrediction", "diabetes"))
        found["scoring"] = kube.current("BatchPrediction", "diabetes")
        (job,) = kube.jobs()
        args = kube.get("batch/v1", "Job", "default", job)["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
        output = args[args.index("--output") + 1]
        result = {
            "manifest": f"{output}manifest.json",
            "sha256": "c" * 64,
            "rows": 89,
            "parts": 1,
            "extrapolated": {"range": 2},
        }
        kube.finish_job(job, json.dumps(result))
        batchpredictions.reconcile(kube, settings, kube.current("BatchPrediction", "diabetes"))
        found["ready"] = kube.current("BatchPrediction", "diabetes")
        bad = {**spec, "output": {"uri": "s3://marina/predictions/other/"}}
        resource(kube, "BatchPrediction", "elsewhere", bad)
        batchpredictions.reconcile(kube, settings, kube.current("BatchPrediction", "elsewhere"))
        found["stalled"] = kube.current("BatchPrediction", "elsewhere")
    return found


SEEDS = {
    "Dataset": dataset_phases,
    "TrainingJob": trainingjob_phases,
    "ModelDeployment": modeldeployment_phases,
    "BatchPrediction": batchprediction_phases,
}


def main(argv: Sequence[str] | None = None) -> int:
    kinds = list(argv if argv is not None else sys.argv[1:]) or list(SEEDS)
    for kind in kinds:
        objects = {name: status_cases.normalize(body, "default") for name, body in SEEDS[kind]().items()}
        for path in status_cases.write(objects, status_cases.SEEDED, kind):
            print(path.relative_to(status_cases.REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
