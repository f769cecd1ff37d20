"""The operator's own periodic work, in place of kopf's per-object timers.

kopf puts a finalizer on every object a timer ticks for (it always wants to stop the timer before the
object goes), and a finalizer makes deleting an object, or its whole namespace, hang while the operator
is down or scaled to 0. So one loop per operator does what the timers did: every `tick` seconds it runs
the chores that are due, each item in a worker thread of kopf's pool, on the leading replica only (kopf
pauses the follower's handlers, not this loop: `leading` says which replica runs). Each tick also
pulses `Health` from a worker thread, so the liveness probe knows the pool still takes work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from marina.controller.kube import metrics
from marina.controller.kube.health import Health

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chore:
    """Every `every` seconds, `work(item)` for each item `due()` lists. `due` runs in the event loop (it
    reads kopf's indices); `work` in a worker thread. An item still being worked on is skipped."""

    name: str
    every: float
    due: Callable[[], Iterable[Hashable]]
    work: Callable[[Any], None]


def pulse_then(health: Health, leading: Callable[[], bool]) -> bool:
    """Runs in a worker thread: proves one was free, then asks whether this replica leads."""
    health.pulse()
    try:
        leads = leading()
    except Exception as error:  # not knowing means not leading: kopf pauses in doubt too
        log.warning("cannot tell whether this replica leads: %s", error)
        leads = False
    metrics.leading(leads)
    return leads


async def run(
    chores: Sequence[Chore],
    executor: Executor,
    health: Health,
    leading: Callable[[], bool],
    tick: float,
) -> None:
    """Runs until cancelled. The first round of each chore comes `every` seconds after the start (kopf's
    resume handlers reconcile every object when a replica starts leading)."""
    loop = asyncio.get_running_loop()
    running: set[tuple[str, Hashable]] = set()
    last = {chore.name: loop.time() for chore in chores}
    while True:
        if await loop.run_in_executor(executor, pulse_then, health, leading):
            now = loop.time()
            for chore in chores:
                if now - last[chore.name] >= chore.every:
                    last[chore.name] = now
                    for item in chore.due():
                        start(loop, executor, chore, item, running)
        await asyncio.sleep(tick)


def start(
    loop: asyncio.AbstractEventLoop,
    executor: Executor,
    chore: Chore,
    item: Hashable,
    running: set[tuple[str, Hashable]],
) -> None:
    key = (chore.name, item)
    if key in running:
        return
    running.add(key)
    future = loop.run_in_executor(executor, chore.work, item)

    def done(finished: asyncio.Future[None]) -> None:
        running.discard(key)
        if not finished.cancelled() and finished.exception() is not None:
            log.error("%s of %s failed: %s", chore.name, item, finished.exception())

    future.add_done_callback(done)
