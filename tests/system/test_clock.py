"""Timestamps as Kubernetes writes them, read back timezone-aware."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from marina.system.clock import parse_timestamp, seconds_since, utc_now


def test_utc_now_is_rfc3339_in_whole_seconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_now())


def test_parse_timestamp_round_trips_utc_now() -> None:
    stamp = utc_now()
    parsed = parse_timestamp(stamp)
    assert parsed.tzinfo is not None and parsed.strftime("%Y-%m-%dT%H:%M:%SZ") == stamp
    assert parse_timestamp("2026-01-01T00:00:00+00:00") == datetime(2026, 1, 1, tzinfo=UTC)


def test_seconds_since() -> None:
    assert 0 <= seconds_since(parse_timestamp(utc_now())) < 5
    assert seconds_since(datetime(2000, 1, 1, tzinfo=UTC)) > 0
