"""The operator staying up: which replica leads, the liveness check, the background loop that replaces
kopf's timers (no finalizers), kopf's indices of followers, and timeouts on every API call."""

from __future__ import annotations

import asyncio
import datetime
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import pytest

from marina.controller import handlers
from marina.controller.kube import background, leadership
from marina.controller.kube.client import Kube
from marina.controller.kube.health import Health
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import handlers as modeldeployment_handlers
from marina.controller.shared.registration import followers
from marina.controller.trainingjobs import handlers as trainingjob_handlers

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def peer(priority: int, seconds_ago: float = 1, lifetime: int = 20) -> dict[str, Any]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_the_highest_live_priority_leads() -> None:
    peers = {"a": peer(5), "b": peer(9)}
    assert leadership.leads(peers, "b", NOW) and not leadership.leads(peers, "a", NOW)
    assert leadership.leader(peers, NOW) == "b"


def test_a_dead_or_departed_leader_hands_over() -> None:
    silent = {"a": peer(5), "b": peer(9, seconds_ago=21)}  # b's record outlived its lifetime
    departed = {"a": peer(5), "b": peer(9, lifetime=0)}  # kopf's goodbye on a clean exit
    assert leadership.leads(silent, "a", NOW) and leadership.leads(departed, "a", NOW)


def test_nobody_leads_on_a_tie_or_before_registering() -> None:
    assert not leadership.leads({"a": peer(7), "b": peer(7)}, "a", NOW)  # kopf pauses both
    assert not leadership.leads({"b": peer(1)}, "a", NOW)  # a's keep-alive not written yet
    assert not leadership.leads({"a": {"priority": 9, "lastseen": "garbled"}}, "a", NOW)


def test_health_names_a_stuck_reconcile_and_a_busy_pool() -> None:
    now = [0.0]
    health = Health(stall_seconds=60, clock=lambda: now[0])
    with health.working("reconcile of TrainingJob ns/a"):
        now[0] = 59.0
        assert health.problem() is None
        now[0] = 61.0
        problem = health.problem()
        assert problem is not None and "TrainingJob ns/a" in problem
    health.pulse()
    assert health.problem() is None and health.busy() == 0
    now[0] = 122.0
    assert "no worker thread was free for 61s" in (health.problem() or "")


def run_loop(chores: list[background.Chore], leading: Any, health: Health, until: Any) -> None:
    """Runs the background loop with a 10 ms tick until `until()` holds (5 s at most)."""

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=4) as executor:
            task = asyncio.create_task(background.run(chores, executor, health, leading, tick=0.01))
            deadline = time.monotonic() + 5
            while not until() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            task.cancel()

    asyncio.run(main())


def test_background_work_runs_only_on_the_leader() -> None:
    done: list[str] = []
    chore = background.Chore("re-check", 0.0, lambda: ["a", "b"], done.append)
    pulses = Health(stall_seconds=60)
    pulses._pulse = -1.0  # shows whether the loop pulsed
    checks: list[bool] = []
    run_loop([chore], lambda: checks.append(False) or False, pulses, lambda: len(checks) >= 5)
    assert done == [] and pulses._pulse > 0
    run_loop([chore], lambda: True, Health(60), lambda: {"a", "b"} <= set(done))
    assert {"a", "b"} <= set(done)


def test_background_skips_an_item_still_under_way() -> None:
    release = threading.Event()
    calls: list[str] = []

    def work(item: str) -> None:
        calls.append(item)
        release.wait(5)

    ticks: list[int] = []
    chore = background.Chore("drift check", 0.0, lambda: ticks.append(1) or ["slow"], work)
    run_loop([chore], lambda: True, Health(60), lambda: len(ticks) >= 10 and not release.set())
    assert calls == ["slow"]


def test_a_replica_that_cannot_tell_does_not_lead() -> None:
    def fails() -> bool:
        raise OSError("API server unreachable")

    assert background.pulse_then(Health(60), fails) is False


@pytest.fixture
def registry() -> Iterator[kopf.OperatorRegistry]:
    previous = kopf.get_default_registry()
    fresh = kopf.OperatorRegistry()
    kopf.set_default_registry(fresh)
    try:
        yield fresh
    finally:
        kopf.set_default_registry(previous)


def no_kube() -> Any:
    raise AssertionError("registering handlers calls no API")


def test_no_handler_makes_kopf_add_a_finalizer(registry: kopf.OperatorRegistry) -> None:
    handlers.register(Settings(), kube_factory=no_kube)
    assert list(registry._spawning.get_all_handlers()) == []  # no timers or daemons
    assert not any(h.requires_finalizer for h in registry._changing.get_all_handlers())
    indices = {h.id for h in registry._indexing.get_all_handlers()}
    assert {
        trainingjob_handlers.TRAININGJOBS_BY_DATASET,
        modeldeployment_handlers.MODELDEPLOYMENTS_BY_TRAININGJOB,
    } <= indices


def test_the_probe_fails_while_workers_are_stuck(registry: kopf.OperatorRegistry) -> None:
    now = [0.0]
    health = Health(stall_seconds=60, clock=lambda: now[0])
    handlers.register(Settings(), kube_factory=no_kube, health=health)
    (probe,) = [h for h in registry._activities.get_all_handlers() if h.id == "reconciling"]
    assert asyncio.run(probe.fn()) == {"busy": 0}
    now[0] = 61.0
    with pytest.raises(kopf.PermanentError, match="no worker thread was free"):
        asyncio.run(probe.fn())


def test_the_liveness_endpoint_answers_500_while_workers_are_stuck(registry: kopf.OperatorRegistry) -> None:
    """Through kopf's own health server, as the kubelet's probe sees it."""
    from kopf._cogs.structs import ephemera
    from kopf._core.engines import probing

    now = [0.0]
    health = Health(stall_seconds=60, clock=lambda: now[0])
    handlers.register(Settings(), kube_factory=no_kube, health=health)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}/healthz"

    def status() -> int:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    async def main() -> int:
        ready = asyncio.Event()
        server = asyncio.create_task(
            probing.health_reporter(
                url,
                registry=registry,
                settings=kopf.OperatorSettings(),
                indices={},
                memo=ephemera.AnyMemo(kopf.Memo()),
                ready_flag=ready,
            )
        )
        await asyncio.wait_for(ready.wait(), 5)
        now[0] = 61.0  # kopf keeps an answer for 10 s, so the first one is the stuck one
        code = await asyncio.to_thread(status)
        server.cancel()
        return code

    assert asyncio.run(main()) == 500


def test_followers_come_from_the_index_and_leave_it() -> None:
    entry = trainingjob_handlers.by_dataset("ns", "ridge", {"dataset": {"name": "diabetes"}})
    assert entry == {("ns", "diabetes"): "ridge"}
    assert trainingjob_handlers.by_dataset("ns", "ridge", {}) == {}  # empty, so kopf drops the earlier entry
    index = {("ns", "diabetes"): ["ridge", "lasso", "ridge"]}
    assert followers(index, "ns", "diabetes") == ["lasso", "ridge"]
    assert followers(index, "other", "diabetes") == []
    assert modeldeployment_handlers.by_training_job("ns", "web", {"model": {"trainingJob": "ridge"}}) == {
        ("ns", "ridge"): "web"
    }
    assert modeldeployment_handlers.monitored("ns", "web", {"monitoring": {}}) == {"ns": "web"}
    assert modeldeployment_handlers.monitored("ns", "web", {}) == {}


def test_every_api_call_times_out_even_discovery() -> None:
    """A server that accepts and never answers: the client gives up after its read timeout (twice, with
    the one retry), instead of hanging a worker thread."""
    from kubernetes import client

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[Any] = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(8)], daemon=True).start()
    configuration = client.Configuration(host=f"http://127.0.0.1:{server.getsockname()[1]}")
    started = time.monotonic()
    with pytest.raises(Exception, match="timed out"):
        Kube(timeout=(1.0, 0.3), configuration=configuration)  # discovery runs first
    assert time.monotonic() - started < 3
    server.close()


def test_settings_read_the_timeouts() -> None:
    settings = Settings.from_environment({"MARINA_API_TIMEOUT_SECONDS": "12", "MARINA_STALL_SECONDS": "90"})
    assert settings.api_timeout == (10.0, 12.0) and settings.stall_seconds == 90.0
