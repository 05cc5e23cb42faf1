"""The request gate (ASGI, in front of the routing): body-size limits per route decided from the headers
before any byte of the body is read, counted again while a body streams (chunked), and the bearer token
checked before a JSON body is read. FastAPI reads and parses a body before it runs a route's dependencies,
so both checks live here; the account found is handed to ``deps.current_account`` through the scope."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from exchange_server import API_PREFIX
from exchange_server.api.deps import TUS_HEADERS, TUS_VERSION
from exchange_server.errors import ApiError
from exchange_server.services import Exchange

LOG = logging.getLogger(__name__)

# routes reachable without a token (everything else under the prefix needs one)
PUBLIC = {"/health", "/server-key", "/errors", "/openapi.json", "/docs", "/auth/token"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
# A refused request whose declared body is at most this large is read (and dropped) before the answer: a
# server that closes with the client's bytes unread makes the kernel reset the connection, and the client
# sees "connection reset" instead of the 413 / 401. Larger bodies are refused unread (Connection: close).
DRAIN_MAX = 4 * 1024 * 1024
DRAIN_SECONDS = 15.0


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit (an HTTPException, so that FastAPI's body
    reading passes it on instead of turning it into a 400)."""

    def __init__(self) -> None:
        super().__init__(413, "BODY_TOO_LARGE")


def _error(err: ApiError, close: bool) -> JSONResponse:
    headers = {**err.headers, **TUS_HEADERS}
    if err.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if close:  # the body was not read: the connection cannot carry another request
        headers["Connection"] = "close"
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


class RequestGate:
    def __init__(self, app: Any, ex: Exchange) -> None:
        self.app = app
        self.ex = ex

    def limit(self, method: str, path: str) -> int:
        cfg = self.ex.config
        if method == "PATCH" and path.startswith("/uploads/"):
            return cfg.max_chunk_size or cfg.max_upload_size
        if method in BODY_METHODS:
            return cfg.max_json_body
        return 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path = scope["path"][len(API_PREFIX) :]
        headers = dict(scope["headers"])
        limit = self.limit(method, path)
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
                if size < 0:
                    raise ValueError
            except ValueError:
                await _error(ApiError("REQUEST_INVALID", "Content-Length"), True)(scope, receive, send)
                return
            if size > limit:
                await _refuse(ApiError("BODY_TOO_LARGE", f"max {limit} bytes"), size, scope, receive, send)
                return
        if method in BODY_METHODS and path not in PUBLIC and self._tus_ok(headers):
            raw = headers.get(b"authorization", b"").decode("latin-1")
            token = raw[7:].strip() if raw.lower().startswith("bearer ") else None
            ip = scope["client"][0] if scope.get("client") else ""
            try:
                account = await run_in_threadpool(self.ex.authenticate, token, ip)
            except ApiError as err:
                size = int(declared) if declared is not None else None
                await _refuse(err, size, scope, receive, send)
                return
            except (OperationalError, SqlTimeoutError) as exc:
                # outside the app's handlers: a database fault here is transient (503) as everywhere else
                LOG.error("database fault checking a token on %s %s: %r", method, path, exc)
                await _error(ApiError("DATABASE_BUSY"), True)(scope, receive, send)
                return
            scope.setdefault("state", {})["account"] = account
        await self.app(scope, _counting(receive, limit), send)

    @staticmethod
    def _tus_ok(headers: dict) -> bool:
        """A wrong tus version is the route's to answer (412), before the token."""
        version = headers.get(b"tus-resumable")
        return version is None or version.decode("latin-1") == TUS_VERSION


async def _refuse(err: ApiError, size: int | None, scope: dict, receive: Any, send: Any) -> None:
    """Answer ``err`` to a request whose body was not read: a declared body of at most ``DRAIN_MAX`` bytes
    is read and dropped first (the connection then stays usable), anything else is refused unread."""
    drained = size is not None and size <= DRAIN_MAX and await _drained(receive, size)
    await _error(err, not drained)(scope, receive, send)


async def _drained(receive: Any, size: int) -> bool:
    """Read and drop a body of ``size`` declared bytes; False when the client stops, sends more than it
    declared or takes longer than ``DRAIN_SECONDS``."""

    async def drain() -> bool:
        got = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False
            got += len(message.get("body", b""))
            if got > size:
                return False
            if not message.get("more_body", False):
                return True

    try:
        return await asyncio.wait_for(drain(), DRAIN_SECONDS)
    except asyncio.TimeoutError:
        return False


def _counting(receive: Any, limit: int) -> Any:
    received = 0

    async def wrapped() -> dict:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge()
        return message

    return wrapped
