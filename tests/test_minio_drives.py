"""tests/minio_drives.py on answers shaped as the pinned MinIO gave them (four drives, one wiped: first
"unformatted" without an identity, then "ok" and healing with its old one, then "ok")."""

from __future__ import annotations

from typing import Any

from minio_drives import Drive, drives, not_healed

UUIDS = ("c8a969c9", "a33b5753", "4b530e80", "4e7c70b5")


def answer(wiped: dict[str, Any] | None = None, online: int = 4) -> dict[str, Any]:
    listed = [{"endpoint": f"/data{i}", "state": "ok", "uuid": uuid} for i, uuid in enumerate(UUIDS)]
    listed[1].update(wiped or {})
    return {
        "backend": {"backendType": "Erasure", "onlineDisks": online, "offlineDisks": 4 - online},
        "servers": [{"state": "online", "drives": listed}],
    }


BEFORE = drives(answer())


def test_drives_are_read_by_endpoint() -> None:
    assert BEFORE["/data1"] == Drive("/data1", "ok", "a33b5753", healing=False)
    assert sorted(BEFORE) == ["/data0", "/data1", "/data2", "/data3"]
    assert drives({}) == {}


def test_a_wiped_drive_is_not_healed_until_it_is_ok_with_its_identity_and_done_healing() -> None:
    assert not_healed(answer({"state": "unformatted", "uuid": None}), BEFORE) == ["/data1: state unformatted"]
    assert not_healed(answer({"state": "offline", "uuid": None}, online=3), BEFORE) == [
        "/data1: state offline",
        "backend: 3 drives online, 1 offline",
    ]
    assert not_healed(answer({"healing": True}), BEFORE) == ["/data1: healing"]
    assert not_healed(answer({"uuid": "other"}), BEFORE) == ["/data1: identity other, was a33b5753"]
    assert not_healed(answer({"healing": None}), BEFORE) == []
    assert not_healed(answer(), BEFORE) == []


def test_a_drive_missing_from_the_answer_is_not_healed() -> None:
    gone = answer()
    del gone["servers"][0]["drives"][3]
    assert not_healed(gone, BEFORE) == ["/data3: not reported"]
