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

from marina.contract import ANSWER_OUTPUTS, MODEL_VERSION_LENGTH
from marina.data.distribution import Reference
from marina.data.encoding import Inputs
from marina.model.answers import DEFAULT_LEVEL, Answers
from marina.model.artifact import ModelArtifact
from marina.serving import jsoncodec

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
PLATFORM = "marina_linear"
OUTPUT_NAME = "predict"
CONTRIBUTION, LOWER, UPPER, EXTRAPOLATION = "contribution", "lower", "upper", "extrapolation"
#: Every output a model may answer with, in the order metadata lists them.
OUTPUTS = ANSWER_OUTPUTS  # (predict, contribution, lower, upper, extrapolation), the contract's
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
    answers: Answers | None = None  # explanations, intervals and the guard (None: predictions only)
    # Set once by __post_init__: the fixed bytes of a one-row JSON answer naming outputs (the head, and
    # each output up to its data), and the writers of such answers per kind of request (serving.outputs
    # fills it, bounded)
    json_head: bytes = field(init=False, repr=False, compare=False)
    json_prefixes: dict[str, bytes] = field(init=False, repr=False, compare=False)
    one_row_writers: dict[Any, Any] = field(init=False, repr=False, compare=False)
    intercept_array: np.ndarray = field(init=False, repr=False, compare=False)  # 0-d, for `predict`
    parsed_outputs: dict[Any, Any] = field(init=False, repr=False, compare=False)  # serving.protocol's

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
            Answers(artifact),
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

        `dot` rather than `@`: the same BLAS call for 2-D by 1-D, with less overhead per call; the intercept
        added as a 0-d array, the same addition without converting a Python float on every call (0.3 us).
        """
        predictions: np.ndarray = features.dot(self.coefficients) + self.intercept_array
        return predictions

    def __post_init__(self) -> None:
        """What outputs the model can give is asked on every request naming some: decided once here."""
        answers = self.answers
        missing: dict[str, str] = {}
        if answers is None or not answers.explains:
            missing[CONTRIBUTION] = (
                "the model was trained before Marina recorded every feature's training mean"
            )
        if answers is None or answers.record is None:
            reason = "the model was trained before Marina recorded what intervals need (artifact format v1)"
            missing[LOWER] = missing[UPPER] = reason
        if answers is None:
            missing[EXTRAPOLATION] = "the model has no training statistics"
        object.__setattr__(self, "_missing", missing)
        object.__setattr__(self, "_outputs", tuple(name for name in OUTPUTS if name not in missing))
        head = jsoncodec.dumps({"model_name": self.name, "model_version": self.version})[:-1]
        shapes = {CONTRIBUTION: [1, len(self.raw_inputs.items)], EXTRAPOLATION: [1]}
        prefixes = {
            name: jsoncodec.dumps(
                {
                    "name": name,
                    "datatype": "BYTES" if name == EXTRAPOLATION else "FP64",
                    "shape": shapes.get(name, [1]),
                }
            )[:-1]
            + b',"data":'
            for name in OUTPUTS
        }
        object.__setattr__(self, "json_head", head)
        object.__setattr__(self, "json_prefixes", prefixes)
        object.__setattr__(self, "one_row_writers", {})
        object.__setattr__(self, "intercept_array", np.array(self.intercept, dtype=np.float64))
        object.__setattr__(self, "parsed_outputs", {})

    def unavailable(self) -> dict[str, str]:
        """The outputs this model cannot answer, and why."""
        missing: dict[str, str] = self.__dict__["_missing"]
        return missing

    @property
    def outputs(self) -> tuple[str, ...]:
        """The outputs this model answers with, in metadata order."""
        outputs: tuple[str, ...] = self.__dict__["_outputs"]
        return outputs

    def v2_metadata(self) -> dict[str, Any]:
        """One FP64 matrix input, or with categories one tensor per raw input (BYTES for categories); the
        outputs the model can answer with, and in `parameters` what they mean."""
        parameters: dict[str, Any] = {"feature_names": list(self.feature_names), "sha256": self.sha256}
        if self.has_categories:
            inputs = [
                {"name": item.name, "datatype": "BYTES" if item.is_category else "FP64", "shape": [-1]}
                for item in self.raw_inputs.items
            ]
            parameters["inputs"] = self.raw_inputs.to_list()
        else:
            inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, self.n_features]}]
        shapes = {
            OUTPUT_NAME: ("FP64", [-1]),
            CONTRIBUTION: ("FP64", [-1, len(self.raw_inputs.items)]),
            LOWER: ("FP64", [-1]),
            UPPER: ("FP64", [-1]),
            EXTRAPOLATION: ("BYTES", [-1]),
        }
        outputs = [
            {"name": name, "datatype": shapes[name][0], "shape": shapes[name][1]} for name in self.outputs
        ]
        parameters.update(self.answer_parameters())
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": inputs,
            "outputs": outputs,
            "parameters": parameters,
        }

    def answer_parameters(self) -> dict[str, Any]:
        """What the extra outputs mean for this model (and why some are missing)."""
        answers = self.answers
        if answers is None:
            return {}
        unavailable = self.unavailable()
        explanation: dict[str, Any] = {"inputs": list(self.raw_inputs.names)}
        if answers.base is not None:
            explanation.update(method="interventional-shap-linear", base=answers.base)
        intervals: dict[str, Any] = {"defaultLevel": DEFAULT_LEVEL}
        record = answers.record
        if record is not None:
            intervals["method"] = record.method
            if record.method == "split-conformal":
                intervals.update(
                    calibrationRows=record.calibration.rows, largestLevel=record.calibration.largest_level()
                )
            else:
                intervals.update(dof=record.dof)
        result: dict[str, Any] = {
            "explanation": explanation,
            "intervals": intervals,
            "extrapolation": answers.guard_description(),
        }
        if unavailable:
            result["unavailable"] = unavailable
        return result
