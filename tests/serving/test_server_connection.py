"""The connection's clocks (header, body and keep-alive) are deadlines one loop timer watches: answering
requests arms no timer of its own, and an idle keep-alive connection is still closed after the timeout.
Driven in-process through uvicorn's protocol with a transport that records what is written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from marina.serving.app import ServingApp
from marina.serving.connection import GuardedHttpToolsProtocol, guarded_protocol
from marina.serving.model import ServedModel

BODY = b'{"instances": [[1.0, 2.0, 3.0]]}'
REQUEST = (
    b"POST /v1/models/diabetes:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


class Transport(asyncio.Transport):
    """Records the writes; closing is a flag."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connection(served: ServedModel, keep_alive: float) -> tuple[GuardedHttpToolsProtocol, Transport]:
    app = ServingApp(served)
    config = uvicorn.Config(
        app,
        http=guarded_protocol(app.limits, app.requests.refuse),
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    assert isinstance(protocol, GuardedHttpToolsProtocol)
    protocol.timeout_keep_alive = keep_alive
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def answer(protocol: GuardedHttpToolsProtocol, transport: Transport) -> bytes:
    transport.written.clear()
    protocol.data_received(REQUEST)
    while not transport.written:
        await asyncio.sleep(0)
    return b"".join(transport.written)


def test_requests_arm_no_timer_of_their_own(served: ServedModel) -> None:
    async def run() -> None:
        protocol, transport = connection(served, keep_alive=5.0)
        await answer(protocol, transport)
        timer = protocol._timer  # the earliest deadline now: the keep-alive one
        for _ in range(100):
            assert (await answer(protocol, transport)).startswith(b"HTTP/1.1 200 OK")
        assert protocol._timer is timer and protocol.timeout_keep_alive_task is None

    asyncio.run(run())


def test_a_busy_connection_stays_open(served: ServedModel) -> None:
    async def run() -> None:
        protocol, transport = connection(served, keep_alive=0.2)
        for _ in range(10):
            assert (await answer(protocol, transport)).startswith(b"HTTP/1.1 200 OK")
            await asyncio.sleep(0.05)  # never idle for the keep-alive timeout
        assert not transport.closed

    asyncio.run(run())


@pytest.mark.parametrize("keep_alive", [0.05, 0.3])
def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(
    served: ServedModel, keep_alive: float
) -> None:
    async def run() -> None:
        protocol, transport = connection(served, keep_alive)
        await answer(protocol, transport)
        await asyncio.sleep(keep_alive / 2)
        assert not transport.closed
        await asyncio.sleep(keep_alive + 0.1)
        assert transport.closed

    asyncio.run(run())
