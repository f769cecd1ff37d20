"""How many CPUs this process may use, and BLAS held to what a streaming command leaves it.

A streaming command reads, decodes and hashes in a read-ahead thread while the main thread computes; a
BLAS that also starts one thread per core then competes with the reader, and OpenBLAS's spinning threads
are at their worst when they are throttled by a pod's CPU quota or share the cores with other work
(measured on two loaded cores: 2.7 s of CPU with one BLAS thread against 5.4 s with two, for the same
training pass).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may run on, capped by its cgroup's quota (a pod's CPU limit)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


@contextmanager
def blas_beside_a_reader() -> Iterator[int]:
    """BLAS limited to the CPUs left after one for the read-ahead thread (at least one); yields that."""
    from threadpoolctl import threadpool_limits  # here, so that the solver may count CPUs with numpy alone

    threads = max(1, available_cpus() - 1)
    with threadpool_limits(limits=threads, user_api="blas"):
        yield threads
