"""Operator settings, read once from the environment so the Deployment manifest configures them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_S3_ENDPOINT = "http://minio.marina-system.svc.cluster.local:9000"


@dataclass(frozen=True)
class Settings:
    """Everything the operator needs to know about its environment (no credentials: only names)."""

    image: str = "marina:dev"
    image_pull_policy: str = "IfNotPresent"
    s3_endpoint: str = DEFAULT_S3_ENDPOINT
    s3_secret: str = "marina-s3-credentials"
    s3_bucket: str = "marina"
    # Check that object storage accepts TCP connections before starting Jobs (off when the
    # operator runs outside the cluster and cannot resolve in-cluster names).
    probe_storage: bool = True
    retry_delay_seconds: float = 10.0
    namespaces: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        values = os.environ if env is None else env
        defaults = cls()
        namespaces = tuple(n.strip() for n in values.get("MARINA_NAMESPACES", "").split(",") if n.strip())
        return cls(
            image=values.get("MARINA_IMAGE", defaults.image),
            image_pull_policy=values.get("MARINA_IMAGE_PULL_POLICY", defaults.image_pull_policy),
            s3_endpoint=values.get("MARINA_S3_ENDPOINT", defaults.s3_endpoint),
            s3_secret=values.get("MARINA_S3_SECRET", defaults.s3_secret),
            s3_bucket=values.get("MARINA_S3_BUCKET", defaults.s3_bucket),
            probe_storage=values.get("MARINA_PROBE_STORAGE", "true").strip().lower()
            not in ("0", "false", "no"),
            retry_delay_seconds=float(values.get("MARINA_RETRY_DELAY_SECONDS", defaults.retry_delay_seconds)),
            namespaces=namespaces,
        )

    def datasets_prefix(self, namespace: str, name: str) -> str:
        return f"s3://{self.s3_bucket}/datasets/{namespace}/{name}"

    def models_prefix(self, namespace: str, name: str) -> str:
        return f"s3://{self.s3_bucket}/models/{namespace}/{name}"
