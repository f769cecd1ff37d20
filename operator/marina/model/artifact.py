"""Model artifacts: versioned JSON, addressed by sha256, verified before use. Never pickle.

A model is data (coefficients, intercept, feature names, lineage), so it survives library
upgrades and can be read by any language. Coefficients are in the original feature units:
standardisation used while fitting is folded back before the artifact is written.

Format v2 (`marina.dev/linear-model/v2`) adds the `answers` section (`marina.model.answers`): the
training means, the design's factor, the residual variance or the calibration residuals and the
guard's reference, which explanations, prediction intervals and the extrapolation guard read. Format
v1 artifacts still load and serve, with the same canonical bytes and sha256 as before: a field they
lack is left out of the bytes, never written as empty.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from marina import storage
from marina.contract import FailureKind, JobError
from marina.data import encoding
from marina.data.distribution import Reference
from marina.model.answers import AnswerError, Record

FORMAT = "marina.dev/linear-model/v2"
FORMAT_V1 = "marina.dev/linear-model/v1"
FORMATS = (FORMAT, FORMAT_V1)


class ArtifactError(JobError):
    """An artifact is malformed, or its content does not match the expected sha256: stored data gone bad."""

    kind = FailureKind.DATA


@dataclass(frozen=True)
class ModelArtifact:
    coefficients: list[float]
    intercept: float
    feature_names: list[str]
    target: str = "target"
    metrics: dict[str, float] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    scaling: dict[str, list[float]] | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    feature_statistics: dict[str, Any] = field(default_factory=dict)
    # The training split's quantile histograms (marina.data.distribution): what serving compares against.
    reference: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    created: str = ""
    format: str = FORMAT
    # The raw columns a caller sends (marina.data.encoding); empty: every feature name is a number input.
    inputs: list[dict[str, Any]] = field(default_factory=list)
    # Format v2: what explanations, intervals and the guard need (`marina.model.answers.Record`).
    answers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            expected = " or ".join(map(repr, FORMATS))
            raise ArtifactError(f"format: unsupported artifact format {self.format!r}, expected {expected}")
        if self.answers and self.format == FORMAT_V1:
            raise ArtifactError(f"answers: a {FORMAT_V1!r} artifact has no answers section")
        if len(self.coefficients) != len(self.feature_names):
            raise ArtifactError(
                f"coefficients: {len(self.coefficients)} values for {len(self.feature_names)} feature_names"
            )
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ArtifactError("feature_names: names must be unique")
        values = [*self.coefficients, self.intercept]
        if not all(_is_finite_number(v) for v in values):
            raise ArtifactError("coefficients: every coefficient and the intercept must be a finite number")
        if self.inputs:
            self._check_inputs()
        if self.reference:
            self.reference_distribution()  # refuses a malformed one now, not when serving starts
        if self.answers:
            self.answers_record()

    def _check_inputs(self) -> None:
        """The inputs must expand to exactly feature_names, or serving would misplace coefficients."""
        try:
            expanded = encoding.expand(self.inputs)
        except encoding.InputsError as exc:
            raise ArtifactError(str(exc)) from exc
        if expanded != self.feature_names:
            raise ArtifactError(
                f"inputs: expand to {_first_difference(expanded, self.feature_names)}; "
                "they must expand to feature_names in order"
            )

    def reference_distribution(self) -> Reference | None:
        """The reference histograms, or None for artifacts written before Marina recorded them."""
        if not self.reference:
            return None
        try:
            return Reference.from_dict(self.reference, self.feature_names)
        except ValueError as exc:
            raise ArtifactError(str(exc)) from exc

    def answers_record(self) -> Record | None:
        """The answers section, or None for artifacts written before Marina recorded it."""
        if not self.answers:
            return None
        try:
            return Record.from_dict(self.answers, self.n_features)
        except AnswerError as exc:
            raise ArtifactError(str(exc)) from exc

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def to_json(self) -> bytes:
        """Canonical bytes: the same model always hashes to the same sha256.

        Empty inputs and answers are left out, so a numbers-only model keeps the bytes (and sha256) it
        had before inputs existed, and a v1 artifact the bytes it was written with.
        """
        # the fields as they are (JSON values all): dataclasses.asdict would deep-copy every list and dict
        # first, 0.2 s for a 100-feature model's reference histograms and calibration residuals
        document = {item.name: getattr(self, item.name) for item in fields(self)}
        for optional in ("inputs", "answers"):
            if not document[optional]:
                del document[optional]
        return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes) -> ModelArtifact:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"artifact is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ArtifactError("artifact must be a JSON object")
        missing = [k for k in ("format", "coefficients", "intercept", "feature_names") if k not in raw]
        if missing:
            raise ArtifactError(f"artifact is missing required fields: {', '.join(missing)}")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError as exc:
            raise ArtifactError(f"artifact has fields of the wrong type: {exc}") from exc

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Vectorised prediction for a (rows, n_features) matrix."""
        coef = np.asarray(self.coefficients, dtype=np.float64)
        return np.asarray(features, dtype=np.float64) @ coef + self.intercept


def _is_finite_number(value: object) -> bool:
    """JSON numbers only: a boolean is not a coefficient, and neither is NaN or infinity."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _first_difference(expanded: list[str], feature_names: list[str]) -> str:
    """Where the expansion and feature_names part ways, for an error a person can act on."""
    for i, (got, want) in enumerate(zip(expanded, feature_names, strict=False)):
        if got != want:
            return f"{got!r} at position {i} where feature_names has {want!r}"
    return f"{len(expanded)} names for {len(feature_names)} feature_names"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected_sha256: str | None, source: str) -> None:
    if expected_sha256 is None:
        return
    actual = sha256_of(data)
    expected = expected_sha256.lower()
    if actual != expected:
        raise ArtifactError(
            f"sha256 mismatch for {source}: expected {expected}, got {actual}; refusing to use it"
        )


def load(uri: str, expected_sha256: str | None = None) -> ModelArtifact:
    """Read an artifact from a path or s3:// URI, verifying its sha256 when one is given."""
    data = storage.read_bytes(uri)
    verify(data, expected_sha256, uri)
    return ModelArtifact.from_json(data)


def save(model: ModelArtifact, output: str) -> tuple[str, str]:
    """Write under `output` at a content-addressed name; returns (uri, sha256)."""
    data = model.to_json()
    digest = sha256_of(data)
    uri = storage.join(output, f"model-{digest}.json")
    storage.write_bytes(uri, data, "application/json")
    return uri, digest
