"""Login, logout, the own account, and the catalog a logged-in client reads."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from exchange_server.api.deps import Me, bearer_token, client_ip, exchange
from exchange_server.api.models import LoginBody
from exchange_server.services import Exchange, account_public

router = APIRouter()


@router.post("/auth/token")
def login(body: LoginBody, request: Request, ex: Exchange = Depends(exchange)) -> dict:
    return ex.login(body.username, body.password, body.ttl_seconds, client_ip(request))


@router.post("/auth/revoke", status_code=204)
async def revoke_own(request: Request, me: Me) -> Response:
    await me.run(me.ex.revoke_tokens, me.account["username"], bearer_token(request), me.account)
    return Response(status_code=204)


@router.get("/auth/me")
async def me(caller: Me) -> dict:
    return account_public(caller.account)


@router.get("/catalog")
async def catalog(me: Me) -> dict:
    items = []
    for ds in sorted(me.ex.catalog.datasets.values(), key=lambda d: d.id):
        item = ds.to_json()
        item["submit_departments"] = list(me.ex.catalog.submit_departments(ds.id))
        items.append(item)
    return {"datasets": items}
