"""A BatchPrediction's spec: which model, which rows, what to write where, in how many pods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marina.contract import BATCH_PREDICTION
from marina.controller.shared.fields import Fields, InvalidSpec, Resources

MODEL_KINDS = ("trainingJob", "modelDeployment", "uri")
SOURCE_KINDS = ("dataset", "csv", "parquet")


@dataclass(frozen=True)
class ModelChoice:
    """Exactly one of: a TrainingJob's latest model, a ModelDeployment's serving model, an artifact."""

    training_job: str | None = None
    model_deployment: str | None = None
    uri: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class SourceChoice:
    """Exactly one of: a Dataset's split (its latest or a pinned version), a CSV or Parquet object/prefix."""

    dataset: str | None = None
    split: str = "test"
    version: str | None = None
    uri: str | None = None
    kind: str = "dataset"

    @property
    def uri_field(self) -> str:
        return f"spec.source.{self.kind}.uri"


@dataclass(frozen=True)
class BatchPredictionSpec:
    model: ModelChoice
    source: SourceChoice
    outputs: tuple[str, ...]
    level: float
    passthrough: tuple[str, ...]
    output_uri: str | None  # None: the namespace's predictions area, under the resource's name
    resources: Resources
    backoff_limit: int
    active_deadline_seconds: int
    # How the work is shared does not change the scores: out of repr, so out of the run's digest.
    parallelism: int = field(default=1, repr=False)


def parse(spec: Mapping[str, Any] | None) -> BatchPredictionSpec:
    fields = Fields(spec, BATCH_PREDICTION.spec)
    outputs = fields.strings("outputs")
    if outputs is None:
        outputs = tuple(BATCH_PREDICTION.default("spec.outputs"))
    for index, name in enumerate(outputs):
        problem = BATCH_PREDICTION.string("spec.outputs[]").problem(name)
        if problem:
            raise InvalidSpec(f"{fields.where('outputs')}[{index}]", problem)
    output = fields.section("output").string("uri") if fields.has("output") else None
    if output is not None and not output.endswith("/"):
        raise InvalidSpec("spec.output.uri", f"must be a prefix ending in '/', got {output!r}")
    return BatchPredictionSpec(
        model=_model(fields.section("model")),
        source=_source(fields.section("source")),
        outputs=outputs,
        level=fields.number("level"),
        passthrough=fields.strings("passthrough") or (),
        output_uri=output,
        resources=fields.resources(),
        backoff_limit=fields.integer("backoffLimit"),
        active_deadline_seconds=fields.integer("activeDeadlineSeconds"),
        parallelism=fields.integer("parallelism"),
    )


def _exactly_one(section: Fields, kinds: tuple[str, ...]) -> str:
    given = [kind for kind in kinds if section.has(kind)]
    if len(given) != 1:
        raise InvalidSpec(section.path, f"set exactly one of {', '.join(kinds)} (got {given or 'none'})")
    return given[0]


def _model(model: Fields) -> ModelChoice:
    kind = _exactly_one(model, MODEL_KINDS)
    if kind != "uri":
        if model.has("sha256"):
            raise InvalidSpec(model.where("sha256"), "goes with uri")
        name = model.required_string(kind)
        return ModelChoice(
            **({"training_job": name} if kind == "trainingJob" else {"model_deployment": name})
        )
    return ModelChoice(uri=model.required_string("uri"), sha256=model.required_string("sha256"))


def _source(source: Fields) -> SourceChoice:
    kind = _exactly_one(source, SOURCE_KINDS)
    section = source.section(kind)
    if kind == "dataset":
        return SourceChoice(
            dataset=section.required_string("name"),
            split=section.required_string("split"),
            version=section.string("version"),
        )
    return SourceChoice(uri=section.required_string("uri"), kind=kind)
