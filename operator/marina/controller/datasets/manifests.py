"""A Dataset's children: the preparation Job (`marina prepare`), or an Indexed Job of shards and a reduce,
and the ConfigMap holding inline rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina.contract import PrepareRequest
from marina.controller.datasets.spec import DatasetSpec
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders, partials
from marina.controller.shared.builders import Owner

INLINE_VOLUME = "inline-rows"
INLINE_DIR = "/etc/marina/inline"
INLINE_FILE = "rows.json"


BACKOFF_LIMIT = 2  # retries of the preparation pod (of each shard's pod with parallelism)
DEADLINE_SECONDS = 1800


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
    phase: Mapping[str, Any] | None = None,
    served: ServedPrefixes | None = None,
) -> PrepareRequest:
    """`marina prepare` for the Dataset: with `phase` (`sharding`, and where to report progress), one phase
    of a sharded run."""
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
        result_file=builders.TERMINATION_LOG,
        **(phase or {}),
    )


def sharding(settings: Settings, owner: Owner, spec: DatasetSpec, digest: str, phase: str) -> dict[str, Any]:
    """The `marina prepare` arguments of one phase of a sharded run; the partial results live under the
    Dataset's prefix, one folder per input (digest), so the shards of two runs never meet."""
    folder = partials.folder(settings.datasets_prefix(owner.namespace, owner.name), digest)
    return {"phase": phase, "shards": spec.parallelism, "partials": folder}


def prepare_job(settings: Settings, owner: Owner, spec: DatasetSpec, digest: str) -> dict[str, Any]:
    """The preparation Job: the whole run, or with parallelism the reduce after the shards."""
    output = settings.datasets_prefix(owner.namespace, owner.name)
    name = builders.child_name(owner, "prepare", digest)
    if spec.parallelism > 1:
        phase = sharding(settings, owner, spec, digest, "reduce")
    else:
        phase = {"progress": builders.progress_uri(output, name)}
    return builders.storing_result(_preparing_job(settings, owner, spec, digest, "prepare", phase), output)


def shard_job(settings: Settings, owner: Owner, spec: DatasetSpec, digest: str) -> dict[str, Any]:
    """An Indexed Job of `parallelism` pods, pod i reading its share of the source into parts and a partial
    result; each reports its progress beside the Job's own progress object."""
    output = settings.datasets_prefix(owner.namespace, owner.name)
    progress = builders.progress_uri(output, builders.child_name(owner, "shard", digest))
    phase = {**sharding(settings, owner, spec, digest, "shard"), "progress": progress}
    return builders.indexed(
        _preparing_job(settings, owner, spec, digest, "shard", phase), spec.parallelism, BACKOFF_LIMIT
    )


def _preparing_job(
    settings: Settings, owner: Owner, spec: DatasetSpec, digest: str, role: str, phase: Mapping[str, Any]
) -> dict[str, Any]:
    """A Job running `marina prepare` for one role of a Dataset (the run or reduce, or the shards); the
    inline rows, when the source has them, come from the ConfigMap named after the preparation Job."""
    output = settings.datasets_prefix(owner.namespace, owner.name)
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    rows_file = None
    if spec.inline_rows is not None:
        rows_file = f"{INLINE_DIR}/{INLINE_FILE}"
        mounts.append({"name": INLINE_VOLUME, "mountPath": INLINE_DIR, "readOnly": True})
        volumes.append({"name": INLINE_VOLUME, "configMap": {"name": inline_name(owner, digest)}})
    container = builders.marina_container(
        settings,
        prepare_request(
            spec, output, owner.name, rows_file, phase, ServedPrefixes.of(settings, owner.namespace, spec)
        ).to_argv(),
        spec.resources,
        builders.DEFAULT_JOB_RESOURCES,
        mounts,
    )
    return builders.job(
        owner,
        builders.child_name(owner, role, digest),
        role,
        container,
        backoff_limit=BACKOFF_LIMIT,
        deadline_seconds=DEADLINE_SECONDS,
        digest=digest,
        volumes=volumes,
    )


def inline_name(owner: Owner, digest: str) -> str:
    return builders.child_name(owner, "prepare", digest)


def inline_rows_config_map(owner: Owner, spec: DatasetSpec, digest: str) -> dict[str, Any] | None:
    """The inline rows as a file for the preparation pod (too large for a command-line argument)."""
    if spec.inline_rows is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": builders.metadata(owner, inline_name(owner, digest), "prepare"),
        "data": {INLINE_FILE: spec.inline_rows},
    }
