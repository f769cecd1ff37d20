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
The clocks are deadlines on the connection, watched by one timer armed at most once per timeout:
starting a request only writes a number (creating and cancelling a loop timer per request cost 2.5 µs,
a few percent of a single-row request). When the timer fires early, because the deadline moved on with
a later request, it is armed again for the deadline now in force.
A response goes out in one write: uvicorn writes the status line and headers, then the body, and each
write is a system call that sends its own TCP segment. The connection's transport is wrapped so that,
once a request has arrived whole, its response's writes are held until the response is complete and
then written together (two system calls per request were two fifths of a single-row request's time).
A 100 Continue, or an early answer to a body still arriving, is written at once as before.
An idle keep-alive connection is closed after uvicorn's keep-alive timeout as uvicorn would, but its clock
is a third deadline on the same timer (uvicorn arms and cancels a loop timer per request).
Imported only by `marina serve`, after uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import math
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


class CorkedTransport:
    """A transport whose writes are held while `corked` and written as one when it is released (or
    before it closes). Everything else is the wrapped transport's own bound method."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.corked = False
        self.held: list[bytes] = []
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.set_protocol = transport.set_protocol
        self.get_protocol = transport.get_protocol
        self.get_write_buffer_size = transport.get_write_buffer_size
        self.set_write_buffer_limits = transport.set_write_buffer_limits
        self.abort = transport.abort

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.corked:
            self.held.append(bytes(data))
        else:
            self.transport.write(data)

    def release(self) -> None:
        self.corked = False
        if self.held:
            data = self.held[0] if len(self.held) == 1 else b"".join(self.held)
            self.held.clear()
            self.transport.write(data)

    def close(self) -> None:
        self.release()
        self.transport.close()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; `limits` and `on_refusal` are set on the subclass `guarded_protocol` makes."""

    limits: ServerLimits = ServerLimits()
    on_refusal: Callable[[int], None] = staticmethod(lambda status: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf  # when the timer fires (inf: none armed)
        self._header_deadline: float | None = None  # loop time by which the headers must be complete
        self._body_deadline: float | None = None  # ... the body, once it arrives in pieces
        self._idle_deadline: float | None = None  # ... the next request's first byte (keep-alive)
        self._header_bytes = 0
        self._max_header_bytes = self.limits.max_header_bytes
        self._body_pending = False  # headers complete, body not yet

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._corked = CorkedTransport(transport)
        super().connection_made(self._corked)  # type: ignore[arg-type]
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline = self._body_deadline = self._idle_deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._idle_deadline = None
        super().data_received(data)
        if self._body_pending and self._body_deadline is None and not self.transport.is_closing():
            self._body_deadline = self.loop.time() + self.limits.body_timeout_seconds
            self._watch(self._body_deadline)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_deadline is None:  # a pipelined request: its own clock
            self._start_header_clock()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self._max_header_bytes:
            self._headers_too_large()
        HttpToolsProtocol.on_url(self, url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # counted here rather than in a helper: a call per header is a tenth of a microsecond
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self._max_header_bytes:
            self._headers_too_large()
        HttpToolsProtocol.on_header(self, name, value)

    def on_headers_complete(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self._body_pending = True
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():  # after a refusal the rest of the data is dropped
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._body_deadline = None
        if not self.transport.is_closing():
            self._corked.corked = True  # the request is whole: its response goes out in one write
            super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, except for its keep-alive clock: uvicorn arms a loop timer after every response and
        the next request cancels it (1.4-3 us a request on uvloop); here it is a deadline on the connection
        that its one timer watches, like the header and body clocks."""
        self._corked.release()
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # pipelined requests: start the next one
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            deadline = self._idle_deadline = self.loop.time() + self.timeout_keep_alive
            if deadline < self._timer_at:
                self._watch(deadline)

    def _headers_too_large(self) -> None:
        if not self.transport.is_closing():
            message = f"request line and headers exceed {self._max_header_bytes} bytes"
            self._refuse(431, "Request Header Fields Too Large", message)

    def _start_header_clock(self) -> None:
        deadline = self._header_deadline = self.loop.time() + self.limits.header_timeout_seconds
        if deadline < self._timer_at:
            self._watch(deadline)

    def _watch(self, deadline: float) -> None:
        """Make sure the timer fires by `deadline` (an armed timer already does unless it fires later:
        the usual case, one comparison with the time it is armed for, no call)."""
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(deadline, self._check)
            self._timer_at = deadline

    def _check(self) -> None:
        """The timer fired: refuse a request that missed its deadline, close a connection idle for longer
        than the keep-alive timeout, else wait for the next deadline."""
        self._timer, self._timer_at = None, math.inf
        if self.transport.is_closing():
            return
        now = self.loop.time()
        header, body, idle = self._header_deadline, self._body_deadline, self._idle_deadline
        if header is not None and now >= header:
            timeout = self.limits.header_timeout_seconds
            self._refuse(408, "Request Timeout", f"the request headers did not arrive within {timeout:g} s")
        elif body is not None and now >= body and self._body_pending:
            if self.cycle is not None and self.cycle.response_started:
                self.transport.close()  # answered already (the rest of the body was not wanted)
                return
            timeout = self.limits.body_timeout_seconds
            self._refuse(408, "Request Timeout", f"the request body did not arrive within {timeout:g} s")
        elif idle is not None and now >= idle:
            self._idle_deadline = None
            self.timeout_keep_alive_handler()
        else:
            pending = [deadline for deadline in (header, body, idle) if deadline is not None]
            if pending:
                self._watch(min(pending))

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._header_deadline = self._body_deadline = self._idle_deadline = None
        self.on_refusal(status)
        self.transport.write(_refusal(status, reason, message))
        self.transport.close()


def guarded_protocol(
    limits: ServerLimits, on_refusal: Callable[[int], None]
) -> type[GuardedHttpToolsProtocol]:
    """The connection class uvicorn instantiates per connection, bound to this server's limits."""
    namespace = {"limits": limits, "on_refusal": staticmethod(on_refusal)}
    return type("MarinaHttpProtocol", (GuardedHttpToolsProtocol,), namespace)
