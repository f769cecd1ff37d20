"""The most memory this process's container (or, outside one, this process) has held: what a user sizes
`spec.resources` by, reported in every prepare and train result as `peakMemoryBytes`."""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
PROC_STATUS = Path("/proc/self/status")


def cgroup_peak_files(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> list[Path]:
    """The peak files of this container's memory cgroup: v2's memory.peak, v1's max_usage_in_bytes. A
    container sees its own cgroup at the mount's root (a cgroup namespace, or runc's bind mount in v1,
    where /proc still names the host's folder). On a host that folder exists under the mount and is
    shared with other processes, so none is returned and the caller uses the process's own peak."""
    files: list[Path] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return files
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base, name = root, "memory.peak"
        elif "memory" in controllers.split(","):
            base, name = root / "memory", "memory.max_usage_in_bytes"
        else:
            continue
        if path == "/" or not (base / path.lstrip("/")).is_dir():
            files.append(base / name)
    return files


def peak_bytes(peak_files: list[Path] | None = None, status: Path = PROC_STATUS) -> int | None:
    """The cgroup's peak usage (page cache included, as the OOM killer counts it) when readable, else the
    process's VmHWM; None when neither is."""
    for path in cgroup_peak_files() if peak_files is None else peak_files:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_used() -> dict[str, int]:
    """`{"peakMemoryBytes": n}` for a command's result, or nothing when no peak is readable."""
    peak = peak_bytes()
    return {} if peak is None else {"peakMemoryBytes": peak}
