"""Builders produce complete, hardened manifests that carry no credentials."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marina.controller.datasets import manifests as dataset_manifests
from marina.controller.datasets import spec as dataset_spec
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import manifests as modeldeployment_manifests
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.shared import builders
from marina.controller.trainingjobs import manifests as trainingjob_manifests
from marina.controller.trainingjobs import spec as trainingjob_spec

SETTINGS = Settings(image="marina:test", s3_endpoint="http://minio.example:9000", s3_secret="creds")
OWNER = builders.Owner("Dataset", "diabetes", "team-a", "uid-1")
MODEL = builders.ModelReference("s3://marina/models/team-a/m/model-" + "b" * 64 + ".json", "b" * 64)


def prepare() -> dict[str, Any]:
    spec = dataset_spec.parse({"source": {"builtin": "diabetes"}, "features": ["bmi", "bp"]})
    return dataset_manifests.prepare_job(SETTINGS, OWNER, spec, "0123456789")


def train() -> dict[str, Any]:
    spec = trainingjob_spec.parse(
        {
            "dataset": {"name": "diabetes"},
            "model": {"penalty": "l2", "alpha": 0.5},
            "search": {"alphas": [0.1, 1.0], "folds": 3},
            "backoffLimit": 2,
        }
    )
    owner = builders.Owner("TrainingJob", "ridge", "team-a", "uid-2")
    return trainingjob_manifests.train_job(
        SETTINGS, owner, spec, "s3://marina/datasets/team-a/diabetes/abc", "0123456789"
    )


def serve(**extra: Any) -> dict[str, Any]:
    spec = modeldeployment_spec.parse({"model": {"trainingJob": "ridge"}, "replicas": 2, **extra})
    owner = builders.Owner("ModelDeployment", "diabetes", "team-a", "uid-3")
    return modeldeployment_manifests.deployment(SETTINGS, owner, spec, MODEL)


def pod_template(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("build", [prepare, train, serve], ids=["prepare", "train", "serve"])
def test_pods_are_hardened_and_get_credentials_only_by_reference(build: Any) -> None:
    body = build()
    pod = pod_template(body)
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert {"name": "MARINA_S3_ENDPOINT", "value": "http://minio.example:9000"} in container["env"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["image"] == "marina:test" and container["resources"]["requests"]
    text = json.dumps(body)
    assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text
    owner_ref = body["metadata"]["ownerReferences"][0]
    assert owner_ref["controller"] is True and owner_ref["uid"].startswith("uid-")


def test_prepare_job_runs_marina_prepare_into_the_dataset_prefix() -> None:
    body = prepare()
    assert body["metadata"]["name"] == "diabetes-prepare-0123456789"
    assert body["metadata"]["labels"]["marina.dev/dataset"] == "diabetes"
    args = pod_template(body)["containers"][0]["args"]
    assert args[:5] == [
        "prepare",
        "--source",
        "builtin:diabetes",
        "--output",
        "s3://marina/datasets/team-a/diabetes",
    ]
    assert args[args.index("--result-file") + 1] == "/dev/termination-log"
    assert args[args.index("--features") + 1] == "bmi,bp"
    rules = body["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "marina", "operator": "In", "values": [1, 70]},
    }
    assert pod_template(body)["restartPolicy"] == "Never"


def test_inline_rows_travel_in_an_owned_config_map() -> None:
    spec = dataset_spec.parse({"source": {"inline": {"columns": ["x", "target"], "rows": [[1, 2], [2, 3]]}}})
    job = dataset_manifests.prepare_job(SETTINGS, OWNER, spec, "0123456789")
    config_map = dataset_manifests.inline_rows_config_map(OWNER, spec, "0123456789")
    assert config_map is not None and json.loads(config_map["data"]["rows.json"])[1] == {"x": 2, "target": 3}
    assert {"name": "inline-rows", "configMap": {"name": config_map["metadata"]["name"]}} in pod_template(
        job
    )["volumes"]
    args = pod_template(job)["containers"][0]["args"]
    assert args[args.index("--rows-file") + 1] == "/etc/marina/inline/rows.json"


def test_train_job_passes_model_and_search_flags() -> None:
    body = train()
    args = pod_template(body)["containers"][0]["args"]
    flag = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert flag["--data"] == "s3://marina/datasets/team-a/diabetes/abc"
    assert flag["--output"] == "s3://marina/models/team-a/ridge"
    assert (flag["--penalty"], flag["--alpha"], flag["--search-alpha"], flag["--cv"]) == (
        "l2",
        "0.5",
        "0.1,1.0",
        "3",
    )
    assert body["spec"]["backoffLimit"] == 2 and body["spec"]["activeDeadlineSeconds"] == 3600


def test_deployment_rolls_without_dropping_ready_replicas() -> None:
    body = serve()
    spec = body["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    container = pod_template(body)["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "python3"
    args = container["args"]
    assert args[args.index("--sha256") + 1] == "b" * 64 and args[args.index("--name") + 1] == "diabetes"
    assert modeldeployment_manifests.deployed_model(body) == MODEL
    assert spec["selector"]["matchLabels"] == {"marina.dev/modeldeployment": "diabetes"}


def test_serving_pods_leave_a_lost_node_sooner_than_the_default_five_minutes() -> None:
    tolerations = pod_template(serve())["tolerations"]
    assert {t["key"] for t in tolerations} == {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    }
    assert all(t["effect"] == "NoExecute" and 0 < t["tolerationSeconds"] < 300 for t in tolerations)


def test_autoscaled_deployment_leaves_replicas_to_the_hpa() -> None:
    body = serve(autoscaling={"maxReplicas": 5})
    assert "replicas" not in body["spec"]
    owner = builders.Owner("ModelDeployment", "diabetes", "team-a", "uid-3")
    hpa = modeldeployment_manifests.horizontal_pod_autoscaler(
        owner, modeldeployment_spec.Autoscaling(2, 5, 70, 30)
    )
    assert hpa["spec"]["scaleTargetRef"]["name"] == "diabetes"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 70,
    }
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 30}}


def test_service_and_url() -> None:
    owner = builders.Owner("ModelDeployment", "diabetes", "team-a", "uid-3")
    service = modeldeployment_manifests.service(owner)
    assert service["spec"]["ports"][0] == {
        "name": "http",
        "port": 80,
        "targetPort": "http",
        "protocol": "TCP",
    }
    assert modeldeployment_manifests.service_url(owner) == "http://diabetes.team-a.svc.cluster.local:80"


def test_short_hash_changes_with_inputs() -> None:
    spec = dataset_spec.parse({"source": {"builtin": "diabetes"}})
    other = dataset_spec.parse({"source": {"builtin": "diabetes"}, "split": {"seed": 1}})
    assert builders.short_hash(spec) == builders.short_hash(spec) != builders.short_hash(other)
    assert len(builders.short_hash(spec)) == 10
