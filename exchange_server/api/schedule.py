"""Release dates, deadlines and the evaluation."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from exchange_server.api.deps import Me, RegionYear, Year, region_year

router = APIRouter()


@router.get("/releases")
async def releases(me: Me, year: Year = None) -> dict:
    return {"items": await me.run(me.ex.list_releases, year)}


@router.get("/deadlines")
async def deadlines(scope: RegionYear = Depends(region_year())) -> dict:
    me = scope.me
    items = await me.run(me.ex.obligations, scope.region, scope.year, scope.day)
    return {"region_code": scope.region, "year": scope.year, "as_of": scope.day.isoformat(), "items": items}


@router.get("/evaluation")
async def evaluation(scope: RegionYear = Depends(region_year("reviewer"))) -> dict:
    return await scope.me.run(scope.me.ex.evaluation, scope.region, scope.year, scope.day)
