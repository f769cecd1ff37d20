"""`marina prepare` end to end through the CLI: summary, result file, stored files, error reporting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bounds import sum_tolerance
from marina.cli import main
from marina.data import dataset


def run_prepare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["prepare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def prepare_ok(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> dict[str, Any]:
    result_file = tmp_path / "result.json"
    code, out, err = run_prepare(capsys, *args, "--result-file", str(result_file))
    assert code == 0, err
    assert out.count("\n") == 1
    summary: dict[str, Any] = json.loads(out)
    assert json.loads(result_file.read_text()) == summary and summary.pop("format") == "marina.dev/result/v1"
    assert len(result_file.read_bytes()) < 4096
    return summary


def test_prepare_diabetes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    output = tmp_path / "store"
    summary = prepare_ok(capsys, tmp_path, "--source", "builtin:diabetes", "--output", str(output))
    assert summary["uri"] == str(output / summary["version"])
    assert (summary["rows"], summary["trainRows"], summary["testRows"]) == (442, 353, 89)
    assert summary["columns"][-1] == "target" and summary["target"] == "target"
    assert summary["name"] == "diabetes" and summary["reused"] is False
    assert set(summary["statistics"]["bmi"]) == {"mean", "std", "min", "max", "missing"}
    stored = dataset.load(summary["uri"])
    assert stored.data.sha256 == summary["sha256"]
    # The summary prints 6 significant digits (preparation._short): half a unit in the 6th digit of
    # the mean, plus the rounding of two means of the same values (sum_tolerance, each).
    mean = float(stored.data.y_train.mean())
    printed = 0.5 * 10.0 ** (np.floor(np.log10(abs(mean))) - 5)
    rounding = 2 * sum_tolerance(stored.data.y_train.size) * float(np.mean(np.abs(stored.data.y_train)))
    assert abs(summary["statistics"]["target"]["mean"] - mean) <= printed + rounding
    description = stored.description
    assert description["split"] == {"seed": 42, "testFraction": 0.2, "method": "permutation"}
    assert description["source"]["type"] == "builtin"

    again = prepare_ok(capsys, tmp_path, "--source", "builtin:diabetes", "--output", str(output))
    assert again["version"] == summary["version"] and again["reused"] is True


def test_prepare_options_reach_the_dataset(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    summary = prepare_ok(
        capsys,
        tmp_path,
        "--source",
        "synthetic:rows=300,features=4,missing=0.1,seed=3",
        "--output",
        str(tmp_path / "s"),
        "--features",
        "x3,x1",
        "--missing",
        "median",
        "--test-fraction",
        "0.3",
        "--seed",
        "9",
        "--name",
        "demo",
    )
    assert summary["columns"] == ["x3", "x1", "target"] and summary["name"] == "demo"
    assert (summary["trainRows"], summary["testRows"]) == (210, 90)
    assert summary["statistics"]["x1"]["missing"] > 0
    stored = dataset.load(summary["uri"])
    assert stored.description["cleaning"]["strategy"] == "median"
    assert not np.isnan(stored.data.train).any()


def test_prepare_inline_rows_from_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = [{"size": i, "price": 2 * i + 1} for i in range(10)]
    rows_file = tmp_path / "rows.yaml"
    rows_file.write_text(json.dumps(rows))
    summary = prepare_ok(
        capsys,
        tmp_path,
        "--source",
        "inline",
        "--rows-file",
        str(rows_file),
        "--target",
        "price",
        "--output",
        str(tmp_path / "s"),
    )
    inline = prepare_ok(
        capsys,
        tmp_path,
        "--source",
        "inline",
        "--inline-rows",
        json.dumps(rows),
        "--target",
        "price",
        "--output",
        str(tmp_path / "s"),
    )
    assert summary["version"] == inline["version"] and inline["reused"] is True
    assert summary["columns"] == ["size", "price"] and summary["rows"] == 10


def test_prepare_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv_path = tmp_path / "houses.csv"
    csv_path.write_text("rooms,area,price\n" + "".join(f"{i % 5},{i * 1.5},{i * 3 + 2}\n" for i in range(20)))
    summary = prepare_ok(
        capsys, tmp_path, "--source", str(csv_path), "--target", "price", "--output", str(tmp_path / "s")
    )
    assert summary["name"] == "houses" and summary["rows"] == 20


def test_large_schemas_are_truncated_to_fit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    summary = prepare_ok(
        capsys, tmp_path, "--source", "synthetic:rows=50,features=120", "--output", str(tmp_path / "s")
    )
    assert summary["truncated"] == ["statistics"]
    assert "statistics" not in summary and len(summary["columns"]) == 121


@pytest.mark.parametrize(
    ("args", "kind", "message"),
    [
        (
            ["--source", "inline", "--inline-rows", '[{"x": 1, "sex": "male", "target": 1}]'],
            "data",
            "column 'sex' row 1: 'male' is not a number",
        ),
        (
            ["--source", "inline", "--inline-rows", '[{"x": 1, "city": "unreachable", "target": 1}]'],
            "data",  # words in the data never make a failure look like a storage outage
            "column 'city' row 1: 'unreachable' is not a number",
        ),
        (
            ["--source", "builtin:diabetes", "--target", "price"],
            "data",
            "target column 'price' not found; columns are: age",
        ),
        (
            ["--source", "synthetic:rows=20,missing=0.2", "--missing", "fail"],
            "data",
            "column 'x1' row 2: missing value",
        ),
        (
            ["--source", "builtin:diabetes", "--test-fraction", "1.5"],
            "spec",
            "--test-fraction: must be in (0, 1), got 1.5",
        ),
        (
            ["--source", "builtin:diabetes", "--test-fraction", "half"],
            "spec",
            "--test-fraction: 'half' is not a valid number",
        ),
        (["--source", "builtin:diabetes", "--seed", "x"], "spec", "--seed: 'x' is not a valid integer"),
        (
            ["--source", "builtin:diabetes", "--missing", "guess"],
            "spec",
            "--missing: must be one of drop, mean, median, fail",
        ),
        (["--source", "mongodb://db/x"], "spec", "unknown source 'mongodb://db/x'"),
        (["--source", "/nonexistent/data.csv"], "storage-not-found", "cannot read /nonexistent/data.csv"),
        (["--output", "x"], "spec", "--source is required"),
        (
            ["--source", "inline", "--inline-rows", "[]", "--rows-file", "r"],
            "spec",
            "either with --inline-rows or",
        ),
    ],
)
def test_errors_are_reported_on_one_line_with_their_kind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], kind: str, message: str
) -> None:
    result_file = tmp_path / "result.json"
    if "--output" not in args:
        args = [*args, "--output", str(tmp_path / "s")]
    code, out, err = run_prepare(capsys, *args, "--result-file", str(result_file))
    assert code == 1 and out == ""  # a permanent failure: the Job fails at once
    assert err.startswith("marina prepare: error: ") and err.count("\n") == 1
    assert message in err
    result = json.loads(result_file.read_text())
    assert result["format"] == "marina.dev/result/v1" and result["error"]["kind"] == kind
    assert message in result["error"]["message"] and err.strip().endswith(result["error"]["message"])
    assert not (tmp_path / "s").exists()  # nothing half-written


def test_missing_output_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_prepare(capsys, "--source", "builtin:diabetes")
    assert code == 1 and "--output is required" in err


def test_an_unexpected_failure_still_reports_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(spec: str, inline_rows: str | None = None) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("marina.data.sources.open_source", broken)
    result_file = tmp_path / "result.json"
    code, _, err = run_prepare(
        capsys, "--source", "builtin:diabetes", "--output", str(tmp_path), "--result-file", str(result_file)
    )
    assert code == 70 and "Traceback" in err  # EX_SOFTWARE; the stack trace helps whoever fixes the bug
    assert json.loads(result_file.read_text()) == {
        "format": "marina.dev/result/v1",
        "error": {"kind": "internal", "message": "unexpected RuntimeError: boom second line"},
    }


def test_an_unwritable_result_file_fails_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_prepare(
        capsys,
        "--source",
        "synthetic:rows=20",
        "--output",
        str(tmp_path / "s"),
        "--result-file",
        str(tmp_path / "missing-folder" / "result.json"),
    )
    assert code == 70 and json.loads(out)["rows"] == 20 and "cannot write the result file" in err


def test_shards_then_the_reduce_write_the_one_pod_dataset(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Indexed Job's pods (`--phase shard`, index from $JOB_COMPLETION_INDEX) and its reduce."""
    source = (
        "--source",
        "synthetic:rows=3000,features=4,noise=0.1,seed=3,missing=0.01",
        "--missing",
        "median",
    )
    one = prepare_ok(capsys, tmp_path, *source, "--output", str(tmp_path / "one"))
    output, partials = str(tmp_path / "three"), str(tmp_path / "partials")
    sharding = ("--shards", "3", "--partials", partials, "--output", output)
    for index in range(3):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        shard = prepare_ok(capsys, tmp_path, *source, *sharding, "--phase", "shard")
        assert shard["shard"] == index and shard["shards"] == 3 and shard["partial"].startswith(partials)
    reduced = prepare_ok(capsys, tmp_path, *source, *sharding, "--phase", "reduce")
    varying = ("uri", "shards", "peakMemoryBytes")
    assert {k: v for k, v in reduced.items() if k not in varying} == {
        k: v for k, v in one.items() if k not in varying
    }
    assert (one["shards"], reduced["shards"]) == (1, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--phase", "shard", "--shards", "2"), "--phase shard needs --shards of at least 2 and --partials"),
        (("--phase", "reduce", "--partials", "p"), "--phase reduce needs --shards of at least 2"),
        (
            ("--phase", "shard", "--shards", "2", "--partials", "p", "--shard-index", "2"),
            r"must be in \[0, 1\]",
        ),
    ],
)
def test_sharding_flags_are_checked(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, _, err = run_prepare(capsys, "--source", "builtin:diabetes", "--output", "o", *args)
    assert code != 0 and re.search(message, err), err
