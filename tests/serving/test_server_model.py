"""The served model: names usable in URLs, content-addressed versions, predictions equal to the artifact's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from marina.model.artifact import ModelArtifact
from marina.serving.model import ServedModel, default_name, is_valid_name, training_statistics


@pytest.mark.parametrize(
    ("dataset", "name"),
    [({"name": "diabetes"}, "diabetes"), ({"name": "a/b"}, "model"), ({}, "model"), ({"name": 3}, "model")],
)
def test_default_name_comes_from_the_dataset_when_usable(dataset: dict[str, Any], name: str) -> None:
    artifact = ModelArtifact(coefficients=[1.0], intercept=0.0, feature_names=["x"], dataset=dataset)
    assert default_name(artifact) == name


@pytest.mark.parametrize(
    ("name", "valid"),
    [("iris-v2", True), ("m.1_a", True), ("a:predict", False), ("a/b", False), ("", False), ("-x", False)],
)
def test_names_must_fit_in_url_paths(name: str, valid: bool) -> None:
    assert is_valid_name(name) is valid


def test_version_is_a_prefix_of_the_content_address(artifact: ModelArtifact) -> None:
    served = ServedModel.from_artifact(artifact, "m", "memory")
    assert served.sha256 == artifact.sha256
    assert served.version == artifact.sha256[:12]
    assert served.has_version(served.version) and served.has_version(artifact.sha256)
    assert not served.has_version(artifact.sha256[:11])


@pytest.mark.parametrize("rows", [0, 1, 3, 1000])
@pytest.mark.parametrize("n_features", [1, 10, 64])
def test_predictions_equal_the_artifact_bit_for_bit(rows: int, n_features: int) -> None:
    rng = np.random.default_rng(rows * 100 + n_features)
    artifact = ModelArtifact(
        coefficients=rng.normal(size=n_features).tolist(),
        intercept=float(rng.normal()),
        feature_names=[f"f{i}" for i in range(n_features)],
    )
    features = rng.normal(scale=1e3, size=(rows, n_features))
    served = ServedModel.from_artifact(artifact, "m", "memory")
    np.testing.assert_array_equal(served.predict(features), artifact.predict(features))


def test_training_statistics_keep_finite_numbers_only() -> None:
    raw = {
        "a": {"mean": 1, "std": 0.5, "min": float("nan"), "max": True, "missing": 3},
        "b": "not statistics",
        "c": {"count": 10},
    }
    assert training_statistics(raw, ["a", "b", "c", "d"]) == {"a": {"mean": 1.0, "std": 0.5}}
