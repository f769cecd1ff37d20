"""BatchPrediction on the fake API: it waits for its model and data, scores once per (spec, model, data)
with the exact `marina predict` request, shards with parallelism and writes the manifest last, reports
the manifest in status, scores again for a new model, and names a bad field or a foreign area."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from marina.contract import Failure, FailureKind, PredictRequest
from marina.controller.batchpredictions import handlers
from marina.controller.batchpredictions import reconcile as batchpredictions
from marina.controller.batchpredictions import spec as batch_spec
from marina.controller.kube.settings import Settings
from marina.controller.shared.conditions import State
from marina.controller.shared.fields import InvalidSpec

SHA_A, SHA_B = "a" * 64, "b" * 64
VERSION = "0123456789abcdef"
DATASET_URI = f"s3://marina/datasets/default/diabetes/{VERSION}"
SPEC = {
    "model": {"trainingJob": "ridge"},
    "source": {"dataset": {"name": "diabetes"}},
    "outputs": ["predict", "lower", "upper"],
    "passthrough": ["target"],
}


def model(sha: str) -> dict[str, Any]:
    return {"uri": f"s3://marina/models/default/ridge/model-{sha}.json", "sha256": sha}


def world(kube: Any, spec: dict[str, Any] | None = None, sha: str = SHA_A) -> None:
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}}, {"model": model(sha)})
    kube.add_resource(
        "Dataset", "diabetes", {"source": {"builtin": "diabetes"}}, {"version": VERSION, "uri": DATASET_URI}
    )
    kube.add_resource("BatchPrediction", "scores", spec or SPEC)


def reconcile(kube: Any, settings: Settings) -> Any:
    return batchpredictions.reconcile(kube, settings, kube.current("BatchPrediction", "scores"))


def args_of(kube: Any, job_name: str) -> list[str]:
    job = kube.get("batch/v1", "Job", "default", job_name)
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


def request_of(kube: Any, job_name: str) -> PredictRequest:
    """The Job's container args as `marina predict` reads them back."""
    command, *argv = args_of(kube, job_name)
    assert command == PredictRequest.COMMAND
    parser = argparse.ArgumentParser()
    PredictRequest.add_arguments(parser)
    return PredictRequest.from_args(parser.parse_args(argv))


def summary(run: str, rows: int = 89) -> str:
    manifest = f"s3://marina/predictions/default/scores/{run}/manifest.json"
    return json.dumps(
        {"manifest": manifest, "sha256": "c" * 64, "rows": rows, "parts": 1, "extrapolated": {"range": 2}}
    )


def test_it_scores_once_with_the_exact_request_and_reports_the_manifest(
    kube: Any, settings: Settings
) -> None:
    world(kube)
    outcome = reconcile(kube, settings)
    assert outcome.state is State.PROGRESSING and len(kube.jobs()) == 1
    (job,) = kube.jobs()
    request = request_of(kube, job)
    run = request.output.rstrip("/").rsplit("/", 1)[1]
    assert request == PredictRequest(
        model=model(SHA_A)["uri"],
        sha256=SHA_A,
        data=DATASET_URI,
        split="test",
        output=f"s3://marina/predictions/default/scores/{run}/",
        outputs=("predict", "lower", "upper"),
        level=0.95,
        passthrough=("target",),
        progress=request.progress,
        result_file="/dev/termination-log",
    )
    kube.finish_job(job, summary(run))
    outcome = reconcile(kube, settings)
    status = kube.current("BatchPrediction", "scores")["status"]
    assert outcome.state is State.READY and outcome.reason == "Scored"
    assert (status["rows"], status["parts"], status["extrapolated"]) == (89, 1, 2)
    assert status["uri"] == f"s3://marina/predictions/default/scores/{run}/"
    assert status["model"]["sha256"] == SHA_A and status["source"]["version"] == VERSION
    reconcile(kube, settings)
    assert kube.jobs() == [job]  # the same spec, model and data never score twice


def test_a_new_model_scores_again(kube: Any, settings: Settings) -> None:
    world(kube)
    reconcile(kube, settings)
    (first,) = kube.jobs()
    kube.finish_job(first, summary("x"))
    reconcile(kube, settings)
    kube.set_status("marina.dev/v1alpha1", "TrainingJob", "ridge", {"model": model(SHA_B)})
    assert reconcile(kube, settings).state is State.PROGRESSING
    (second,) = [name for name in kube.jobs() if name != first]
    assert request_of(kube, second).sha256 == SHA_B


def test_parallelism_scores_in_shards_then_writes_the_manifest(kube: Any, settings: Settings) -> None:
    world(kube, {**SPEC, "parallelism": 3})
    reconcile(kube, settings)
    (shards,) = kube.jobs()
    job = kube.get("batch/v1", "Job", "default", shards)
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 3)
    assert request_of(kube, shards).phase == "shard" and request_of(kube, shards).shards == 3
    kube.finish_job(shards, json.dumps({"shard": 0}))
    reconcile(kube, settings)
    (last,) = [name for name in kube.jobs() if name != shards]
    assert request_of(kube, last).phase == "manifest"
    assert request_of(kube, last).output == request_of(kube, shards).output  # the same run's folder


@pytest.mark.parametrize(
    ("missing", "reason"), [("TrainingJob", "TrainingJobNotFound"), ("Dataset", "DatasetNotFound")]
)
def test_it_waits_for_its_model_and_data(kube: Any, settings: Settings, missing: str, reason: str) -> None:
    world(kube)
    kube.delete(
        "marina.dev/v1alpha1", missing, "default", "ridge" if missing == "TrainingJob" else "diabetes"
    )
    outcome = reconcile(kube, settings)
    assert (outcome.state, outcome.reason) == (State.WAITING, reason) and kube.jobs() == []


def test_a_failed_scoring_says_why(kube: Any, settings: Settings) -> None:
    world(kube)
    reconcile(kube, settings)
    (job,) = kube.jobs()
    kube.fail_job(job, Failure(FailureKind.DATA, "column 'bmi' row 7: missing value"))
    outcome = reconcile(kube, settings)
    assert outcome.state is State.FAILED and "column 'bmi' row 7: missing value" in outcome.message


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**SPEC, "model": {}}, "spec.model"),
        ({**SPEC, "model": {"uri": "s3://marina/models/default/m.json"}}, "spec.model.sha256"),
        ({**SPEC, "source": {"csv": {"uri": "s3://marina/raw/other/x.csv"}}}, "spec.source.csv.uri"),
        ({**SPEC, "outputs": ["predict", "shap"]}, "spec.outputs[1]"),
        ({**SPEC, "level": 1.5}, "spec.level"),
        ({**SPEC, "output": {"uri": "s3://marina/models/default/"}}, "spec.output.uri"),
        ({**SPEC, "output": {"uri": "s3://marina/predictions/default/scores"}}, "spec.output.uri"),
    ],
)
def test_a_bad_spec_names_the_field(kube: Any, settings: Settings, spec: dict[str, Any], field: str) -> None:
    world(kube, spec)
    outcome = reconcile(kube, settings)
    assert outcome.state is State.FAILED and outcome.reason == "InvalidSpec"
    assert outcome.message.startswith(field), outcome.message
    with pytest.raises(InvalidSpec):
        batchpredictions.parse(settings, "default", kube.current("BatchPrediction", "scores"))


def test_it_follows_the_model_and_data_it_scores() -> None:
    entries = {
        followed: handlers.naming(path)("ns", "scores", SPEC)
        for followed, (_, path) in handlers.FOLLOWED.items()
    }
    assert entries == {
        "trainingjobs": {("ns", "ridge"): "scores"},
        "modeldeployments": {},
        "datasets": {("ns", "diabetes"): "scores"},
    }
    assert batch_spec.parse(SPEC).parallelism == 1
