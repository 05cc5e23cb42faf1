"""The feed: new versions since a cursor, with long polling."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request

from exchange_server.api.deps import Cursor, Me

router = APIRouter()


@router.get("/feed")
async def feed(
    request: Request,
    me: Me,
    cursor: Cursor = 0,
    wait: Annotated[float, Query(ge=0, le=3600, allow_inf_nan=False)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    wait = max(0.0, min(float(wait), float(me.ex.config.feed_max_wait)))
    limit = max(1, min(limit, 1000))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        result = await me.run(me.ex.feed, me.account, cursor, limit)
        if result["items"] or loop.time() >= deadline or await request.is_disconnected():
            return result
        cursor = result["next_cursor"]
        await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))
