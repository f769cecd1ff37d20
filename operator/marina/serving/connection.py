"""uvicorn's httptools connection with the limits it lacks: time to send headers and body, header bytes.

uvicorn closes idle keep-alive connections but lets a client take forever over its request line,
headers and body, and keeps every header it is sent. A client that trickles bytes would hold a
connection (and its memory, and its share of the body budget) for as long as it likes. Here:

- the header clock starts when a connection opens (or the next request's first byte arrives); the
  headers must be complete within the timeout and the byte limit, else 408 or 431;
- the body clock starts only when a read ends with the headers complete but the body not, so the
  usual request, which arrives whole in one read, never arms a timer; the body must then be complete
  within the timeout, else 408.

Each refusal closes the connection; the app sees a disconnect and frees the request's budget.
Idle keep-alive connections stay uvicorn's business. Imported only by `marina serve`, after uvicorn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from marina.serving.limits import ServerLimits


def _refusal(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; `limits` and `on_refusal` are set on the subclass `guarded_protocol` makes."""

    limits: ServerLimits = ServerLimits()
    on_refusal: Callable[[int], None] = staticmethod(lambda status: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._body_pending = False  # headers complete, body not yet

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        self._stop_body_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._body_pending and self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.limits.body_timeout_seconds, self._body_too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_timer is None:  # a pipelined request: its own clock
            self._start_header_clock()

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_header_clock()
        if not self.transport.is_closing():
            self._body_pending = True
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():  # after a refusal the rest of the data is dropped
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._stop_body_clock()
        if not self.transport.is_closing():
            super().on_message_complete()

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            message = f"request line and headers exceed {self.limits.max_header_bytes} bytes"
            self._refuse(431, "Request Header Fields Too Large", message)

    def _start_header_clock(self) -> None:
        self._stop_header_clock()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_seconds, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        timeout = self.limits.header_timeout_seconds
        self._refuse(408, "Request Timeout", f"the request headers did not arrive within {timeout:g} s")

    def _stop_body_clock(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._body_pending:
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered already (the rest of the body was not wanted)
            return
        timeout = self.limits.body_timeout_seconds
        self._refuse(408, "Request Timeout", f"the request body did not arrive within {timeout:g} s")

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._stop_header_clock()
        self._stop_body_clock()
        self.on_refusal(status)
        self.transport.write(_refusal(status, reason, message))
        self.transport.close()


def guarded_protocol(
    limits: ServerLimits, on_refusal: Callable[[int], None]
) -> type[GuardedHttpToolsProtocol]:
    """The connection class uvicorn instantiates per connection, bound to this server's limits."""
    namespace = {"limits": limits, "on_refusal": staticmethod(on_refusal)}
    return type("MarinaHttpProtocol", (GuardedHttpToolsProtocol,), namespace)
