"""Progress reports: rows, rate, total, percent and ETA, written as JSON without ever failing a command."""

from __future__ import annotations

from pathlib import Path

import pytest

from marina.jobs import progress


def test_reports_carry_the_share_and_an_eta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = str(tmp_path / "progress" / "job.json")
    reporter = progress.Progress("marina prepare", total=1000, uri=uri, interval=0.0)
    reporter.rows(250)
    report = progress.read(uri)
    assert report is not None and "format" not in report
    assert (report["rows"], report["total"], report["percent"]) == (250, 1000, 25.0)
    assert report["etaSeconds"] >= 0 and report["rowsPerSecond"] > 0 and report["updated"].endswith("Z")
    reporter.rows(1000)
    reporter.done()
    final = progress.read(uri)
    assert final is not None and final["done"] is True and final["percent"] == 100.0
    assert "250 rows of 1000 (25.0%)" in capsys.readouterr().err


def test_without_a_total_there_is_no_percent(tmp_path: Path) -> None:
    uri = str(tmp_path / "p.json")
    progress.Progress("marina prepare", uri=uri, interval=0.0).rows(7)
    report = progress.read(uri)
    assert report is not None and report["rows"] == 7 and "percent" not in report


def test_an_unwritable_place_skips_the_report_not_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    progress.Progress("marina train", total=10, uri=str(blocker / "p.json"), interval=0.0).rows(3)
    assert "progress not written" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, "not json", '{"rows": 3}', "[1]"])
def test_reading_a_missing_or_foreign_object_is_none(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    assert progress.read(str(path)) is None


def test_shard_reports_merge_into_one() -> None:
    from marina.jobs.progress import merged, shard_uri

    assert shard_uri("s3://b/p/progress/job.json", 3) == "s3://b/p/progress/job-shard-3.json"
    assert merged([]) is None
    one = {
        "rows": 10,
        "total": 40,
        "rowsPerSecond": 5.0,
        "etaSeconds": 6.0,
        "updated": "2026-01-01T00:00:01Z",
    }
    two = {
        "rows": 30,
        "total": 60,
        "rowsPerSecond": 7.5,
        "etaSeconds": 4.0,
        "updated": "2026-01-01T00:00:02Z",
    }
    both = merged([one, two])
    assert both is not None
    assert (both["rows"], both["total"], both["percent"], both["etaSeconds"]) == (40, 100, 40.0, 6.0)
    assert (both["rowsPerSecond"], both["updated"], both["shardsReporting"]) == (12.5, two["updated"], 2)
    unknown = merged([one, {"rows": 5}])
    assert unknown is not None and "total" not in unknown and "percent" not in unknown
