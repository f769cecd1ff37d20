"""Model artifacts: canonical JSON, content address, verified loading, clear refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from marina.model import artifact
from marina.model.artifact import ArtifactError, ModelArtifact


def model(**changes: Any) -> ModelArtifact:
    base = ModelArtifact(
        coefficients=[1.5, -2.0, 0.25],
        intercept=3.0,
        feature_names=["a", "b", "c"],
        target="y",
        metrics={"mse": 0.5, "r2": 0.9},
        hyperparameters={"penalty": "l2", "alpha": 1.0},
        scaling={"mean": [0.0, 1.0, 2.0], "scale": [1.0, 2.0, 3.0]},
        dataset={"name": "demo", "version": "0123456789abcdef"},
        feature_statistics={"a": {"mean": 0.0}},
        code_version="0.1.0",
        created="2026-01-01T00:00:00Z",
    )
    return replace(base, **changes)


def test_round_trip_through_storage(tmp_path: Path) -> None:
    original = model()
    uri, digest = artifact.save(original, str(tmp_path / "models"))
    assert uri == str(tmp_path / "models" / f"model-{digest}.json")
    assert digest == original.sha256 == artifact.sha256_of(Path(uri).read_bytes())
    assert artifact.load(uri, digest) == original
    assert artifact.load(uri) == original


def test_sha256_is_canonical_and_content_sensitive() -> None:
    assert model().sha256 == model().sha256
    assert model(intercept=3.0000000000000004).sha256 != model().sha256
    assert json.loads(model().to_json())["format"] == artifact.FORMAT


def test_checksum_refusal(tmp_path: Path) -> None:
    uri, digest = artifact.save(model(), str(tmp_path))
    wrong = "0" * 64
    with pytest.raises(ArtifactError, match=f"sha256 mismatch for {uri}: expected {wrong}, got {digest}"):
        artifact.load(uri, wrong)


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    uri, digest = artifact.save(model(), str(tmp_path))
    Path(uri).write_bytes(Path(uri).read_bytes().replace(b"1.5", b"9.5"))
    with pytest.raises(ArtifactError, match="refusing to use it"):
        artifact.load(uri, digest)


def test_uppercase_digest_is_accepted(tmp_path: Path) -> None:
    uri, digest = artifact.save(model(), str(tmp_path))
    assert artifact.load(uri, digest.upper()) == model()


def minimal(**fields: Any) -> bytes:
    raw = {"format": artifact.FORMAT, "coefficients": [], "intercept": 0, "feature_names": [], **fields}
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "artifact is not valid JSON"),
        (b"[1, 2]", "artifact must be a JSON object"),
        (b'{"format": "marina.dev/linear-model/v1"}', "missing required fields: coefficients, intercept"),
        (
            minimal(format="other/v9"),
            "unsupported artifact format 'other/v9'",
        ),
        (
            minimal(coefficients=[1], feature_names=[]),
            "coefficients: 1 values for 0 feature_names",
        ),
        (
            minimal(coefficients=["x"], feature_names=["a"]),
            "every coefficient and the intercept must be a finite number",
        ),
    ],
)
def test_malformed_artifacts(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.json"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        artifact.load(str(path))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"coefficients": [1.0, float("nan"), 2.0]}, "finite number"),
        ({"intercept": float("inf")}, "finite number"),
        ({"feature_names": ["a", "a", "c"]}, "names must be unique"),
        ({"format": "x"}, "unsupported artifact format"),
        ({"coefficients": [1.0, True, 2.0]}, "finite number"),
    ],
)
def test_invalid_models_are_refused_at_construction(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        model(**changes)


def test_predict_is_vectorised_in_original_units() -> None:
    features = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(model().predict(features), [1.5 - 4.0 + 1.0 + 3.0, 3.0])
    assert model().n_features == 3


def test_unknown_fields_are_ignored_for_forward_compatibility(tmp_path: Path) -> None:
    raw = json.loads(model().to_json())
    raw["added_in_a_later_version"] = True
    path = tmp_path / "model.json"
    path.write_text(json.dumps(raw))
    assert artifact.load(str(path)) == model()


CATEGORY_INPUTS = [
    {"name": "a", "type": "number"},
    {"name": "colour", "type": "category", "categories": ["blue", "red"]},
]


def category_model(**changes: Any) -> ModelArtifact:
    base = model(feature_names=["a", "colour=blue", "colour=red"], inputs=CATEGORY_INPUTS, reference={})
    return replace(base, **changes)


def test_inputs_round_trip_and_expand_to_feature_names(tmp_path: Path) -> None:
    original = category_model()
    uri, digest = artifact.save(original, str(tmp_path))
    loaded = artifact.load(uri, digest)
    assert loaded.inputs == CATEGORY_INPUTS
    assert json.loads(Path(uri).read_bytes())["inputs"] == CATEGORY_INPUTS


def test_numbers_only_model_keeps_its_bytes_without_an_inputs_key() -> None:
    assert "inputs" not in json.loads(model().to_json())
    assert ModelArtifact.from_json(model().to_json()).inputs == []


@pytest.mark.parametrize(
    ("inputs", "feature_names", "message"),
    [
        (CATEGORY_INPUTS, ["a", "colour=red", "colour=blue"], "'colour=blue' at position 1 where"),
        (CATEGORY_INPUTS[:1], ["a", "colour=blue", "colour=red"], "1 names for 3 feature_names"),
        (
            [{"name": "a", "type": "number"}, {"name": "c", "type": "category", "categories": ["y", "x"]}],
            ["a", "c=y", "c=x"],
            r"inputs\[1\] \(c\): categories must be sorted and unique",
        ),
        (
            [CATEGORY_INPUTS[0], {"name": "c", "type": "category", "categories": []}, CATEGORY_INPUTS[0]],
            ["a", "b", "c"],
            r"inputs\[1\] \(c\): categories must be a non-empty list",
        ),
        (
            [{"name": "a", "type": "text"}, CATEGORY_INPUTS[0], CATEGORY_INPUTS[0]],
            ["a", "b", "c"],
            r"inputs\[0\] \(a\): type must be 'number' or 'category', got 'text'",
        ),
        ("a,b,c", ["a", "b", "c"], "inputs: must be a list"),
    ],
)
def test_inputs_that_do_not_expand_to_feature_names_are_refused(
    inputs: Any, feature_names: list[str], message: str
) -> None:
    with pytest.raises(ArtifactError, match=message):
        model(feature_names=feature_names, inputs=inputs, reference={})
