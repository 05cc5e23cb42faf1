"""Commits (online and offline registrations), submission lists and receipts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from exchange_server.api.deps import Me
from exchange_server.api.models import CommitBody, OfflineBody
from exchange_server.authz import require_role
from exchange_server.errors import ApiError

router = APIRouter(prefix="/submissions")
RECEIPT_KEYS = ("receipt", "signature", "key_fingerprint", "signature_algorithm")


def _answer(envelope: dict, created: bool) -> JSONResponse:
    return JSONResponse(
        envelope, status_code=201 if created else 200, headers={"X-Duplicate": str(not created)}
    )


@router.post("", status_code=201)
async def commit(body: CommitBody, me: Me) -> JSONResponse:
    # the upload's lock is taken by the service (shared by every worker process)
    args = (me.account, body.upload_id, body.package_sha256, body.manifest, me.ip)
    return _answer(*await me.run(me.ex.commit, *args))


@router.post("/offline", status_code=201)
async def register_offline(body: OfflineBody, me: Me) -> JSONResponse:
    if not body.offline:
        raise ApiError("REQUEST_INVALID", "offline must be true")
    args = (me.account, body.package_sha256, body.package_size, body.manifest, me.ip)
    return _answer(*await me.run(me.ex.register_offline, *args))


@router.get("")
async def list_submissions(
    me: Me, region: str | None = None, dataset_id: str | None = None, package_sha256: str | None = None
) -> dict:
    require_role(me.account, "reviewer", "submitter")
    return {"items": await me.run(me.ex.list_submissions, me.account, region, dataset_id, package_sha256)}


@router.get("/{submission_id}")
async def get_submission(submission_id: str, me: Me) -> dict:
    return await me.run(me.ex.get_submission, me.account, submission_id)


@router.get("/{submission_id}/receipt")
async def get_receipt(submission_id: str, me: Me) -> dict:
    sub = await me.run(me.ex.get_submission, me.account, submission_id)
    return {k: sub[k] for k in RECEIPT_KEYS}
