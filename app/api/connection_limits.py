"""Slowloris defence: header and body read deadlines and a connection limit, in uvicorn's HTTP protocol.

`tswatch serve` hands uvicorn `guarded_protocol(limits)` as its `http=` class: uvicorn's httptools protocol plus
- a header deadline: a request whose headers are not complete `header_timeout` seconds after the connection
  opened (or after the previous response on a keep-alive connection) is answered 408 and the connection closed.
  A connection that has sent no byte of a new request by then is closed without an answer, like uvicorn's own
  keep-alive timeout does;
- a body deadline: a request whose body has not fully arrived `body_timeout` seconds after its headers is
  answered 408 (the application's `receive()` then reports a disconnect and whatever it sends is dropped), or,
  if the application had already started its answer, the connection is closed;
- a connection limit: a connection opened while `max_connections` are already open is answered 503 at once and
  closed. uvicorn's `limit_concurrency` is not used: it counts connections and tasks but only acts once a
  request's headers are complete, so connections that never finish their headers are never refused by it.
- malformed HTTP, which uvicorn answers with a text/plain 400, is answered with a problem+json 400 instead.

Every such answer is a problem+json document sent with `Connection: close`; the connection is then closed
lingeringly (write side first, incoming bytes discarded for at most `LINGER_SECONDS`) so that a client still
sending does not get a TCP reset that would destroy the answer before it reads it.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import TimerHandle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.api.problems import problem_response
from app.settings import Settings

logger = logging.getLogger(__name__)

LINGER_SECONDS: Final = 2.0
"""How long a refused connection may keep sending (discarded) bytes after its answer before it is cut."""


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=settings.max_connections,
        )


def problem_bytes(
    status: int,
    title: str,
    detail: str,
    slug: str,
    default_headers: list[tuple[bytes, bytes]],
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """A complete HTTP/1.1 problem+json answer with `Connection: close`, for writing straight to a transport."""
    response = problem_response(
        status, title, detail, slug, headers={**(headers or {}), "Connection": "close"}
    )
    parts = [STATUS_LINE[status]]
    for name, value in [*default_headers, *response.raw_headers]:
        parts += [name, b": ", value, b"\r\n"]
    parts += [b"\r\n", bytes(response.body)]
    return b"".join(parts)


def _cancel(timer: TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and the connection limit of `limits`."""

    limits: ClassVar[ConnectionLimits]

    _header_timer: TimerHandle | None = None
    _body_timer: TimerHandle | None = None
    _linger_timer: TimerHandle | None = None
    _in_headers = False  # bytes of a request arrived, its headers are not complete yet
    _lingering = False  # answered and closing: incoming bytes are discarded

    # Connection lifetime

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            detail = f"the server has reached its limit of {self.limits.max_connections} open connections"
            self._refuse(503, "Server busy", detail, "too-many-connections", {"Retry-After": "1"})
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._body_timer, self._linger_timer):
            _cancel(timer)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        super().data_received(data)

    def shutdown(self) -> None:
        if self._lingering:
            self.transport.close()
        else:
            super().shutdown()

    def handle_websocket_upgrade(self) -> None:
        _cancel(self._header_timer)
        _cancel(self._body_timer)
        super().handle_websocket_upgrade()

    # Parser callbacks

    def on_message_begin(self) -> None:
        self._in_headers = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        _cancel(self._header_timer)
        super().on_headers_complete()
        if not self._lingering:
            _cancel(self._body_timer)
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        _cancel(self._body_timer)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # With a pipelined request already parsed, its headers arrived in time; otherwise wait for the next one.
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        self._refuse(
            400, "Malformed request", f"the request is not valid HTTP/1.1 ({msg})", "malformed-request"
        )

    # Deadlines

    def _arm_header_timer(self) -> None:
        _cancel(self._header_timer)
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timed_out)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self._lingering:
            return
        if not self._in_headers:
            self.transport.close()  # idle: no request begun, nothing to answer
            return
        detail = f"the request headers did not arrive within {self.limits.header_timeout:g} s"
        self._refuse(408, "Request timeout", detail, "request-timeout")

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or self._lingering or cycle is None or not cycle.more_body:
            return
        if cycle.response_complete:  # answered without reading it all: nothing left to answer
            self.transport.close()
            return
        if self.pipeline:  # queued behind an answer under way, so unread: not the client's fault
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)
            return
        detail = f"the request body did not arrive within {self.limits.body_timeout:g} s"
        self._refuse(408, "Request timeout", detail, "request-timeout")

    # Answer and close

    def _refuse(
        self, status: int, title: str, detail: str, slug: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer `status` as problem+json (unless an answer is under way), stop the request, close lingeringly."""
        logger.info("%s %s: %s", self._peer(), status, detail)
        _cancel(self._header_timer)
        _cancel(self._body_timer)
        cycle = self.cycle
        answering = bool(self.pipeline) or (
            cycle is not None and cycle.response_started and not cycle.response_complete
        )
        if cycle is not None and not cycle.response_complete:
            # The application's receive() now reports a disconnect, and whatever it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if self.transport.is_closing():
            return
        if answering:  # a second answer would corrupt the one under way: just cut the connection
            self.transport.close()
            return
        self.transport.write(
            problem_bytes(status, title, detail, slug, self.server_state.default_headers, headers)
        )
        self._lingering = True
        self.flow.resume_reading()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unknown peer"


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to pass as uvicorn's `http=`, bound to `limits` (uvicorn builds one per connection)."""

    class BoundGuardedHttpToolsProtocol(GuardedHttpToolsProtocol):
        pass

    BoundGuardedHttpToolsProtocol.limits = limits
    return BoundGuardedHttpToolsProtocol
