"""spec.logging.keepDays: the operator deletes a ModelDeployment's expired date= folders in real MinIO, and
nothing outside its own logs prefix."""

from __future__ import annotations

from datetime import date

import pytest

from marina import storage
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import logs
from minio_server import MinioServer, free_port

SETTINGS = Settings(probe_storage=False, s3_bucket="marina-retention")
TODAY = date(2026, 3, 10)


def test_only_days_older_than_keep_days_are_expired() -> None:
    folders = [
        "date=2026-03-10",
        "date=2026-03-08",
        "date=2026-03-07",
        "date=2025-12-31",
        "notes",
        "date=2026-02-30",
    ]
    assert logs.expired(folders, 2, TODAY) == ["date=2026-03-07", "date=2025-12-31"]
    assert logs.expired(folders, 3660, TODAY) == []


def test_expire_deletes_old_days_of_this_deployment_only(s3_env: MinioServer) -> None:
    own = SETTINGS.logs_prefix("team", "md")
    neighbour = SETTINGS.logs_prefix("team", "md2")  # a name sharing md's first letters
    other_namespace = SETTINGS.logs_prefix("other", "md")
    written = []
    for prefix in (own, neighbour, other_namespace):
        for stream in ("predictions", "feedback"):
            for day in ("2026-03-10", "2026-03-01"):
                uri = f"{prefix}{stream}/date={day}/part-p-000001.parquet"
                storage.write_bytes(uri, b"x")
                written.append(uri)
    storage.write_bytes(f"{own}predictions/README", b"kept")
    deleted = logs.expire(SETTINGS, "team", "md", 7, TODAY)
    assert deleted == [f"{own}predictions/date=2026-03-01/", f"{own}feedback/date=2026-03-01/"]
    remaining = {o.uri for o in storage.list_objects("s3://marina-retention/logs/")}
    gone = {uri for uri in written if uri.startswith(own) and "2026-03-01" in uri}
    assert remaining == (set(written) - gone) | {f"{own}predictions/README"}


def test_expire_with_storage_down_deletes_nothing_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv(storage.ACCESS_KEY_ENV, "a")
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "b")
    assert logs.expire(SETTINGS, "team", "md", 7, TODAY) == []
    assert "log retention under s3://marina-retention/logs/team/md/" in caplog.text
