"""Dependencies shared by the routers: the caller (the exchange, the authenticated account, its address) as
``Me`` / ``Admin`` / ``TusMe``, the region and year a schedule route reads, and small parsers of query
values."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from exchange_server.authz import require_region, require_role
from exchange_server.errors import ApiError
from exchange_server.regions import RegionCodeError, normalise
from exchange_server.services import CHINA_TZ, Exchange

TUS_VERSION = "1.0.0"
# bounds of query and path values: the database's integers, the calendar the deadlines are computed in
MAX_ID = 2**31 - 1  # the id columns are INTEGER (32-bit on PostgreSQL)
YEAR_MIN, YEAR_MAX = 1990, 2200
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Cursor = Annotated[int, Query(ge=0, le=MAX_ID)]
Year = Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)]
TUS_HEADERS = {"Tus-Resumable": TUS_VERSION}


def exchange(request: Request) -> Exchange:
    return request.app.state.exchange


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


async def current_account(request: Request) -> dict:
    """The account of the request's bearer token (401 without a valid one); the request gate has already
    checked the token of a request with a body."""
    account = request.scope.get("state", {}).get("account")
    if account is not None:
        return account
    ex = exchange(request)
    return await run_in_threadpool(ex.authenticate, bearer_token(request), client_ip(request))


async def admin_account(request: Request) -> dict:
    """The account, which must be an admin (a refusal is audited)."""
    account = await current_account(request)
    if account["role"] != "admin":
        ex = exchange(request)
        detail = {"code": "FORBIDDEN_ROLE"}
        await run_in_threadpool(
            ex.audit, "admin", "refused", account, request.url.path, detail, client_ip(request)
        )
        raise ApiError("FORBIDDEN_ROLE", account["role"])
    return account


def check_tus(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version is not None and version != TUS_VERSION:
        raise ApiError("TUS_VERSION", headers={"Tus-Version": TUS_VERSION})


@dataclass(frozen=True)
class Caller:
    """Who calls (the authenticated account) from where, and the exchange the route works on."""

    ex: Exchange
    account: dict
    ip: str

    async def run(self, method: Callable[..., Any], *args: Any) -> Any:
        """A service method, in the thread pool (the services are synchronous)."""
        return await run_in_threadpool(method, *args)


async def caller(request: Request) -> Caller:
    return Caller(exchange(request), await current_account(request), client_ip(request))


async def admin_caller(request: Request) -> Caller:
    return Caller(exchange(request), await admin_account(request), client_ip(request))


async def tus_caller(request: Request) -> Caller:
    """A tus request: the protocol version first, then the account."""
    check_tus(request)
    return await caller(request)


Me = Annotated[Caller, Depends(caller)]
Admin = Annotated[Caller, Depends(admin_caller)]
TusMe = Annotated[Caller, Depends(tus_caller)]


@dataclass(frozen=True)
class RegionYear:
    """The region (the caller's own by default, checked against its area) and the year a schedule route reads,
    as of a day (today in China by default)."""

    me: Caller
    region: str
    year: int
    day: dt.date


def region_year(*roles: str) -> Callable[..., Any]:
    """A dependency giving the RegionYear of a request; with ``roles``, the caller must have one of them."""

    async def scope(
        me: Me, year: Year = None, region: str | None = None, as_of: str | None = None
    ) -> RegionYear:
        day = as_of_day(as_of)
        if roles:
            require_role(me.account, *roles)
        code = normalise_region(region) if region else me.account["region_code"]
        require_region(me.account, code)
        return RegionYear(me, code, year or day.year, day)

    return scope


def http_date(value: dt.datetime) -> str:
    return email.utils.format_datetime(value.astimezone(dt.timezone.utc), usegmt=True)


def as_of_day(value: str | None) -> dt.date:
    if value:
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise ApiError("REQUEST_INVALID", "as_of")
        if not YEAR_MIN <= day.year <= YEAR_MAX:
            raise ApiError("REQUEST_INVALID", "as_of")
        return day
    return dt.datetime.now(CHINA_TZ).date()


def normalise_region(value: str) -> str:
    try:
        return normalise(value)
    except RegionCodeError:
        raise ApiError("REGION_INVALID", value)
