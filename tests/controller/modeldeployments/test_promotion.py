"""The promotion gate: with IfBetter a new model of the TrainingJob is scored against the serving one by
an evaluation Job before any rollout; a worse one is rejected on record while the champion serves on,
a better or equal one rolls out, and no (champion, challenger) pair is evaluated twice."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.controller.test_controller_reconcilers import (
    SHA_A,
    SHA_B,
    deployment_settles,
    reconcile_md,
    serving,
    trained,
    trained_job,
)

from marina.contract import Failure, FailureKind
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import manifests as modeldeployment_manifests
from marina.controller.modeldeployments import promotion
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.shared import builders
from marina.controller.shared.conditions import State
from marina.controller.shared.fields import InvalidSpec
from marina.jobs import results

__all__ = ["serving"]  # a fixture, used by name
IF_BETTER = {"policy": "IfBetter", "metric": "rmse", "tolerance": 0.01}


def evaluated(champion_rmse: float, challenger_rmse: float) -> str:
    """What `marina evaluate` answers in the termination message."""

    def scores(sha: str, rmse: float) -> dict[str, Any]:
        return {"sha256": sha, "metrics": {"mse": rmse**2, "rmse": rmse, "mae": rmse * 0.8, "r2": 0.5}}

    return json.dumps(
        {
            "champion": scores(SHA_A, champion_rmse),
            "challenger": scores(SHA_B, challenger_rmse),
            "datasetVersion": "2222222222222222",
            "datasetUri": "s3://marina/datasets/default/diabetes/2222222222222222",
            "testRows": 89,
            "format": "marina.dev/result/v1",
        }
    )


@pytest.fixture
def gated(kube: Any, settings: Settings) -> Any:
    """Model A serving behind an IfBetter gate; the TrainingJob has just produced model B."""
    trained_job(kube, SHA_A)
    spec = {"model": {"trainingJob": "ridge"}, "replicas": 2, "promotion": IF_BETTER}
    kube.add_resource("ModelDeployment", "diabetes", spec)
    reconcile_md(kube, settings)  # the first model needs no gate: nothing serves yet
    deployment_settles(kube)
    assert reconcile_md(kube, settings).state is State.READY
    assert not [j for j in kube.jobs() if "-eval-" in j]
    trained_job(kube, SHA_B)
    return kube


def eval_jobs(kube: Any) -> list[str]:
    return [j for j in kube.jobs() if "-eval-" in j]


def served(kube: Any) -> str:
    deployment = kube.get("apps/v1", "Deployment", "default", "diabetes")
    return str(deployment["spec"]["template"]["metadata"]["annotations"][builders.MODEL_SHA256])


def test_the_champion_serves_on_while_the_challenger_is_evaluated(gated: Any, settings: Settings) -> None:
    outcome = reconcile_md(gated, settings)
    assert outcome.reason == "Evaluating" and SHA_B[:12] in outcome.message
    assert len(eval_jobs(gated)) == 1 and served(gated) == SHA_A
    status = gated.current("ModelDeployment", "diabetes")["status"]
    assert status["promotion"]["evaluating"]["sha256"] == SHA_B and status["model"]["sha256"] == SHA_A
    reconcile_md(gated, settings)
    assert len(eval_jobs(gated)) == 1  # the same pair never starts a second Job


def test_a_worse_challenger_is_rejected_on_record_and_the_champion_keeps_serving(
    gated: Any, settings: Settings
) -> None:
    reconcile_md(gated, settings)
    gated.finish_job(eval_jobs(gated)[0], evaluated(50.0, 80.0))
    outcome = reconcile_md(gated, settings)
    status = gated.current("ModelDeployment", "diabetes")["status"]
    rejected = status["rejectedModel"]
    assert outcome.state is State.READY and served(gated) == SHA_A and status["model"]["sha256"] == SHA_A
    assert rejected["sha256"] == SHA_B and rejected["uri"] == trained(SHA_B)["uri"]
    assert rejected["championMetrics"]["rmse"] == 50.0 and rejected["challengerMetrics"]["rmse"] == 80.0
    assert rejected["datasetVersion"] == "2222222222222222" and "rmse 80 is not <=" in rejected["reason"]
    assert ("Warning", "ChallengerRejected") in [e[1:3] for e in gated.events]
    assert "rejected" in outcome.message and "evaluating" not in status["promotion"]
    decisions = status["promotion"]["decisions"]
    assert [(d["champion"], d["challenger"], d["verdict"]) for d in decisions] == [(SHA_A, SHA_B, "Rejected")]
    decided = eval_jobs(gated)  # the last evaluation Job stays for its logs; earlier ones go
    gated.objects.pop(("v1", "Pod", "default", f"{decided[0]}-pod"))  # even its result gone...
    reconcile_md(gated, settings)
    assert eval_jobs(gated) == decided and served(gated) == SHA_A  # ...it is decided, never run again


def test_an_equal_or_better_challenger_rolls_out(gated: Any, settings: Settings) -> None:
    reconcile_md(gated, settings)
    gated.finish_job(eval_jobs(gated)[0], evaluated(50.0, 50.4))  # within 1 %
    assert reconcile_md(gated, settings).reason == "RollingOut" and served(gated) == SHA_B
    deployment_settles(gated)
    assert reconcile_md(gated, settings).state is State.READY
    status = gated.current("ModelDeployment", "diabetes")["status"]
    assert status["model"]["sha256"] == SHA_B and "rejectedModel" not in status
    assert status["promotion"]["decisions"][-1]["verdict"] == "Promoted"
    assert ("Normal", "ChallengerPromoted") in [e[1:3] for e in gated.events]


def test_a_comparison_that_cannot_succeed_is_a_rejection_once(gated: Any, settings: Settings) -> None:
    reconcile_md(gated, settings)
    gated.fail_job(
        eval_jobs(gated)[0], Failure(FailureKind.DATA, "the champion uses features the dataset lacks")
    )
    reconcile_md(gated, settings)
    status = gated.current("ModelDeployment", "diabetes")["status"]
    assert status["rejectedModel"]["reason"].startswith("EvaluationFailed: the champion uses features")
    assert served(gated) == SHA_A and len(eval_jobs(gated)) == 1


def test_always_rolls_out_without_evaluating(serving: Any, settings: Settings) -> None:
    trained_job(serving, SHA_B)
    assert reconcile_md(serving, settings).reason == "RollingOut" and served(serving) == SHA_B
    assert eval_jobs(serving) == []


def test_the_evaluation_pods_are_not_serving_pods_and_are_hardened(settings: Settings) -> None:
    owner = builders.Owner("ModelDeployment", "diabetes", "default", "uid-1")
    champion = builders.ModelReference("s3://marina/models/default/ridge/a.json", SHA_A)
    challenger = builders.ModelReference("s3://marina/models/default/ridge/b.json", SHA_B)
    job = modeldeployment_manifests.evaluation_job(settings, owner, champion, challenger, "0123456789")
    pod = job["spec"]["template"]
    assert owner.label_key not in pod["metadata"]["labels"]  # the Service and drift checks select on it
    assert job["metadata"]["labels"][owner.label_key] == "diabetes"  # its Jobs are still found
    container = pod["spec"]["containers"][0]
    assert (
        container["securityContext"]["readOnlyRootFilesystem"]
        and pod["spec"]["securityContext"]["runAsNonRoot"]
    )
    args = container["args"]
    assert args[0] == "evaluate" and args[args.index("--challenger-sha256") + 1] == SHA_B
    assert args[args.index("--result-file") + 1] == builders.TERMINATION_LOG
    assert len(job["metadata"]["name"]) <= 63
    stored = {e["name"]: e["value"] for e in container["env"]}[results.RESULT_URI_ENV]
    assert stored == f"s3://marina/models/default/diabetes/results/{job['metadata']['name']}.json"


@pytest.mark.parametrize(
    ("metric", "champion", "challenger", "tolerance", "passes"),
    [
        ("rmse", 10.0, 10.0, 0.0, True),
        ("rmse", 10.0, 10.1, 0.0, False),
        ("rmse", 10.0, 10.1, 0.01, True),
        ("mae", 10.0, 9.0, 0.0, True),
        ("r2", 0.5, 0.5, 0.0, True),
        ("r2", 0.5, 0.49, 0.0, False),
        ("r2", 0.5, 0.49, 0.01, True),
    ],
)
def test_no_worse_reads_the_metric_in_its_own_direction(
    metric: str, champion: float, challenger: float, tolerance: float, passes: bool
) -> None:
    assert promotion.no_worse(metric, champion, challenger, tolerance) is passes


def test_decisions_are_kept_per_pair_and_bounded() -> None:
    earlier = [
        promotion.Decision(f"{i:064x}", SHA_B, promotion.REJECTED, "worse", "rmse")
        for i in range(promotion.DECISIONS_KEPT)
    ]
    newest = promotion.Decision(SHA_A, SHA_B, promotion.PROMOTED, "better", "rmse")
    kept = promotion.with_decision(earlier, newest)
    assert len(kept) == promotion.DECISIONS_KEPT and kept[-1]["champion"] == SHA_A
    champion = builders.ModelReference("s3://x/a", SHA_A)
    challenger = builders.ModelReference("s3://x/b", SHA_B)
    found = promotion.recorded({"promotion": {"decisions": kept}}, champion, challenger)
    assert found is not None and found.verdict == promotion.PROMOTED
    assert promotion.recorded({"promotion": {"decisions": kept}}, challenger, champion) is None


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"policy": "Sometimes"}, "spec.promotion.policy"),
        ({"metric": "mse"}, "spec.promotion.metric"),
        ({"tolerance": 2}, "spec.promotion.tolerance"),
        ({"tolerance": -0.1}, "spec.promotion.tolerance"),
    ],
)
def test_promotion_is_validated_naming_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        modeldeployment_spec.parse({"model": {"trainingJob": "t"}, "promotion": section})
    assert error.value.field == field


def test_if_better_needs_a_training_job() -> None:
    fixed = {"model": {"uri": "s3://bucket/m.json", "sha256": SHA_A}, "promotion": {"policy": "IfBetter"}}
    with pytest.raises(InvalidSpec) as error:
        modeldeployment_spec.parse(fixed)
    assert error.value.field == "spec.promotion.policy"
    assert modeldeployment_spec.parse({"model": {"trainingJob": "t"}}).promotion.policy == "Always"
