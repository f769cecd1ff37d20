"""A ModelDeployment's children: the stable and canary Deployments serving a model (spread over nodes),
their Service, their PodDisruptionBudget, the optional HPA, and the promotion gate's evaluation Job
(`marina evaluate`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from marina.contract import GROUP, EvaluateRequest
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments.spec import Autoscaling, Logging, ModelDeploymentSpec
from marina.controller.shared import builders
from marina.controller.shared.builders import ModelReference, Owner
from marina.controller.shared.fields import Resources

SERVER_PORT = 8080
SERVICE_PORT = 80
DEFAULT_SERVER_RESOURCES: Resources = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
PRESTOP_SECONDS = 5
# On a canary's pods and in its Deployment's selector (the stable's pods have none).
TRACK = f"{GROUP}/track"
CANARY = "canary"
SHADOW = "shadow"
# On a shadow challenger's pods instead of the ModelDeployment's own label (which the Service selects).
SHADOW_OF = f"{GROUP}/shadow-of"


@dataclass(frozen=True)
class Mirror:
    """What the stable pods copy their answered requests to during a shadow phase (`--shadow-*` flags)."""

    url: str
    percent: int
    challenger: str  # the challenger's model version
    concurrency: int

    def args(self) -> list[str]:
        return [
            "--shadow-url",
            self.url,
            "--shadow-percent",
            str(self.percent),
            "--shadow-challenger",
            self.challenger,
            "--shadow-concurrency",
            str(self.concurrency),
        ]


def evaluation_job(
    settings: Settings, owner: Owner, champion: ModelReference, challenger: ModelReference, digest: str
) -> dict[str, Any]:
    """The promotion gate's Job (`marina evaluate`): both models scored on the challenger's test split.
    Its pods do not carry the ModelDeployment's own label, which selects the serving pods (the Service,
    the drift checks): an evaluation pod must never look like one of them."""
    request = EvaluateRequest(
        champion=champion.uri,
        champion_sha256=champion.sha256,
        challenger=challenger.uri,
        challenger_sha256=challenger.sha256,
        result_file=builders.TERMINATION_LOG,
    )
    container = builders.marina_container(settings, request.to_argv(), {}, builders.DEFAULT_JOB_RESOURCES)
    name = builders.child_name(owner, "eval", digest)
    built = builders.job(
        owner, name, "evaluate", container, backoff_limit=2, deadline_seconds=1800, digest=digest
    )
    del built["spec"]["template"]["metadata"]["labels"][owner.label_key]
    return builders.storing_result(built, settings.models_prefix(owner.namespace, owner.name))


def service_url(owner: Owner) -> str:
    return f"http://{owner.name}.{owner.namespace}.svc.cluster.local:{SERVICE_PORT}"


def server_container(
    settings: Settings,
    owner: Owner,
    spec: ModelDeploymentSpec,
    model: ModelReference,
    track: Mapping[str, str] | None = None,
    mirror: Mirror | None = None,
) -> dict[str, Any]:
    args = [
        "serve",
        "--model",
        model.uri,
        "--sha256",
        model.sha256,
        "--name",
        owner.name,
        "--host",
        "0.0.0.0",
        "--port",
        str(SERVER_PORT),
    ]
    if spec.serving.extrapolation == "Reject":  # Allow is the server's default: Allow adds no flag
        args += ["--extrapolation", "reject"]
    if track and track[TRACK] == CANARY:  # the stable's pods are the default track: no flag, no change
        args += ["--track", CANARY]
    args += logging_args(settings, owner, spec.logging)
    if mirror is not None:
        args += mirror.args()
    container = builders.marina_container(settings, args, spec.resources, DEFAULT_SERVER_RESOURCES)
    probe = {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "initialDelaySeconds": 1,
        "periodSeconds": 2,
        "timeoutSeconds": 2,
        "failureThreshold": 2,
    }
    container.update(
        {
            "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
            "readinessProbe": probe,
            "livenessProbe": {
                "httpGet": {"path": "/v2/health/live", "port": "http"},
                "periodSeconds": 10,
                "timeoutSeconds": 3,
                "failureThreshold": 3,
                "initialDelaySeconds": 10,
            },
            # Keep serving while the endpoint removal reaches every node's proxy, so a rollout
            # never sends a request to a process that is already shutting down.
            "lifecycle": {
                "preStop": {
                    "exec": {"command": ["python3", "-c", f"import time; time.sleep({PRESTOP_SECONDS})"]}
                }
            },
        }
    )
    return container


def logging_args(settings: Settings, owner: Owner, logging: Logging) -> list[str]:
    """The server's payload-log flags, none while logging is off (so turning it on rolls the pods once)."""
    if not logging.enabled:
        return []
    return [
        "--log-prefix",
        settings.logs_prefix(owner.namespace, owner.name),
        "--log-sample-rate",
        repr(logging.sample_rate),
        "--log-flush-rows",
        str(logging.flush_rows),
        "--log-flush-seconds",
        str(logging.flush_seconds),
    ]


def deployment(
    settings: Settings,
    owner: Owner,
    spec: ModelDeploymentSpec,
    model: ModelReference,
    mirror: Mirror | None = None,
) -> dict[str, Any]:
    """The stable Deployment: the one `spec.replicas` (or the HPA) sizes; during a shadow phase its pods
    also copy requests to the challenger (`mirror`: a new template, so they roll, and roll back after)."""
    replicas = spec.replicas if spec.autoscaling is None else None  # the HPA owns the count then
    return _serving_deployment(settings, owner, spec, model, owner.name, {}, replicas, mirror)


def mirrors(deployment_body: Mapping[str, Any] | None) -> bool:
    """Whether a Deployment's pods copy requests to a shadow challenger."""
    if not deployment_body:
        return False
    containers = deployment_body["spec"]["template"]["spec"].get("containers") or []
    return any("--shadow-url" in (c.get("args") or []) for c in containers)


def shadow_name(owner: Owner) -> str:
    return f"{owner.name}-{SHADOW}"


def shadow_url(service: Mapping[str, Any] | None) -> str | None:
    """The challenger's Service by its ClusterIP, not its DNS name: a Service deleted at the end of one
    shadow phase and created again for the next gets a new address, and CoreDNS answers the old one for
    its cache's lifetime (30 s), so copies sent by name went nowhere (found on the cluster). None until
    the Service has its address."""
    address = ((service or {}).get("spec") or {}).get("clusterIP")
    if not isinstance(address, str) or not address or address == "None":
        return None
    return f"http://{address}:{SERVICE_PORT}"


def shadow_deployment(
    settings: Settings, owner: Owner, spec: ModelDeploymentSpec, model: ModelReference, replicas: int
) -> dict[str, Any]:
    """The shadow challenger: the new model's pods, without the ModelDeployment's own label, so neither
    the Service (no client request), the PodDisruptionBudget nor the operator's readings of the serving
    pods count them. They keep no payload log (the stable pods log what the clients were answered)."""
    quiet = replace(spec, logging=replace(spec.logging, sample_rate=0.0))
    return _serving_deployment(
        settings, owner, quiet, model, shadow_name(owner), {TRACK: SHADOW}, replicas, shadow=True
    )


def shadow_service(owner: Owner, model: ModelReference) -> dict[str, Any]:
    """The challenger's own Service, for the stable pods' copies: only pods of the challenger's version."""
    selector = {SHADOW_OF: owner.name, f"{GROUP}/model-version": model.version}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": builders.metadata(owner, shadow_name(owner), "serve"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def canary_name(owner: Owner) -> str:
    return f"{owner.name}-{CANARY}"


def canary_deployment(
    settings: Settings, owner: Owner, spec: ModelDeploymentSpec, model: ModelReference, replicas: int
) -> dict[str, Any]:
    """The canary Deployment: the new model's pods beside the stable ones. They carry the stable's
    labels too, so the one Service sends them their share of the traffic; their own selector adds
    the track label, so the two Deployments never count each other's pods as theirs."""
    return _serving_deployment(settings, owner, spec, model, canary_name(owner), {TRACK: CANARY}, replicas)


def _serving_deployment(
    settings: Settings,
    owner: Owner,
    spec: ModelDeploymentSpec,
    model: ModelReference,
    name: str,
    track: Mapping[str, str],
    replicas: int | None,
    mirror: Mirror | None = None,
    shadow: bool = False,
) -> dict[str, Any]:
    common = builders.labels(owner, "serve")
    if shadow:
        del common[owner.label_key]
        selector = {SHADOW_OF: owner.name, **track}
    else:
        selector = {**builders.selector(owner), **track}
    pod_labels = {**common, f"{GROUP}/model-version": model.version, **selector, **track}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": builders.metadata(owner, name, "serve"),
        "spec": {
            "selector": {"matchLabels": selector},
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "revisionHistoryLimit": 5,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {builders.MODEL_URI: model.uri, builders.MODEL_SHA256: model.sha256},
                },
                "spec": builders.pod_spec(
                    [server_container(settings, owner, spec, model, track, mirror)],
                    terminationGracePeriodSeconds=30,
                    topologySpreadConstraints=[spread(selector)],
                    tolerations=node_loss_tolerations(),
                ),
            },
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def spread(selector: Mapping[str, str]) -> dict[str, Any]:
    """One Deployment's serving pods spread over nodes, so losing or draining a node takes a share of the
    replicas, not the model. Counted per ReplicaSet (pod-template-hash), so a rollout's new pods spread
    among themselves too."""
    return builders.spread_pods(selector, "pod-template-hash")


#: How long a serving pod waits on a node that stopped answering before it is evicted and replaced
#: elsewhere. Kubernetes' default is 300 s; a serving pod holds no state that waiting would save, and the
#: node is only declared lost after the node controller's grace period (50 s by default), so a lost node's
#: replicas are back within about 50 + 10 s plus a pod's start.
NODE_LOSS_TOLERATION_SECONDS = 10


def node_loss_tolerations() -> list[dict[str, Any]]:
    return [
        {
            "key": f"node.kubernetes.io/{taint}",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": NODE_LOSS_TOLERATION_SECONDS,
        }
        for taint in ("not-ready", "unreachable")
    ]


def pod_disruption_budget(owner: Owner, max_unavailable: int | str) -> dict[str, Any]:
    """Evictions (drains, upgrades) take at most `max_unavailable` of the serving pods at a time, stable
    and canary alike (both carry the ModelDeployment's label)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": builders.metadata(owner, owner.name, "serve"),
        "spec": {"selector": {"matchLabels": builders.selector(owner)}, "maxUnavailable": max_unavailable},
    }


def deployed_model(deployment_body: Mapping[str, Any] | None) -> ModelReference | None:
    """The model a Deployment's pod template asks for."""
    if not deployment_body:
        return None
    annotations = deployment_body["spec"]["template"]["metadata"].get("annotations") or {}
    if builders.MODEL_URI not in annotations or builders.MODEL_SHA256 not in annotations:
        return None
    return ModelReference(annotations[builders.MODEL_URI], annotations[builders.MODEL_SHA256])


def service(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": builders.metadata(owner, owner.name, "serve"),
        "spec": {
            "type": "ClusterIP",
            "selector": builders.selector(owner),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def horizontal_pod_autoscaler(owner: Owner, autoscaling: Autoscaling) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": builders.metadata(owner, owner.name, "serve"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.name},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_percent,
                        },
                    },
                }
            ],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": autoscaling.scale_down_stabilization_seconds}
            },
        },
    }
