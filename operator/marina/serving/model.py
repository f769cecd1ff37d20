"""The served model: an artifact turned into contiguous numpy arrays once, at start-up.

The model knows nothing about HTTP or protocols; it predicts on a (rows, n_features) matrix in
the artifact's feature order and describes itself for metadata endpoints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marina.contract import MODEL_VERSION_LENGTH
from marina.data.distribution import Reference
from marina.data.encoding import Inputs
from marina.model.artifact import ModelArtifact

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
PLATFORM = "marina_linear"
OUTPUT_NAME = "predict"
TRAINING_STATISTICS = ("mean", "std", "min", "max")


def is_valid_name(name: str) -> bool:
    """Names appear in URL paths (`/v2/models/<m>`, `/v1/models/<m>:predict`): no `/`, `:` or spaces."""
    return bool(NAME_PATTERN.match(name))


def default_name(artifact: ModelArtifact) -> str:
    """The artifact's dataset name when it is usable in a URL path, else `model`."""
    dataset_name = artifact.dataset.get("name")
    if isinstance(dataset_name, str) and is_valid_name(dataset_name):
        return dataset_name
    return "model"


def training_statistics(raw: Mapping[str, Any], feature_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """The training split's finite mean/std/min/max per feature, as the artifact records them.

    Exported next to the serving statistics so drift is one PromQL expression away; anything
    missing or malformed is skipped rather than refusing a model that predicts fine.
    """
    result: dict[str, dict[str, float]] = {}
    for name in feature_names:
        stats = raw.get(name)
        if not isinstance(stats, Mapping):
            continue
        numbers = {
            key: float(value)
            for key, value in stats.items()
            if key in TRAINING_STATISTICS
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        }
        if numbers:
            result[name] = numbers
    return result


def _categorical_inputs(artifact: ModelArtifact) -> Inputs | None:
    inputs = Inputs.of(artifact)
    return inputs if inputs.has_categories else None


@dataclass(frozen=True)
class ServedModel:
    name: str
    sha256: str
    feature_names: tuple[str, ...]
    coefficients: np.ndarray
    intercept: float
    source: str
    training_statistics: dict[str, dict[str, float]] = field(default_factory=dict)
    reference: Reference | None = None  # the training split's histograms; None in older artifacts
    inputs: Inputs | None = None  # raw inputs with categories among them; None: numbers only

    @classmethod
    def from_artifact(cls, artifact: ModelArtifact, name: str, source: str) -> ServedModel:
        coefficients = np.ascontiguousarray(artifact.coefficients, dtype=np.float64)
        coefficients.setflags(write=False)
        return cls(
            name,
            artifact.sha256,
            tuple(artifact.feature_names),
            coefficients,
            float(artifact.intercept),
            source,
            training_statistics(artifact.feature_statistics, artifact.feature_names),
            artifact.reference_distribution(),
            _categorical_inputs(artifact),
        )

    @property
    def version(self) -> str:
        """A short content address: the same model always has the same version."""
        return self.sha256[:MODEL_VERSION_LENGTH]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def raw_inputs(self) -> Inputs:
        return self.inputs if self.inputs is not None else Inputs.numbers(self.feature_names)

    @property
    def has_categories(self) -> bool:
        """Whether requests carry raw inputs (strings among them) rather than the feature matrix.

        Asked on every request, so it is one comparison.
        """
        return self.inputs is not None

    def has_version(self, version: str) -> bool:
        return version in (self.version, self.sha256)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Vectorised: the same products and sums as `ModelArtifact.predict` (tests check equality).

        `dot` rather than `@`: the same BLAS call for 2-D by 1-D, with less overhead per call.
        """
        predictions: np.ndarray = features.dot(self.coefficients) + self.intercept
        return predictions

    def v2_metadata(self) -> dict[str, Any]:
        """One FP64 matrix input, or with categories one tensor per raw input (BYTES for categories)."""
        parameters: dict[str, Any] = {"feature_names": list(self.feature_names), "sha256": self.sha256}
        if self.has_categories:
            inputs = [
                {"name": item.name, "datatype": "BYTES" if item.is_category else "FP64", "shape": [-1]}
                for item in self.raw_inputs.items
            ]
            parameters["inputs"] = self.raw_inputs.to_list()
        else:
            inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, self.n_features]}]
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": inputs,
            "outputs": [{"name": OUTPUT_NAME, "datatype": "FP64", "shape": [-1]}],
            "parameters": parameters,
        }
