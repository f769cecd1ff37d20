"""The prepare and train Jobs' memory: one default limit whatever the data size, `spec.resources` in its
place when given, and a podFailurePolicy under which an OOM kill fails the Job at once while evictions
are still retried."""

from __future__ import annotations

from typing import Any

import pytest

from marina.contract import EXIT_RETRYABLE
from marina.controller.datasets import manifests as dataset_manifests
from marina.controller.datasets import spec as dataset_spec
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders
from marina.controller.trainingjobs import manifests as trainingjob_manifests
from marina.controller.trainingjobs import spec as trainingjob_spec

SETTINGS = Settings(image="marina:test", s3_endpoint="http://minio.example:9000", s3_secret="creds")
DATA_OWNER = builders.Owner("Dataset", "big", "team-a", "uid-1")
TRAIN_OWNER = builders.Owner("TrainingJob", "ridge", "team-a", "uid-2")
DATA_URI = "s3://marina/datasets/team-a/big/0123456789abcdef"


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    return dataset_manifests.prepare_job(SETTINGS, DATA_OWNER, dataset_spec.parse(spec), "0123456789")


def train(spec: dict[str, Any]) -> dict[str, Any]:
    return trainingjob_manifests.train_job(
        SETTINGS, TRAIN_OWNER, trainingjob_spec.parse(spec), DATA_URI, "0123456789"
    )


@pytest.mark.parametrize("rows", [2, 10_000_000])
def test_default_job_memory_limit_is_512mi_whatever_the_data_size(rows: int) -> None:
    source = {"source": {"synthetic": {"rows": rows, "features": 100}}}
    for job in (prepare(source), train({"dataset": {"name": "big"}})):
        assert container(job)["resources"] == {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        }


def test_spec_resources_replace_the_default() -> None:
    resources = {"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi", "cpu": "2"}}
    source = {"source": {"builtin": "diabetes"}, "resources": resources}
    assert container(prepare(source))["resources"] == resources
    trained = train({"dataset": {"name": "big"}, "resources": {"limits": {"memory": "24Mi"}}})
    assert container(trained)["resources"] == {"limits": {"memory": "24Mi"}}


def first_match(rules: list[dict[str, Any]], exit_code: int, conditions: set[str]) -> str:
    """The action the Job controller takes for a failed pod: the first rule that matches, else Count."""
    for rule in rules:
        codes = rule.get("onExitCodes")
        if codes and codes["containerName"] == "marina" and exit_code in codes["values"]:
            return str(rule["action"])
        if any(c["type"] in conditions for c in rule.get("onPodConditions") or []):
            return str(rule["action"])
    return "Count"


@pytest.mark.parametrize(
    ("exit_code", "conditions", "action"),
    [
        (137, set(), "FailJob"),  # killed at its memory limit: the same limit would be killed again
        (137, {"DisruptionTarget"}, "Ignore"),  # evicted or preempted, SIGKILLed after its grace period
        (143, {"DisruptionTarget"}, "Ignore"),
        (1, set(), "FailJob"),
        (70, set(), "FailJob"),
        (EXIT_RETRYABLE, set(), "Count"),
    ],
    ids=["oom-kill", "evicted-sigkill", "evicted-sigterm", "permanent", "internal", "retryable"],
)
def test_pod_failure_policy_fails_an_oom_kill_at_once_and_retries_disruptions(
    exit_code: int, conditions: set[str], action: str
) -> None:
    for job in (prepare({"source": {"builtin": "diabetes"}}), train({"dataset": {"name": "big"}})):
        rules = job["spec"]["podFailurePolicy"]["rules"]
        assert first_match(rules, exit_code, conditions) == action
