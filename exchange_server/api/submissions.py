"""Commits (online and offline registrations), submission lists and receipts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from exchange_server.api.deps import client_ip, current_account, exchange
from exchange_server.api.models import CommitBody, OfflineBody
from exchange_server.authz import require_role
from exchange_server.errors import ApiError
from exchange_server.services import Exchange

router = APIRouter(prefix="/submissions")


def _answer(envelope: dict, created: bool) -> JSONResponse:
    return JSONResponse(
        envelope, status_code=201 if created else 200, headers={"X-Duplicate": str(not created)}
    )


@router.post("", status_code=201)
async def commit(
    body: CommitBody,
    request: Request,
    account: dict = Depends(current_account),
    ex: Exchange = Depends(exchange),
) -> JSONResponse:
    envelope, created = await run_in_threadpool(  # the upload's lock is held by the service
        ex.commit, account, body.upload_id, body.package_sha256, body.manifest, client_ip(request)
    )
    return _answer(envelope, created)


@router.post("/offline", status_code=201)
async def register_offline(
    body: OfflineBody,
    request: Request,
    account: dict = Depends(current_account),
    ex: Exchange = Depends(exchange),
) -> JSONResponse:
    if not body.offline:
        raise ApiError("REQUEST_INVALID", "offline must be true")
    envelope, created = await run_in_threadpool(
        ex.register_offline,
        account,
        body.package_sha256,
        body.package_size,
        body.manifest,
        client_ip(request),
    )
    return _answer(envelope, created)


@router.get("")
async def list_submissions(
    region: str | None = None,
    dataset_id: str | None = None,
    package_sha256: str | None = None,
    account: dict = Depends(current_account),
    ex: Exchange = Depends(exchange),
) -> dict:
    require_role(account, "reviewer", "submitter")
    items = await run_in_threadpool(ex.list_submissions, account, region, dataset_id, package_sha256)
    return {"items": items}


@router.get("/{submission_id}")
async def get_submission(
    submission_id: str, account: dict = Depends(current_account), ex: Exchange = Depends(exchange)
) -> dict:
    return await run_in_threadpool(ex.get_submission, account, submission_id)


@router.get("/{submission_id}/receipt")
async def get_receipt(
    submission_id: str, account: dict = Depends(current_account), ex: Exchange = Depends(exchange)
) -> dict:
    sub = await run_in_threadpool(ex.get_submission, account, submission_id)
    return {k: sub[k] for k in ("receipt", "signature", "key_fingerprint", "signature_algorithm")}
