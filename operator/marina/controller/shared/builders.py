"""What every kind's manifests are built from: names, labels, owner references, the hardened pod and
container every Marina pod runs, and the Job around it. Pure functions returning dicts; each kind's
`manifests` module builds its complete children from these.

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

from marina.contract import API_VERSION, EXIT_INTERNAL, EXIT_PERMANENT, GROUP, MODEL_VERSION_LENGTH
from marina.controller.kube.settings import Settings
from marina.controller.shared.fields import Resources
from marina.jobs.results import RESULT_URI_ENV, result_uri

MANAGED_BY = "marina-operator"
RUN_AS = 65532
TMP_VOLUME = "tmp"
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

    @classmethod
    def of(cls, value: Any) -> ModelReference | None:
        """The model a status field names (`as_status`'s form), if it names one."""
        if isinstance(value, Mapping) and value.get("uri") and value.get("sha256"):
            return cls(str(value["uri"]), str(value["sha256"]))
        return None


def short_hash(*parts: Any) -> str:
    """A stable 10-hex-digit digest of JSON-able inputs: changed inputs give a new child name."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


#: The label naming a child's role (prepare, shard, train, ...): Jobs of one role are found by it.
COMPONENT_LABEL = "app.kubernetes.io/component"


def child_name(owner: Owner, role: str, digest: str) -> str:
    return f"{owner.name}-{role}-{digest}"


def labels(owner: Owner, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "marina",
        COMPONENT_LABEL: component,
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


def selector(owner: Owner) -> dict[str, str]:
    return {owner.label_key: owner.name}


def selector_string(owner: Owner) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(owner).items())


def indexed(built: dict[str, Any], completions: int, backoff_limit: int) -> dict[str, Any]:
    """A Job made an Indexed Job of `completions` pods (pod i has $JOB_COMPLETION_INDEX i). A failed index
    retries alone (backoffLimitPerIndex); a permanent failure or an OOM kill fails its index at once."""
    job_spec = built["spec"]
    del job_spec["backoffLimit"]  # per index instead
    job_spec.update(
        {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": completions,
            "backoffLimitPerIndex": backoff_limit,
            "maxFailedIndexes": 0,
        }
    )
    for rule in job_spec["podFailurePolicy"]["rules"]:
        if rule["action"] == "FailJob":
            rule["action"] = "FailIndex"
    pods = job_spec["template"]["spec"]
    pods["topologySpreadConstraints"] = [
        spread_pods(job_spec["template"]["metadata"]["labels"], JOB_NAME_LABEL)
    ]
    return built


#: Set by the Job controller on its pods; one Job's pods are told apart from another's by it.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def spread_pods(labels: Mapping[str, str], per: str) -> dict[str, Any]:
    """Pods that share `labels` and the value of the label `per` spread over nodes, preferably (one node
    may still hold them all: ScheduleAnyway): parallel pods then add up the nodes' CPU and memory, and a
    node lost or drained takes a share of them, not all."""
    return {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": dict(labels)},
        "matchLabelKeys": [per],
    }
