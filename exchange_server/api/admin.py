"""Admin routes: accounts, tokens, release dates, the audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from exchange_server.api.deps import Admin, Cursor
from exchange_server.api.models import AccountBody, AccountUpdateBody, ReleaseBody, RevokeBody, TokenBody

router = APIRouter(prefix="/admin")


@router.post("/accounts", status_code=201)
async def create_account(body: AccountBody, me: Admin) -> dict:
    fields = (body.username, body.password, body.department, body.region_code, body.role)
    return await me.run(me.ex.create_account, *fields, body.display_name, body.unit, me.account)


@router.patch("/accounts/{username}")
async def update_account(username: str, body: AccountUpdateBody, me: Admin) -> dict:
    return await me.run(me.ex.update_account, username, body.disabled, body.password, me.account, body.role)


@router.get("/accounts")
async def list_accounts(me: Admin) -> dict:
    return {"items": await me.run(me.ex.list_accounts)}


@router.post("/tokens", status_code=201)
async def issue_token(body: TokenBody, me: Admin) -> dict:
    return await me.run(me.ex.issue_token, body.username, body.ttl_seconds, "admin", me.account)


@router.post("/tokens/revoke")
async def revoke_tokens(body: RevokeBody, me: Admin) -> dict:
    return {"revoked": await me.run(me.ex.revoke_tokens, body.username, None, me.account)}


@router.put("/releases")
async def set_release(body: ReleaseBody, me: Admin) -> dict:
    return await me.run(me.ex.set_release, body.dataset_id, body.year, body.release_date, me.account)


@router.get("/audit")
async def read_audit(
    me: Admin,
    action: str | None = None,
    after_id: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    unauthenticated: bool = False,
) -> dict:
    return {"items": await me.run(me.ex.audit_rows, action, after_id, limit, unauthenticated)}
