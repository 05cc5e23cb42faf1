"""Release dates, deadlines and the evaluation."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from exchange_server.api import deps
from exchange_server.api.deps import Year, current_account, exchange
from exchange_server.authz import require_region, require_role
from exchange_server.services import Exchange

router = APIRouter()


@router.get("/releases")
async def releases(
    year: Year = None, _account: dict = Depends(current_account), ex: Exchange = Depends(exchange)
) -> dict:
    return {"items": await run_in_threadpool(ex.list_releases, year)}


@router.get("/deadlines")
async def deadlines(
    year: Year = None,
    region: str | None = None,
    as_of: str | None = None,
    account: dict = Depends(current_account),
    ex: Exchange = Depends(exchange),
) -> dict:
    year = year or deps.as_of(as_of).year
    reg = deps.region(region) if region else account["region_code"]
    require_region(account, reg)
    day = deps.as_of(as_of)
    items = await run_in_threadpool(ex.obligations, reg, year, day)
    return {"region_code": reg, "year": year, "as_of": day.isoformat(), "items": items}


@router.get("/evaluation")
async def evaluation(
    year: Year = None,
    region: str | None = None,
    as_of: str | None = None,
    account: dict = Depends(current_account),
    ex: Exchange = Depends(exchange),
) -> dict:
    year = year or deps.as_of(as_of).year
    require_role(account, "reviewer")
    reg = deps.region(region) if region else account["region_code"]
    require_region(account, reg)
    return await run_in_threadpool(ex.evaluation, reg, year, deps.as_of(as_of))
