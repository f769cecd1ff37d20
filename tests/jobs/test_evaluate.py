"""`marina evaluate`: both models scored on one test split, in the champion's own feature order; the
numbers equal each model's own test metrics from `marina train` on that split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from marina.cli import main
from marina.contract import EvaluateRequest, SpecError
from marina.data import parts
from marina.data.table import DataError
from marina.jobs import evaluate as comparison
from marina.model import artifact


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result: dict[str, Any] = json.loads(captured.out)
    return result


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> str:
    output = tmp_path_factory.mktemp("datasets")
    assert main(["prepare", "--source", "builtin:diabetes", "--output", str(output)]) == 0
    (folder,) = (p for p in output.iterdir() if p.name != parts.PARTS_FOLDER)
    return str(folder)


def test_both_models_score_as_their_training_reported_on_the_same_split(
    prepared: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    champion = ok(capsys, "train", "--data", prepared, "--output", str(models))
    challenger = ok(
        capsys, "train", "--data", prepared, "--output", str(models), "--penalty", "l2", "--alpha", "10"
    )
    result_file = tmp_path / "result.json"
    result = ok(
        capsys,
        "evaluate",
        "--champion",
        champion["uri"],
        "--champion-sha256",
        champion["sha256"],
        "--challenger",
        challenger["uri"],
        "--challenger-sha256",
        challenger["sha256"],
        "--result-file",
        str(result_file),
    )
    assert json.loads(result_file.read_text()) == result
    assert (
        result["datasetVersion"] == champion["datasetVersion"] and result["testRows"] == champion["testRows"]
    )
    # Two ways of summing the same n squared residuals: each sum is within n·eps of its terms' total.
    rows = result["testRows"]
    relative = 4 * rows * float(np.finfo(np.float64).eps)
    for role, trained in (("champion", champion), ("challenger", challenger)):
        assert result[role]["sha256"] == trained["sha256"]
        for name in ("mse", "rmse", "mae"):
            assert result[role]["metrics"][name] == pytest.approx(trained["metrics"][name], rel=relative)
    assert result["challenger"]["metrics"]["rmse"] > result["champion"]["metrics"]["rmse"]  # alpha 10 hurts


def model(features: list[str], inputs: list[dict[str, Any]] | None = None) -> artifact.ModelArtifact:
    return artifact.ModelArtifact([1.0] * len(features), 0.5, features, inputs=inputs or [])


def test_a_champion_of_older_columns_is_aligned_by_name() -> None:
    colour = {"name": "colour", "type": "category", "categories": ["blue", "red"]}
    champion = model(["size", "colour=blue", "colour=red"], [{"name": "size", "type": "number"}, colour])
    columns = ("colour=green", "colour=red", "size")  # blue no longer occurs, green is new
    positions = comparison.alignment(champion, columns, "champion")
    assert positions.tolist() == [2, comparison.ABSENT, 1]
    data = np.array([[1.0, 0.0, 7.0], [0.0, 1.0, 8.0]])
    assert comparison.design(data, positions).tolist() == [[7.0, 0.0, 0.0], [8.0, 0.0, 1.0]]
    champion.predict(comparison.design(data, positions))  # the shape fits the coefficients


def test_a_number_feature_the_data_lacks_makes_the_models_incomparable() -> None:
    with pytest.raises(DataError, match="champion uses features the dataset lacks \\(bmi\\)"):
        comparison.alignment(model(["age", "bmi"]), ("age", "s1"), "champion")


def test_a_wrong_digest_is_refused_before_anything_is_scored(
    prepared: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trained = ok(capsys, "train", "--data", prepared, "--output", str(tmp_path))
    wrong = "0" * 64
    champion = ["--champion", trained["uri"], "--champion-sha256", wrong]
    code = main(
        ["evaluate", *champion, "--challenger", trained["uri"], "--challenger-sha256", trained["sha256"]]
    )
    assert code == 1 and "sha256 mismatch" in capsys.readouterr().err
    with pytest.raises(SpecError, match="--champion-sha256"):
        EvaluateRequest(champion="a", champion_sha256="xyz", challenger="b", challenger_sha256=wrong)
