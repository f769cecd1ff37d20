"""CPUs from the affinity mask and the cgroup quota; BLAS limited beside the read-ahead thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from marina.system import cpu


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", None),
        ("50000 100000\n", 1),  # half a CPU still runs one thread
        ("150000 100000\n", 2),
        ("100000000 100000\n", None),  # a quota above the machine: the affinity mask decides
    ],
)
def test_available_cpus(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    cpus = len(os.sched_getaffinity(0))
    assert cpu.available_cpus(path) == (cpus if expected is None else min(expected, cpus))


def test_no_cgroup_file_means_the_affinity_mask(tmp_path: Path) -> None:
    assert cpu.available_cpus(tmp_path / "absent") == len(os.sched_getaffinity(0))


def test_blas_is_limited_inside_and_restored_after() -> None:
    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    with cpu.blas_beside_a_reader() as threads:
        assert threads == max(1, cpu.available_cpus() - 1)
        assert all(n <= threads for n in blas_threads())
    assert blas_threads() == before
