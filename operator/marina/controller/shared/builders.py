"""Pure functions from (settings, owner, typed spec) to complete Kubernetes manifests as dicts.

Every Marina pod runs the one image as uid 65532 with a read-only root file system (an emptyDir
at /tmp is its only writable place), gets the object-storage endpoint as a plain variable and the
credentials only by reference to a Secret, and reports its result through the termination message.
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marina.contract import (
    EXIT_INTERNAL,
    EXIT_PERMANENT,
    MODEL_VERSION_LENGTH,
    EvaluateRequest,
    PrepareRequest,
    TrainRequest,
)
from marina.controller.datasets.spec import DatasetSpec
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments.spec import Autoscaling, ModelDeploymentSpec
from marina.controller.shared.fields import Resources
from marina.controller.trainingjobs.spec import TrainingJobSpec
from marina.jobs.results import RESULT_URI_ENV, result_uri

GROUP = "marina.dev"
API_VERSION = f"{GROUP}/v1alpha1"
MANAGED_BY = "marina-operator"
SERVER_PORT = 8080
SERVICE_PORT = 80
RUN_AS = 65532
TMP_VOLUME = "tmp"
INLINE_VOLUME = "inline-rows"
INLINE_DIR = "/etc/marina/inline"
INLINE_FILE = "rows.json"
MODEL_URI = f"{GROUP}/model-uri"
MODEL_SHA256 = f"{GROUP}/model-sha256"
INPUTS_HASH = f"{GROUP}/inputs-hash"
# One limit whatever the data size (prepare and train are built to hold a bounded chunk of rows, not the
# data); a pod that needs more is reported as OutOfMemory, and `spec.resources` (which replaces these as
# a whole) raises it.
DEFAULT_JOB_RESOURCES: Resources = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "512Mi"},
}
DEFAULT_SERVER_RESOURCES: Resources = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
PRESTOP_SECONDS = 5
TRACK = f"{GROUP}/track"  # on a canary's pods and in its Deployment's selector (the stable's pods have none)
CANARY = "canary"
EXIT_KILLED = 128 + signal.SIGKILL  # 137: the kernel's OOM killer, or a SIGKILL after a grace period
TERMINATION_LOG = "/dev/termination-log"


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns a child (its identity, for names, labels and ownerReferences)."""

    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(body["kind"], meta["name"], meta["namespace"], meta["uid"])

    @property
    def label_key(self) -> str:
        return f"{GROUP}/{self.kind.lower()}"


@dataclass(frozen=True)
class ModelReference:
    """A model artifact by address and digest: what a Deployment serves (not the loaded model itself)."""

    uri: str
    sha256: str

    @property
    def version(self) -> str:
        return self.sha256[:MODEL_VERSION_LENGTH]

    def as_status(self) -> dict[str, str]:
        return {"uri": self.uri, "sha256": self.sha256, "version": self.version}


def short_hash(*parts: Any) -> str:
    """A stable 10-hex-digit digest of JSON-able inputs: changed inputs give a new child name."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def child_name(owner: Owner, role: str, digest: str) -> str:
    return f"{owner.name}-{role}-{digest}"


def labels(owner: Owner, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "marina",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/instance": owner.name,
        owner.label_key: owner.name,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    owner: Owner, name: str, component: str, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner, component),
        "ownerReferences": [owner_reference(owner)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def marina_container(
    settings: Settings,
    args: Sequence[str],
    resources: Resources,
    defaults: Resources,
    extra_mounts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "name": "marina",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["marina"],
        "args": list(args),
        "env": [
            {"name": "MARINA_S3_ENDPOINT", "value": settings.s3_endpoint},
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "envFrom": [{"secretRef": {"name": settings.s3_secret}}],
        "resources": resources or defaults,
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}, *extra_mounts],
    }


def pod_spec(
    containers: list[dict[str, Any]], volumes: Sequence[Mapping[str, Any]] = (), **extra: Any
) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}}, *volumes],
        **extra,
    }


def job(
    owner: Owner,
    name: str,
    component: str,
    container: dict[str, Any],
    *,
    backoff_limit: int,
    deadline_seconds: int,
    digest: str,
    volumes: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    meta = metadata(owner, name, component, {INPUTS_HASH: digest})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": deadline_seconds,
            "podFailurePolicy": pod_failure_policy(),
            "template": {
                "metadata": {"labels": labels(owner, component)},
                "spec": pod_spec([container], volumes, restartPolicy="Never"),
            },
        },
    }


def pod_failure_policy() -> dict[str, Any]:
    """What a failed pod means (see marina.contract). An eviction or preemption (DisruptionTarget) is
    retried without counting, and comes first since it may end in a SIGKILL too. A permanent failure or a
    bug fails the Job at once, since a new pod would fail alike; so does a SIGKILL outside those
    disruptions, which in practice is the OOM killer at the container's limit: the same data at the same
    limit is killed again, so retrying only delays the `OutOfMemory` report. A retryable failure (75)
    counts against backoffLimit, so a short outage is retried in place and a long one fails the Job,
    which the operator replaces after its retry delay."""
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": "marina",
                    "operator": "In",
                    "values": [EXIT_PERMANENT, EXIT_INTERNAL],
                },
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "marina", "operator": "In", "values": [EXIT_KILLED]},
            },
        ]
    }


def progress_uri(prefix: str, job_name: str) -> str:
    """Where a Job's pod reports its progress (marina.jobs.progress), under the resource's own prefix."""
    return f"{prefix}/progress/{job_name}.json"


def storing_result(built: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The Job's command also stores its result document under the resource's prefix, keyed by the Job's
    name (marina.jobs.results), so a finished result outlives the pod. Not for an Indexed Job, whose pods
    would share the key."""
    where = {"name": RESULT_URI_ENV, "value": result_uri(prefix, built["metadata"]["name"])}
    for container in built["spec"]["template"]["spec"]["containers"]:
        container["env"].append(where)
    return built


def prepare_request(
    spec: DatasetSpec, output: str, name: str, rows_file: str | None, progress: str | None = None
) -> PrepareRequest:
    return PrepareRequest(
        source=spec.source,
        output=output,
        name=name,
        target=spec.target,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
        missing=spec.missing,
        max_categories=spec.max_categories,
        features=spec.features,
        rows_file=rows_file,
        progress=progress,
        result_file=TERMINATION_LOG,
    )


def prepare_args(
    spec: DatasetSpec, output: str, name: str, rows_file: str | None, progress: str | None = None
) -> list[str]:
    return prepare_request(spec, output, name, rows_file, progress).to_argv()


def prepare_job(settings: Settings, owner: Owner, spec: DatasetSpec, digest: str) -> dict[str, Any]:
    name = child_name(owner, "prepare", digest)
    output = settings.datasets_prefix(owner.namespace, owner.name)
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    rows_file = None
    if spec.inline_rows is not None:
        rows_file = f"{INLINE_DIR}/{INLINE_FILE}"
        mounts.append({"name": INLINE_VOLUME, "mountPath": INLINE_DIR, "readOnly": True})
        volumes.append({"name": INLINE_VOLUME, "configMap": {"name": name}})
    container = marina_container(
        settings,
        prepare_args(spec, output, owner.name, rows_file, progress_uri(output, name)),
        spec.resources,
        DEFAULT_JOB_RESOURCES,
        mounts,
    )
    built = job(
        owner,
        name,
        "prepare",
        container,
        backoff_limit=2,
        deadline_seconds=1800,
        digest=digest,
        volumes=volumes,
    )
    return storing_result(built, output)


def inline_rows_config_map(owner: Owner, spec: DatasetSpec, digest: str) -> dict[str, Any] | None:
    """The inline rows as a file for the preparation pod (too large for a command-line argument)."""
    if spec.inline_rows is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, child_name(owner, "prepare", digest), "prepare"),
        "data": {INLINE_FILE: spec.inline_rows},
    }


def train_request(
    spec: TrainingJobSpec, data_uri: str, output: str, name: str, sharding: Mapping[str, Any] | None = None
) -> TrainRequest:
    model, search = spec.model, spec.search
    optional: dict[str, Any] = {"tol": model.tol} if model.tol is not None else {}
    optional.update(sharding or {})
    if search is not None:
        optional.update(
            search_alpha=search.alphas, search_l1_ratio=search.l1_ratios or (), folds=search.folds
        )
    return TrainRequest(
        data=data_uri,
        output=output,
        name=name,
        penalty=model.penalty,
        alpha=model.alpha,
        l1_ratio=model.l1_ratio,
        solver=model.solver,
        standardize=model.standardize,
        no_intercept=not model.fit_intercept,
        max_iter=model.max_iter,
        result_file=TERMINATION_LOG,
        **optional,
    )


def train_args(
    spec: TrainingJobSpec, data_uri: str, output: str, name: str, sharding: Mapping[str, Any] | None = None
) -> list[str]:
    return train_request(spec, data_uri, output, name, sharding).to_argv()


def sharding(
    settings: Settings, owner: Owner, spec: TrainingJobSpec, digest: str, phase: str
) -> dict[str, Any]:
    """The `marina train` arguments of one phase of a sharded run; the partials live under the models
    prefix, one folder per run (digest), so the shards of two runs never meet."""
    partials = f"{settings.models_prefix(owner.namespace, owner.name)}/partials/{digest}"
    return {"phase": phase, "shards": spec.parallelism, "partials": partials}


def train_job(
    settings: Settings, owner: Owner, spec: TrainingJobSpec, data_uri: str, digest: str
) -> dict[str, Any]:
    """The training Job: the whole run, or with parallelism the reduce after the shards."""
    output = settings.models_prefix(owner.namespace, owner.name)
    name = child_name(owner, "train", digest)
    phase = sharding(settings, owner, spec, digest, "reduce") if spec.parallelism > 1 else None
    phase = phase or {"progress": progress_uri(output, name)}  # one pod's pass; a reduce reads test only
    return storing_result(_training_job(settings, owner, spec, data_uri, digest, "train", phase), output)


def _training_job(
    settings: Settings,
    owner: Owner,
    spec: TrainingJobSpec,
    data_uri: str,
    digest: str,
    role: str,
    phase: Mapping[str, Any],
) -> dict[str, Any]:
    """A Job running `marina train` for one role (the run or reduce, or the shards) of a TrainingJob."""
    output = settings.models_prefix(owner.namespace, owner.name)
    args = train_args(spec, data_uri, output, owner.name, phase)
    container = marina_container(settings, args, spec.resources, DEFAULT_JOB_RESOURCES)
    return job(
        owner,
        child_name(owner, role, digest),
        role,
        container,
        backoff_limit=spec.backoff_limit,
        deadline_seconds=spec.active_deadline_seconds,
        digest=digest,
    )


def shard_job(
    settings: Settings, owner: Owner, spec: TrainingJobSpec, data_uri: str, digest: str
) -> dict[str, Any]:
    """An Indexed Job of `parallelism` pods, pod i gathering every i-th part's statistics. A failed index
    retries alone (backoffLimitPerIndex); a permanent failure or an OOM kill fails its index at once."""
    output = settings.models_prefix(owner.namespace, owner.name)
    progress = progress_uri(output, child_name(owner, "shard", digest))  # shard i reports beside it
    phase = {**sharding(settings, owner, spec, digest, "shard"), "progress": progress}
    built = _training_job(settings, owner, spec, data_uri, digest, "shard", phase)
    job_spec = built["spec"]
    del job_spec["backoffLimit"]  # per index instead
    job_spec.update(
        {
            "completionMode": "Indexed",
            "completions": spec.parallelism,
            "parallelism": spec.parallelism,
            "backoffLimitPerIndex": spec.backoff_limit,
            "maxFailedIndexes": 0,
        }
    )
    for rule in job_spec["podFailurePolicy"]["rules"]:
        if rule["action"] == "FailJob":
            rule["action"] = "FailIndex"
    return built


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
        result_file=TERMINATION_LOG,
    )
    container = marina_container(settings, request.to_argv(), {}, DEFAULT_JOB_RESOURCES)
    name = child_name(owner, "eval", digest)
    built = job(owner, name, "evaluate", container, backoff_limit=2, deadline_seconds=1800, digest=digest)
    del built["spec"]["template"]["metadata"]["labels"][owner.label_key]
    return storing_result(built, settings.models_prefix(owner.namespace, owner.name))


def selector(owner: Owner) -> dict[str, str]:
    return {owner.label_key: owner.name}


def selector_string(owner: Owner) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(owner).items())


def service_url(owner: Owner) -> str:
    return f"http://{owner.name}.{owner.namespace}.svc.cluster.local:{SERVICE_PORT}"


def server_container(
    settings: Settings, owner: Owner, spec: ModelDeploymentSpec, model: ModelReference
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
    container = marina_container(settings, args, spec.resources, DEFAULT_SERVER_RESOURCES)
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


def deployment(
    settings: Settings, owner: Owner, spec: ModelDeploymentSpec, model: ModelReference
) -> dict[str, Any]:
    """The stable Deployment: the one `spec.replicas` (or the HPA) sizes."""
    replicas = spec.replicas if spec.autoscaling is None else None  # the HPA owns the count then
    return _serving_deployment(settings, owner, spec, model, owner.name, {}, replicas)


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
) -> dict[str, Any]:
    pod_labels = {**labels(owner, "serve"), f"{GROUP}/model-version": model.version, **track}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, name, "serve"),
        "spec": {
            "selector": {"matchLabels": {**selector(owner), **track}},
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "revisionHistoryLimit": 5,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {MODEL_URI: model.uri, MODEL_SHA256: model.sha256},
                },
                "spec": pod_spec(
                    [server_container(settings, owner, spec, model)], terminationGracePeriodSeconds=30
                ),
            },
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def deployed_model(deployment_body: Mapping[str, Any] | None) -> ModelReference | None:
    """The model a Deployment's pod template asks for."""
    if not deployment_body:
        return None
    annotations = deployment_body["spec"]["template"]["metadata"].get("annotations") or {}
    if MODEL_URI not in annotations or MODEL_SHA256 not in annotations:
        return None
    return ModelReference(annotations[MODEL_URI], annotations[MODEL_SHA256])


def service(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, owner.name, "serve"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def horizontal_pod_autoscaler(owner: Owner, autoscaling: Autoscaling) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(owner, owner.name, "serve"),
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
