"""A TrainingJob's children: the training Job (`marina train`), or an Indexed Job of shards and a reduce."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marina.contract import TrainRequest
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders, partials
from marina.controller.shared.builders import Owner
from marina.controller.trainingjobs.spec import TrainingJobSpec


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
        result_file=builders.TERMINATION_LOG,
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
    folder = partials.folder(settings.models_prefix(owner.namespace, owner.name), digest)
    return {"phase": phase, "shards": spec.parallelism, "partials": folder}


def train_job(
    settings: Settings, owner: Owner, spec: TrainingJobSpec, data_uri: str, digest: str
) -> dict[str, Any]:
    """The training Job: the whole run, or with parallelism the reduce after the shards."""
    output = settings.models_prefix(owner.namespace, owner.name)
    name = builders.child_name(owner, "train", digest)
    phase = sharding(settings, owner, spec, digest, "reduce") if spec.parallelism > 1 else None
    phase = phase or {
        "progress": builders.progress_uri(output, name)
    }  # one pod's pass; a reduce reads test only
    return builders.storing_result(
        _training_job(settings, owner, spec, data_uri, digest, "train", phase), output
    )


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
    container = builders.marina_container(settings, args, spec.resources, builders.DEFAULT_JOB_RESOURCES)
    return builders.job(
        owner,
        builders.child_name(owner, role, digest),
        role,
        container,
        backoff_limit=spec.backoff_limit,
        deadline_seconds=spec.active_deadline_seconds,
        digest=digest,
    )


def shard_job(
    settings: Settings, owner: Owner, spec: TrainingJobSpec, data_uri: str, digest: str
) -> dict[str, Any]:
    """An Indexed Job of `parallelism` pods, pod i gathering every i-th part's statistics."""
    output = settings.models_prefix(owner.namespace, owner.name)
    progress = builders.progress_uri(
        output, builders.child_name(owner, "shard", digest)
    )  # shard i reports beside it
    phase = {**sharding(settings, owner, spec, digest, "shard"), "progress": progress}
    built = _training_job(settings, owner, spec, data_uri, digest, "shard", phase)
    return builders.indexed(built, spec.parallelism, spec.backoff_limit)
