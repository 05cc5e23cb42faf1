"""Admin routes: accounts, tokens, release dates, the audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from exchange_server.api.deps import Cursor, admin_account, exchange
from exchange_server.api.models import AccountBody, AccountUpdateBody, ReleaseBody, RevokeBody, TokenBody
from exchange_server.services import Exchange

router = APIRouter(prefix="/admin")


@router.post("/accounts", status_code=201)
async def create_account(
    body: AccountBody, actor: dict = Depends(admin_account), ex: Exchange = Depends(exchange)
) -> dict:
    return await run_in_threadpool(
        ex.create_account,
        body.username,
        body.password,
        body.department,
        body.region_code,
        body.role,
        body.display_name,
        body.unit,
        actor,
    )


@router.patch("/accounts/{username}")
async def update_account(
    username: str,
    body: AccountUpdateBody,
    actor: dict = Depends(admin_account),
    ex: Exchange = Depends(exchange),
) -> dict:
    return await run_in_threadpool(
        ex.update_account, username, body.disabled, body.password, actor, body.role
    )


@router.get("/accounts")
async def list_accounts(_actor: dict = Depends(admin_account), ex: Exchange = Depends(exchange)) -> dict:
    return {"items": await run_in_threadpool(ex.list_accounts)}


@router.post("/tokens", status_code=201)
async def issue_token(
    body: TokenBody, actor: dict = Depends(admin_account), ex: Exchange = Depends(exchange)
) -> dict:
    return await run_in_threadpool(ex.issue_token, body.username, body.ttl_seconds, "admin", actor)


@router.post("/tokens/revoke")
async def revoke_tokens(
    body: RevokeBody, actor: dict = Depends(admin_account), ex: Exchange = Depends(exchange)
) -> dict:
    return {"revoked": await run_in_threadpool(ex.revoke_tokens, body.username, None, actor)}


@router.put("/releases")
async def set_release(
    body: ReleaseBody, actor: dict = Depends(admin_account), ex: Exchange = Depends(exchange)
) -> dict:
    return await run_in_threadpool(ex.set_release, body.dataset_id, body.year, body.release_date, actor)


@router.get("/audit")
async def read_audit(
    action: str | None = None,
    after_id: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    _actor: dict = Depends(admin_account),
    ex: Exchange = Depends(exchange),
) -> dict:
    return {"items": await run_in_threadpool(ex.audit_rows, action, after_id, limit)}
