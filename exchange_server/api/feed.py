"""The feed: new versions since a cursor, with long polling."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from exchange_server.api.deps import Cursor, current_account, exchange
from exchange_server.services import Exchange

router = APIRouter()


@router.get("/feed")
async def feed(
    request: Request,
    cursor: Cursor = 0,
    wait: Annotated[float, Query(ge=0, le=3600, allow_inf_nan=False)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    account: dict = Depends(current_account),
    ex: Exchange = Depends(exchange),
) -> dict:
    wait = max(0.0, min(float(wait), float(ex.config.feed_max_wait)))
    limit = max(1, min(limit, 1000))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        result = await run_in_threadpool(ex.feed, account, cursor, limit)
        if result["items"] or loop.time() >= deadline or await request.is_disconnected():
            return result
        cursor = result["next_cursor"]
        await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))
