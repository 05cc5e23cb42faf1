"""The FastAPI application: routers under /api/v1 (exchange_server/api/), error handlers, the expiry loop."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from exchange_server import API_PREFIX, __version__
from exchange_server.api import admin, auth, feed, public, schedule, submissions, uploads, versions
from exchange_server.api.deps import TUS_HEADERS
from exchange_server.api.limits import RequestGate
from exchange_server.api.upload_io import UploadReceiver
from exchange_server.errors import ApiError
from exchange_server.services import Exchange

LOG = logging.getLogger(__name__)
ROUTERS = (public, auth, uploads, submissions, versions, feed, schedule, admin)


def create_app(ex: Exchange) -> FastAPI:
    app = FastAPI(
        title="汇交联动 exchange server",
        version=__version__,
        description="Reference server of the Shaanxi farmland data exchange (docs/exchange-protocol.md).",
        openapi_url=API_PREFIX + "/openapi.json",
        docs_url=API_PREFIX + "/docs",
        redoc_url=None,
    )
    app.state.exchange = ex
    app.state.uploads = UploadReceiver(ex)
    for module in ROUTERS:
        app.include_router(module.router, prefix=API_PREFIX)
    app.add_middleware(RequestGate, ex=ex)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        headers.update(TUS_HEADERS)
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        err = ApiError("REQUEST_INVALID", "; ".join(str(e.get("msg")) for e in exc.errors())[:300])
        return JSONResponse(err.body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:  # a streamed body passed its limit (api/limits.py)
            err = ApiError("BODY_TOO_LARGE")
            return JSONResponse(err.body(), status_code=413, headers={"Connection": "close"})
        code = "NOT_FOUND" if exc.status_code == 404 else "REQUEST_INVALID"
        err = ApiError(code, str(exc.detail))
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(OSError)
    async def _storage_fault(request: Request, exc: OSError) -> JSONResponse:
        # a fault of the server's storage (disk full, I/O error): transient, told without paths or errno text
        LOG.error("storage fault on %s %s: %r", request.method, request.url.path, exc)
        return _transient("STORAGE_UNAVAILABLE")

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # a value the database cannot hold (a NUL byte in a text, a number out of the column's range): the
        # request's fault, told without the database's message
        LOG.info("database refused a value on %s %s: %r", request.method, request.url.path, exc)
        err = ApiError("REQUEST_INVALID")
        return JSONResponse(err.body(), status_code=err.status, headers=TUS_HEADERS)

    @app.exception_handler(OperationalError)
    @app.exception_handler(SqlTimeoutError)
    async def _database_fault(request: Request, exc: Exception) -> JSONResponse:
        # database locked or busy, lock or statement time-out, connection lost: transient
        LOG.error("database fault on %s %s: %r", request.method, request.url.path, exc)
        return _transient("DATABASE_BUSY")

    @app.on_event("startup")
    async def _start_cleanup() -> None:
        async def loop() -> None:
            while True:
                try:
                    n = await run_in_threadpool(ex.cleanup_expired)
                    if n:
                        LOG.info("expired %d uploads", n)
                except Exception:  # noqa: BLE001 - keep the cleanup loop alive
                    LOG.exception("upload cleanup failed")
                await asyncio.sleep(ex.config.cleanup_interval_seconds)

        app.state.cleanup_task = asyncio.create_task(loop())

    return app


def _transient(code: str) -> JSONResponse:
    err = ApiError(code)
    return JSONResponse(err.body(), status_code=err.status, headers={**err.headers, **TUS_HEADERS})
