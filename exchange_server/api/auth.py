"""Login, logout, the own account, and the catalog a logged-in client reads."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from exchange_server.api.deps import bearer_token, client_ip, current_account, exchange
from exchange_server.api.models import LoginBody
from exchange_server.services import Exchange, account_public

router = APIRouter()


@router.post("/auth/token")
def login(body: LoginBody, request: Request, ex: Exchange = Depends(exchange)) -> dict:
    return ex.login(body.username, body.password, body.ttl_seconds, client_ip(request))


@router.post("/auth/revoke", status_code=204)
async def revoke_own(
    request: Request, account: dict = Depends(current_account), ex: Exchange = Depends(exchange)
) -> Response:
    await run_in_threadpool(ex.revoke_tokens, account["username"], bearer_token(request), account)
    return Response(status_code=204)


@router.get("/auth/me")
async def me(account: dict = Depends(current_account)) -> dict:
    return account_public(account)


@router.get("/catalog")
async def catalog(_account: dict = Depends(current_account), ex: Exchange = Depends(exchange)) -> dict:
    items = []
    for ds in sorted(ex.catalog.datasets.values(), key=lambda d: d.id):
        item = ds.to_json()
        item["submit_departments"] = list(ex.catalog.submit_departments(ds.id))
        items.append(item)
    return {"datasets": items}
