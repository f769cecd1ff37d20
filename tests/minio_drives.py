"""MinIO's drives as its admin API states them (`GET /minio/admin/v3/info`, MinioAdmin.info()): which are
online, which heal, and whether a set of drives is whole again after one lost its data.

MinIO answers per server a list of drives, each with its `endpoint` (the path it serves, /data1), its
`state` ("ok", "unformatted" while a wiped drive waits for its format, "offline" where it cannot be used),
its `uuid` (the drive's identity in the erasure set's format; a drive healed in place gets its old one
back) and `healing` (true while MinIO rebuilds the drive's objects; absent afterwards). Nothing here reads
MinIO's log lines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Drive:
    endpoint: str
    state: str
    uuid: str
    healing: bool


def drives(info: Mapping[str, Any]) -> dict[str, Drive]:
    """Every drive of every server in a server-info answer, by endpoint."""
    found = [
        Drive(
            str(d.get("endpoint", "")),
            str(d.get("state", "")),
            str(d.get("uuid") or ""),
            bool(d.get("healing")),
        )
        for server in info.get("servers") or []
        for d in server.get("drives") or []
    ]
    return {drive.endpoint: drive for drive in found}


def not_healed(info: Mapping[str, Any], before: Mapping[str, Drive]) -> list[str]:
    """Why the drives of `before` (the answer from before a drive was lost) are not whole again, one line
    per drive and for the backend's count; empty when every one of them is back: state ok, not healing,
    with the identity it had."""
    now = drives(info)
    reasons = []
    for endpoint, was in sorted(before.items()):
        drive = now.get(endpoint)
        if drive is None:
            reasons.append(f"{endpoint}: not reported")
        elif drive.state != "ok":
            reasons.append(f"{endpoint}: state {drive.state}")
        elif drive.healing:
            reasons.append(f"{endpoint}: healing")
        elif drive.uuid != was.uuid:
            reasons.append(f"{endpoint}: identity {drive.uuid or 'none'}, was {was.uuid}")
    backend = info.get("backend") or {}
    if backend.get("offlineDisks", 0) or backend.get("onlineDisks", len(before)) != len(before):
        reasons.append(
            f"backend: {backend.get('onlineDisks')} drives online, {backend.get('offlineDisks')} offline"
        )
    return reasons
