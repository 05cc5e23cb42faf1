"""Read time-outs for the embedded HTTP server (slowloris). uvicorn 0.34 has none for the request itself: its
keep-alive time-out covers only idle time between requests and restarts on every byte, and a connection that
sends part of its headers (or nothing) is kept forever; ASGI middleware runs only once the headers are parsed.
So the protocol class is wrapped: a request's headers must be complete within ``header_timeout`` seconds of
the connection (or of the previous response), and a body being received must not stall for more than
``body_idle_timeout`` seconds (unless the server paused reading itself); else the connection is closed."""

from __future__ import annotations

import asyncio
from typing import Any

CHECK_INTERVAL = 1.0


def _base() -> type:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # no httptools: the pure-Python parser
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base
    return Base


class GuardedProtocol(_base()):  # type: ignore[misc]
    """A module-level class (not a closure) so that uvicorn's worker processes, which receive their
    configuration pickled, can import it by name; subclasses set the two time-outs."""

    header_timeout = 10.0
    body_idle_timeout = 60.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        now = self.loop.time()
        self._hj_phase_start = now  # since when a request's headers are awaited
        self._hj_last_byte = now
        self._hj_seen: Any = None  # the last request cycle whose completion was noted
        self._hj_timer = self.loop.call_later(CHECK_INTERVAL, self._hj_check)

    def data_received(self, data: bytes) -> None:
        self._hj_last_byte = self.loop.time()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._hj_timer.cancel()
        super().connection_lost(exc)

    def _hj_check(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and cycle is not self._hj_seen:
            self._hj_seen = cycle  # answered: the next request's headers are awaited from now
            self._hj_phase_start = now
        waiting_headers = cycle is None or cycle.response_complete
        if waiting_headers and now - self._hj_phase_start > self.header_timeout:
            self.transport.close()
            return
        stalled = not waiting_headers and cycle.more_body and not self.flow.read_paused
        if stalled and now - self._hj_last_byte > self.body_idle_timeout:
            self.transport.close()
            return
        self._hj_timer = self.loop.call_later(CHECK_INTERVAL, self._hj_check)


def guarded_protocol(header_timeout: float, body_idle_timeout: float) -> type:
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {"header_timeout": header_timeout, "body_idle_timeout": body_idle_timeout},
    )
