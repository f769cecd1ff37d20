"""A Dataset's children: the preparation Job (`marina prepare`) and the ConfigMap holding inline rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marina.contract import PrepareRequest
from marina.controller.datasets.spec import DatasetSpec
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders
from marina.controller.shared.builders import Owner

INLINE_VOLUME = "inline-rows"
INLINE_DIR = "/etc/marina/inline"
INLINE_FILE = "rows.json"


@dataclass(frozen=True)
class ServedPrefixes:
    """Where the served rows of spec.source.servedLogs are: the ModelDeployment's logs, and the truth files
    uploaded for it (both in the Dataset's own namespace, read with its identity)."""

    logs: str
    uploads: str

    @classmethod
    def of(cls, settings: Settings, namespace: str, spec: DatasetSpec) -> ServedPrefixes | None:
        if spec.served is None:
            return None
        name = spec.served.model_deployment
        return cls(settings.logs_prefix(namespace, name), settings.feedback_uploads_prefix(namespace, name))


def prepare_request(
    spec: DatasetSpec,
    output: str,
    name: str,
    rows_file: str | None,
    progress: str | None = None,
    served: ServedPrefixes | None = None,
) -> PrepareRequest:
    window = spec.served if served is not None else None
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
        served_logs=served.logs if served is not None else None,
        served_uploads=served.uploads if served is not None else None,
        served_window_hours=window.window_hours if window is not None else None,
        served_label_delay_hours=window.label_delay_hours if window is not None else None,
        served_max_rows=window.max_rows if window is not None else None,
        progress=progress,
        result_file=builders.TERMINATION_LOG,
    )


def prepare_job(settings: Settings, owner: Owner, spec: DatasetSpec, digest: str) -> dict[str, Any]:
    name = builders.child_name(owner, "prepare", digest)
    output = settings.datasets_prefix(owner.namespace, owner.name)
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    rows_file = None
    if spec.inline_rows is not None:
        rows_file = f"{INLINE_DIR}/{INLINE_FILE}"
        mounts.append({"name": INLINE_VOLUME, "mountPath": INLINE_DIR, "readOnly": True})
        volumes.append({"name": INLINE_VOLUME, "configMap": {"name": name}})
    container = builders.marina_container(
        settings,
        prepare_request(
            spec,
            output,
            owner.name,
            rows_file,
            builders.progress_uri(output, name),
            ServedPrefixes.of(settings, owner.namespace, spec),
        ).to_argv(),
        spec.resources,
        builders.DEFAULT_JOB_RESOURCES,
        mounts,
    )
    built = builders.job(
        owner,
        name,
        "prepare",
        container,
        backoff_limit=2,
        deadline_seconds=1800,
        digest=digest,
        volumes=volumes,
    )
    return builders.storing_result(built, output)


def inline_rows_config_map(owner: Owner, spec: DatasetSpec, digest: str) -> dict[str, Any] | None:
    """The inline rows as a file for the preparation pod (too large for a command-line argument)."""
    if spec.inline_rows is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": builders.metadata(owner, builders.child_name(owner, "prepare", digest), "prepare"),
        "data": {INLINE_FILE: spec.inline_rows},
    }
