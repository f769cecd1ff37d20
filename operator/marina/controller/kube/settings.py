"""Operator settings, read once from the environment so the Deployment manifest configures them.

They also say where each namespace's objects live in the bucket, so the layout is written once:

    s3://<bucket>/raw/<namespace>/...       what users upload (a Dataset's `source.csv.uri`; the truth
                                            for a ModelDeployment's served rows under feedback/<name>/)
    s3://<bucket>/datasets/<namespace>/...  prepared versions (Dataset output; also a valid CSV source)
    s3://<bucket>/models/<namespace>/...    model artifacts (TrainingJob output, `model.uri`)
    s3://<bucket>/predictions/<namespace>/... batch scores (BatchPrediction output)
    s3://<bucket>/logs/<namespace>/...      a ModelDeployment's payload logs and feedback (spec.logging)

A resource only reads from its own namespace's areas, and from the prefixes a cluster admin shares
with every namespace (`MARINA_SHARED_PREFIXES`, comma-separated s3:// prefixes; none by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from marina.controller.kube import paths
from marina.data import served

DEFAULT_S3_ENDPOINT = "http://minio.marina-system.svc.cluster.local:9000"
UPLOADS, DATASETS, MODELS, PREDICTIONS, LOGS = "raw", "datasets", "models", "predictions", "logs"


@dataclass(frozen=True)
class Settings:
    """Everything the operator needs to know about its environment (no credentials: only names)."""

    image: str = "marina.local/marina:dev"
    image_pull_policy: str = "IfNotPresent"
    s3_endpoint: str = DEFAULT_S3_ENDPOINT
    s3_secret: str = "marina-s3-credentials"
    s3_bucket: str = "marina"
    # Check that object storage accepts TCP connections before starting Jobs (off when the
    # operator runs outside the cluster and cannot resolve in-cluster names).
    probe_storage: bool = True
    retry_delay_seconds: float = 10.0
    # Objects still in progress are reconciled again this often, in case a pod is stuck without any event.
    recheck_seconds: float = 20.0
    # Every Kubernetes API call gives up after this long (seconds: connecting, then reading the answer),
    # so a silent API server or a lost connection cannot hold a worker thread forever.
    api_connect_timeout_seconds: float = 10.0
    api_timeout_seconds: float = 30.0
    # The liveness probe fails once no worker thread was free, or one reconcile ran, for this long.
    stall_seconds: float = 300.0
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    shared_prefixes: tuple[str, ...] = field(default_factory=tuple)  # readable by every namespace

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        values = os.environ if env is None else env
        defaults = cls()
        namespaces = tuple(n.strip() for n in values.get("MARINA_NAMESPACES", "").split(",") if n.strip())
        shared = paths.shared_prefixes(values.get("MARINA_SHARED_PREFIXES", ""))
        return cls(
            image=values.get("MARINA_IMAGE", defaults.image),
            image_pull_policy=values.get("MARINA_IMAGE_PULL_POLICY", defaults.image_pull_policy),
            s3_endpoint=values.get("MARINA_S3_ENDPOINT", defaults.s3_endpoint),
            s3_secret=values.get("MARINA_S3_SECRET", defaults.s3_secret),
            s3_bucket=values.get("MARINA_S3_BUCKET", defaults.s3_bucket),
            probe_storage=values.get("MARINA_PROBE_STORAGE", "true").strip().lower()
            not in ("0", "false", "no"),
            retry_delay_seconds=float(values.get("MARINA_RETRY_DELAY_SECONDS", defaults.retry_delay_seconds)),
            recheck_seconds=float(values.get("MARINA_RECHECK_SECONDS", defaults.recheck_seconds)),
            api_connect_timeout_seconds=float(
                values.get("MARINA_API_CONNECT_TIMEOUT_SECONDS", defaults.api_connect_timeout_seconds)
            ),
            api_timeout_seconds=float(values.get("MARINA_API_TIMEOUT_SECONDS", defaults.api_timeout_seconds)),
            stall_seconds=float(values.get("MARINA_STALL_SECONDS", defaults.stall_seconds)),
            namespaces=namespaces,
            shared_prefixes=shared,
        )

    @property
    def api_timeout(self) -> tuple[float, float]:
        """(connect, read) seconds, as the kubernetes client's `_request_timeout` takes them."""
        return (self.api_connect_timeout_seconds, self.api_timeout_seconds)

    def area(self, purpose: str, namespace: str) -> str:
        """The namespace's folder for one purpose (UPLOADS, DATASETS or MODELS), ending in `/`."""
        return f"s3://{self.s3_bucket}/{purpose}/{namespace}/"

    def datasets_prefix(self, namespace: str, name: str) -> str:
        return f"{self.area(DATASETS, namespace)}{name}"

    def models_prefix(self, namespace: str, name: str) -> str:
        return f"{self.area(MODELS, namespace)}{name}"

    def logs_prefix(self, namespace: str, name: str) -> str:
        """A ModelDeployment's payload logs and feedback, ending in `/`."""
        return f"{self.area(LOGS, namespace)}{name}/"

    def feedback_uploads_prefix(self, namespace: str, name: str) -> str:
        """Where a team uploads the truth for a ModelDeployment's served rows (CSV or Parquet files of id,
        target and optionally row; `marina.data.served`), ending in `/`."""
        return f"{self.area(UPLOADS, namespace)}{served.UPLOADS_FOLDER}/{name}/"

    def csv_areas(self, namespace: str) -> tuple[str, ...]:
        """Where a Dataset of `namespace` may read a CSV."""
        return (self.area(UPLOADS, namespace), self.area(DATASETS, namespace), *self.shared_prefixes)

    def model_areas(self, namespace: str) -> tuple[str, ...]:
        """Where a ModelDeployment of `namespace` may load a model."""
        return (self.area(MODELS, namespace), *self.shared_prefixes)
