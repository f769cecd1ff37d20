"""Peak memory: the own cgroup's when readable (v2, then v1), else the process's VmHWM."""

from __future__ import annotations

from pathlib import Path

import pytest

from marina.system import memory


def test_the_first_readable_peak_wins(tmp_path: Path) -> None:
    v2, v1 = tmp_path / "memory.peak", tmp_path / "memory.max_usage_in_bytes"
    v1.write_text("2048\n")
    assert memory.peak_bytes([v2, v1], tmp_path / "status") == 2048
    v2.write_text("4096\n")
    assert memory.peak_bytes([v2, v1], tmp_path / "status") == 4096


def test_without_a_cgroup_the_process_high_water_mark(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython3\nVmPeak:\t 999 kB\nVmHWM:\t  1234 kB\n")
    assert memory.peak_bytes([tmp_path / "absent"], status) == 1234 * 1024
    assert memory.peak_bytes([tmp_path / "absent"], tmp_path / "absent") is None


@pytest.mark.parametrize(
    ("proc", "folders", "expected"),
    [
        # a container in a cgroup namespace (v2): its own cgroup is the mount's root
        ("0::/\n", [], ["memory.peak"]),
        # v1 in a container: /proc names the host's folder, runc mounts the container's cgroup at the root
        ("5:memory:/kubepods/pod1/abc\n0::/\n", [], ["memory/memory.max_usage_in_bytes", "memory.peak"]),
        # v1 on a host: the folder exists under the mount and holds other processes too
        ("5:memory:/user.slice/session-1\n", ["memory/user.slice/session-1"], []),
        ("3:cpu,cpuacct:/x\n", [], []),
    ],
)
def test_own_cgroup_peak_files(tmp_path: Path, proc: str, folders: list[str], expected: list[str]) -> None:
    (tmp_path / "cgroup").write_text(proc)
    root = tmp_path / "fs"
    for folder in folders:
        (root / folder).mkdir(parents=True)
    found = memory.cgroup_peak_files(tmp_path / "cgroup", root)
    assert found == [root / name for name in expected]


def test_this_process_reports_a_plausible_peak() -> None:
    assert (memory.memory_used().get("peakMemoryBytes") or 0) > 10 << 20  # numpy alone is more
