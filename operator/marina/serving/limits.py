"""How much a client may cost the server: time to send headers and body, bytes of bodies held at once.

A serving pod has a memory limit; without a budget, forty clients that each send most of a large body
and then stall hold forty bodies in memory and get the pod OOM-killed. The budget is derived from the
pod's own cgroup limit at start-up (what is left after the process itself and one decoded body), so a
pod with more memory accepts more concurrent large bodies and none can be pushed over its limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 16 * MIB
#: Bodies this small never wait for the budget: a normal client keeps being answered while large
#: uploads are refused. Their total is bounded by ``max_connections x SMALL_BODY_BYTES``.
SMALL_BODY_BYTES = 64 * 1024
#: Decoding a JSON body into Python lists and then a float64 matrix peaks at about this many times
#: the body's size (VmHWM, 16.5 MB bodies of 80,000 x 10 floats: 3.7x for v2 `data`, 4.1x for v1
#: `instances`); handlers run on the event loop, so one decode runs at a time.
DECODE_EXPANSION = 5
#: Budget when the memory limit cannot be read (no cgroup limit: a developer's machine).
UNLIMITED_BUDGET_BYTES = 256 * MIB
#: cgroup v1 reports "no limit" as a page-aligned number near 2**63.
NO_LIMIT_THRESHOLD = 1 << 60


@dataclass(frozen=True)
class ServerLimits:
    """Every limit of one server; the defaults suit a pod with the operator's 512Mi limit."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_budget_bytes: int = UNLIMITED_BUDGET_BYTES
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 512

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "body_budget_bytes", "max_header_bytes", "max_connections"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.body_budget_bytes < self.max_body_bytes:
            raise ValueError(
                f"body_budget_bytes ({self.body_budget_bytes}) must be at least max_body_bytes "
                f"({self.max_body_bytes}), or the largest allowed body could never be served"
            )
        for name in ("header_timeout_seconds", "body_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def memory_limit_bytes(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This container's memory limit from its cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``)."""
    for candidate in (cgroup_root / "memory.max", cgroup_root / "memory" / "memory.limit_in_bytes"):
        try:
            text = candidate.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < NO_LIMIT_THRESHOLD:
            return int(text)
        return None
    return None


def resident_bytes(status: Path = Path("/proc/self/status")) -> int:
    """The process's resident set size now (VmRSS), 0 where /proc is not available."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def body_budget(memory_limit: int | None, resident: int, max_body_bytes: int) -> int:
    """Bytes of request bodies the server may hold at once: half of what the limit leaves spare.

    Spare = limit - what the process holds now - one body being decoded. Half of it goes to bodies,
    the other half stays as headroom (allocator slack, responses, metrics). Never below one body of
    the maximum size, so the largest allowed request can always be served on its own.
    """
    if memory_limit is None:
        return max(UNLIMITED_BUDGET_BYTES, max_body_bytes)
    spare = memory_limit - resident - DECODE_EXPANSION * max_body_bytes
    return max(max_body_bytes, spare // 2)


class BodyBudget:
    """Bytes held by request bodies in flight. The event loop is single-threaded: no lock needed."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0

    def reservation(self) -> BodyReservation:
        return BodyReservation(self)


class BodyReservation:
    """One request's share of the budget: grows as its body arrives, released when it is answered."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.size = 0

    def grow(self, size: int) -> bool:
        """Take ``size`` more bytes if they fit; a body that stays within SMALL_BODY_BYTES always fits."""
        if self.size + size > SMALL_BODY_BYTES and self.budget.held + size > self.budget.total:
            return False
        self.budget.held += size
        self.size += size
        return True

    def release(self) -> None:
        self.budget.held -= self.size
        self.size = 0
