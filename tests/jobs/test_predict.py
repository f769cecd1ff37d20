"""`marina predict` and `marina explain`: batch scoring gives exactly what serving answers, into parts named
by their content and a manifest written once, the same whether one pod or N shards scored it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marina.cli import main
from marina.contract import PredictRequest, SpecError
from marina.data import parts
from marina.jobs import predict as predicting
from marina.model import artifact
from marina.model.answers import Answers
from marina.model.artifact import ModelArtifact
from tabular import write_diamonds
from trained import prepare, run, splits, train

ALL = "predict,contribution,lower,upper,extrapolation"


@pytest.fixture(scope="module")
def model_uri(diabetes_model: ModelArtifact, tmp_path_factory: pytest.TempPathFactory) -> str:
    return artifact.save(diabetes_model, str(tmp_path_factory.mktemp("saved")))[0]


def read_parts(manifest_uri: str) -> pa.Table:
    """The manifest's parts in order, each checked against the sha256 of its canonical content."""
    manifest = json.loads(Path(manifest_uri).read_text())
    folder = Path(manifest_uri).parent / manifest["partsFolder"]
    columns = [(c["name"], c["type"]) for c in manifest["columns"]]
    tables = []
    for part in manifest["parts"]:
        table = pq.read_table(folder / part["name"])
        values = [
            table.column(name).to_pylist() if kind == "string" else table.column(name).to_numpy()
            for name, kind in columns
        ]
        assert (
            predicting.content_digest(columns, values)
            == part["sha256"]
            == part["name"].removesuffix(".parquet")
        )
        assert table.num_rows == part["rows"]
        tables.append(table)
    combined = pa.concat_tables(tables)
    assert combined.num_rows == manifest["rows"]
    return combined


def test_scoring_a_split_answers_what_serving_answers(
    diabetes_model: ModelArtifact, model_uri: str, diabetes_data: str, tmp_path: Path
) -> None:
    result = run(
        "predict",
        "--model",
        model_uri,
        "--sha256",
        diabetes_model.sha256,
        "--data",
        diabetes_data,
        "--output",
        str(tmp_path),
        "--outputs",
        ALL,
        "--level",
        "0.9",
        "--passthrough",
        "target",
    )
    data = splits(diabetes_data)
    assert result["rows"] == len(data.y_test) and result["reused"] is False
    table = read_parts(result["manifest"])
    answers = Answers(diabetes_model)
    predictions = diabetes_model.predict(data.x_test)
    np.testing.assert_array_equal(table.column("target").to_numpy(), data.y_test)
    np.testing.assert_array_equal(table.column("predict").to_numpy(), predictions)
    width = answers.half_widths(data.x_test, 0.9)
    np.testing.assert_array_equal(table.column("lower").to_numpy(), predictions - width)
    np.testing.assert_array_equal(table.column("upper").to_numpy(), predictions + width)
    contributions = np.column_stack(
        [table.column(f"contribution_{n}").to_numpy() for n in diabetes_model.feature_names]
    )
    np.testing.assert_array_equal(contributions, answers.contributions(data.x_test))
    assert table.column("extrapolation").to_pylist() == answers.verdicts(data.x_test).labels()
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["model"]["sha256"] == diabetes_model.sha256 and manifest["level"] == 0.9
    assert manifest["data"]["split"] == "test" and manifest["sha256"] == result["sha256"]


def test_a_rerun_writes_nothing_and_other_predictions_never_overwrite(
    diabetes_model: ModelArtifact,
    model_uri: str,
    diabetes_data: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = ["predict", "--model", model_uri, "--data", diabetes_data, "--output", str(tmp_path)]
    first = run(*options)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    again = run(*options)
    assert again["reused"] is True and again["sha256"] == first["sha256"]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps
    assert main([*options, "--split", "train"]) == 1
    assert "describes other predictions" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and "manifest" in p.name} == {
        p: s for p, s in stamps.items() if "manifest" in p.name
    }


@pytest.fixture(scope="module")
def many_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ModelArtifact]:
    """6,000 synthetic rows in parts of 500 (cut by cells, lowered here), and a ridge model of them."""
    output = tmp_path_factory.mktemp("many")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parts, "PART_CELLS", 3_500)
        data = prepare("synthetic:rows=6000,features=6,noise=0.5,seed=4", output)
    return data, train(data, output / "m", "--penalty", "l2", "--alpha", "1")


@pytest.mark.parametrize("shards", [2, 3])
def test_n_shards_write_the_manifest_one_pod_writes(
    many_parts: tuple[str, ModelArtifact], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards: int
) -> None:
    data, model = many_parts
    uri = artifact.save(model, str(tmp_path / "model"))[0]
    monkeypatch.setattr(predicting, "PART_CELLS", 2_000)  # several output parts per input part
    common = ["--model", uri, "--data", data, "--outputs", ALL, "--split", "train"]
    one = run("predict", *common, "--output", str(tmp_path / "one"))
    rows = 0
    for index in range(shards):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))  # as Kubernetes sets it in an Indexed Job
        shard = run(
            "predict",
            *common,
            "--output",
            str(tmp_path / "many"),
            "--phase",
            "shard",
            "--shards",
            str(shards),
        )
        rows += shard["rows"]
    monkeypatch.delenv("JOB_COMPLETION_INDEX")
    many = run(
        "predict", *common, "--output", str(tmp_path / "many"), "--phase", "manifest", "--shards", str(shards)
    )
    assert rows == one["rows"] == many["rows"] == len(splits(data).y_train)
    assert many["sha256"] == one["sha256"] and many["parts"] == one["parts"] > 12
    table = read_parts(many["manifest"])
    np.testing.assert_array_equal(table.column("predict").to_numpy(), model.predict(splits(data).x_train))


def test_a_manifest_without_every_shard_names_the_missing_one(
    many_parts: tuple[str, ModelArtifact], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, model = many_parts
    uri = artifact.save(model, str(tmp_path / "model"))[0]
    common = ["predict", "--model", uri, "--data", data, "--output", str(tmp_path / "o"), "--shards", "2"]
    run(*common, "--phase", "shard", "--shard-index", "0")
    assert main([*common, "--phase", "manifest"]) == 1
    assert "expected one shard-1-of-2-<sha256>.json, found 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def diamonds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelArtifact, str]:
    folder = tmp_path_factory.mktemp("diamonds")
    write_diamonds(folder / "train.csv")
    data = prepare(
        str(folder / "train.csv"), folder / "d", "--target", "price", "--features", "carat,cut,color"
    )
    model = train(data, folder / "m")
    return folder, model, artifact.save(model, str(folder / "saved"))[0]


def test_a_csv_folder_with_text_ids_and_an_unseen_category(
    diamonds: tuple[Path, ModelArtifact, str], tmp_path: Path
) -> None:
    _, model, uri = diamonds
    source = tmp_path / "incoming"
    source.mkdir()
    (source / "a.csv").write_text("id,carat,cut,color\nd-1,1.2,Ideal,E\nd-2,0.4,Fair,Z\n")
    (source / "b.csv").write_text("color,cut,carat,id\nG,Premium,2.0,d-3\n")
    result = run(
        "predict",
        "--model",
        uri,
        "--data",
        str(source),
        "--output",
        str(tmp_path / "o"),
        "--outputs",
        ALL,
        "--passthrough",
        "id",
    )
    table = read_parts(result["manifest"])
    assert table.column("id").to_pylist() == ["d-1", "d-2", "d-3"]
    answers = Answers(model)
    raw = [[1.2, 0.4, 2.0], ["Ideal", "Fair", "Premium"], ["E", "Z", "G"]]
    features, _ = answers.inputs.encode(raw)
    np.testing.assert_array_equal(table.column("predict").to_numpy(), model.predict(features))
    # An input's contribution sums its k one-hot columns' shares; two matrix products may add them in
    # another order (and fuse a product into an addition), each within k·(ε/2)·Σ|share| of the exact sum.
    cut = slice(answers.inputs.offsets[1], answers.inputs.offsets[2])
    shares = np.abs((features - answers.means) * np.asarray(model.coefficients))[:, cut]
    bound = (cut.stop - cut.start) * np.finfo(float).eps * shares.sum(axis=1)
    difference = np.abs(table.column("contribution_cut").to_numpy() - answers.contributions(features)[:, 1])
    assert (difference <= bound).all(), (difference, bound)
    assert "category:color" in table.column("extrapolation").to_pylist()[1].split(";")
    assert result["extrapolated"]["category"] == 1 and result["extrapolated"]["category:color"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("carat,cut,color\n1.0,Ideal,E\nheavy,Fair,E\n", "column 'carat' row 2: 'heavy' is not a number"),
        (
            "carat,cut,color\n1.0,Ideal,E\n,Fair,E\n",
            "column 'carat' row 2: missing value; the model needs a number",
        ),
        ("carat,colour\n1.0,E\n", "column 'cut' not found"),
    ],
)
def test_a_bad_cell_or_column_is_a_data_failure_naming_it(
    diamonds: tuple[Path, ModelArtifact, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    (tmp_path / "bad.csv").write_text(content)
    result_file = tmp_path / "result.json"
    code = main(
        [
            "predict",
            "--model",
            diamonds[2],
            "--data",
            str(tmp_path / "bad.csv"),
            "--output",
            str(tmp_path / "o"),
            "--result-file",
            str(result_file),
        ]
    )
    assert code == 1 and message in capsys.readouterr().err
    assert json.loads(result_file.read_text())["error"]["kind"] == "data"


def test_outputs_an_old_model_cannot_give_are_refused_before_reading(
    diabetes_model_v1: ModelArtifact, diabetes_data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = artifact.save(diabetes_model_v1, str(tmp_path))[0]
    assert (
        main(
            [
                "predict",
                "--model",
                uri,
                "--data",
                diabetes_data,
                "--output",
                str(tmp_path / "o"),
                "--outputs",
                "lower",
            ]
        )
        == 1
    )
    assert "retrain it" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_explain_prints_what_serving_explains(
    diabetes_model: ModelArtifact, model_uri: str, diabetes_data: str
) -> None:
    data = splits(diabetes_data)
    row = dict(zip(diabetes_model.feature_names, data.x_test[0].tolist(), strict=True))
    answers = Answers(diabetes_model)
    expected = answers.explanations(data.x_test[:1], diabetes_model.predict(data.x_test[:1]))
    from_json = run("explain", "--model", model_uri, "--row", json.dumps(row))
    assert from_json["explanations"] == json.loads(json.dumps(expected)) and from_json["base"] == answers.base
    from_data = run("explain", "--model", model_uri, "--data", diabetes_data, "--rows", "3", "--level", "0.8")
    expected = answers.explanations(data.x_test[:3], diabetes_model.predict(data.x_test[:3]), 0.8)
    assert from_data["explanations"] == json.loads(json.dumps(expected))


def request(**changes: Any) -> PredictRequest:
    return PredictRequest(**{"model": "m.json", "data": "d", "output": "o", **changes})


def test_the_request_travels_as_argv_and_back() -> None:
    import argparse

    made = request(
        outputs=("predict", "extrapolation"), passthrough=("id",), phase="shard", shards=4, level=0.9
    )
    parser = argparse.ArgumentParser()
    PredictRequest.add_arguments(parser)
    assert PredictRequest.from_args(parser.parse_args(made.to_argv()[1:])) == made


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"outputs": ("shap",)},
            "--outputs: must be one of predict, contribution, lower, upper, extrapolation",
        ),
        ({"outputs": ("predict", "predict")}, "--outputs: predict named more than once"),
        ({"level": 1.0}, "--level: must be in (0, 1), got 1.0"),
        ({"passthrough": ("predict",)}, "--passthrough: predict would be written twice"),
        ({"phase": "shard"}, "--phase shard needs --shards of at least 2"),
        ({"shards": 3}, "--shards above 1 needs --phase shard"),
        ({"phase": "shard", "shards": 2, "shard_index": 2}, "--shard-index: must be in [0, 1], got 2"),
        ({"split": "validation"}, "--split: must be one of test, train"),
    ],
)
def test_bad_requests_are_spec_errors_naming_the_flag(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as raised:
        request(**changes)
    assert str(raised.value).startswith(message)


def test_a_shard_without_an_index_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    with pytest.raises(SpecError, match=r"\$JOB_COMPLETION_INDEX is ''"):
        predicting.shard_of(request(phase="shard", shards=2))
    assert os.environ.get("JOB_COMPLETION_INDEX") is None


def test_progress_is_reported_as_prepare_and_train_report_it(
    many_parts: tuple[str, ModelArtifact], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows so far, the total (known for a prepared split) and done, in the JSON the operator copies."""
    data, model = many_parts
    uri = artifact.save(model, str(tmp_path / "model"))[0]
    reports: list[dict[str, Any]] = []
    real = predicting.Progress

    class Eager(real):  # type: ignore[misc,valid-type]
        def __init__(self, command: str, total: int | None = None, uri: str | None = None) -> None:
            super().__init__(command, total, uri, interval=0.0)

        def document(self, now: float, done: bool) -> dict[str, Any]:
            report = super().document(now, done)
            reports.append(report)
            return report

    monkeypatch.setattr(predicting, "Progress", Eager)
    progress = tmp_path / "progress.json"
    result = run(
        "predict",
        "--model",
        uri,
        "--data",
        data,
        "--output",
        str(tmp_path / "o"),
        "--split",
        "train",
        "--progress",
        str(progress),
    )
    assert reports and reports[-1]["done"] is True and reports[-1]["rows"] == result["rows"]
    assert reports[-1]["total"] == result["rows"] and reports[0]["rows"] <= reports[-1]["rows"]
    assert json.loads(progress.read_text())["rows"] == result["rows"]
