"""UTC timestamps as Kubernetes writes them (RFC 3339, whole seconds, `Z`), for status, events and lineage."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """A timestamp from the API server or a manifest (`...Z` or an explicit offset), timezone-aware."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_since(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()
