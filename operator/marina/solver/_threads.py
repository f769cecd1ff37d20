"""Rows shared among threads, each running BLAS on one thread.

The Gram is formed block by block (see ``statistics._Products``), and OpenBLAS splits each block's
small syrk between its own threads and meets them again after every call. On 1M x 100 with two BLAS
threads that made the statistics cost 1.35x one ``X.T @ X`` of the whole matrix; with the rows cut in
two contiguous shares, one per thread, and BLAS held to one thread meanwhile, they cost 0.61x
(``benchmarks/solver_bench.py``). threadpoolctl holds BLAS to one thread. Without it (the solver
needs numpy alone) every block runs in the calling thread with BLAS's own threads, as before.

The number of threads is the number BLAS has at the moment of the call (capped by the CPUs this
process may use, its cgroup's quota included), so a caller that already holds BLAS to fewer threads,
such as a streaming job whose read-ahead thread needs a CPU, gets the same fewer here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, TypeVar

from marina.system.cpu import available_cpus

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - numpy alone
    ThreadpoolController = None

#: Fewest elements (rows x width) a share must have: below it, starting threads and holding BLAS
#: costs more than a second CPU saves (about 20,000 rows at 100 features, 15 ms of Gram).
MIN_SHARE_ELEMENTS = 1 << 21

T = TypeVar("T")


@cache
def _controller() -> Any:
    """threadpoolctl's view of the BLAS libraries loaded now (numpy's among them), made once."""
    return None if ThreadpoolController is None else ThreadpoolController().select(user_api="blas")


def blas_threads() -> int:
    """The threads BLAS would use for one call now (1 when that cannot be known)."""
    controller = _controller()
    if controller is None or not controller.lib_controllers:
        return 1
    return max(1, *(int(library.num_threads) for library in controller.lib_controllers))


def share_count(rows: int, width: int) -> int:
    """How many threads should share ``rows`` rows of ``width`` values (1: the calling thread alone)."""
    workers = min(blas_threads(), available_cpus())
    return max(1, min(workers, rows * width // MIN_SHARE_ELEMENTS))


def shares(rows: int, count: int) -> list[slice]:
    """``count`` contiguous, near-equal slices covering ``range(rows)``, in order."""
    bounds = [rows * index // count for index in range(count + 1)]
    return [slice(start, stop) for start, stop in itertools.pairwise(bounds)]


def map_shares(work: Callable[[slice], T], rows: int, width: int) -> list[T]:
    """``work`` on each share of the rows, in order; in threads with one BLAS thread each when it pays."""
    count = share_count(rows, width)
    if count == 1:
        return [work(slice(0, rows))]
    with _controller().limit(limits=1), ThreadPoolExecutor(count, thread_name_prefix="marina-solver") as pool:
        return list(pool.map(work, shares(rows, count)))
