"""tus 1.0.0 uploads: OPTIONS, create, HEAD/GET status, PATCH, DELETE."""

from __future__ import annotations

import base64
import binascii
import hashlib

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from exchange_server import API_PREFIX
from exchange_server.api.deps import TUS_HEADERS, TUS_VERSION, Me, TusMe, exchange, http_date
from exchange_server.authz import require_role
from exchange_server.errors import ApiError
from exchange_server.services import Exchange, iso

# checksum-prefix: the huijiao extension ``Upload-Prefix-Checksum`` (docs/exchange-protocol.md, section 5)
TUS_EXTENSIONS = "creation,checksum,checksum-prefix,termination,expiration"
# Upload-Checksum algorithms: the tus checksum extension requires sha1 of every server
CHUNK_ALGORITHMS = ("sha1", "sha256")
router = APIRouter(prefix="/uploads")


@router.options("")
@router.options("/{upload_id}")
def tus_options(upload_id: str | None = None, ex: Exchange = Depends(exchange)) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(ex.config.max_upload_size),
            "Tus-Checksum-Algorithm": ",".join(CHUNK_ALGORITHMS),
        },
    )


@router.post("", status_code=201)
async def tus_create(request: Request, me: TusMe) -> Response:
    require_role(me.account, "submitter")
    if request.headers.get("upload-defer-length"):
        raise ApiError("REQUEST_INVALID", "Upload-Defer-Length is not supported")
    try:
        length = int(request.headers.get("upload-length", ""))
        if length < 0:
            raise ValueError
    except ValueError:
        raise ApiError("REQUEST_INVALID", "Upload-Length")
    meta = parse_metadata(request.headers.get("upload-metadata"))
    row = await me.run(me.ex.create_upload, me.account, length, meta, me.ip)
    return Response(
        status_code=201,
        headers={
            **TUS_HEADERS,
            "Location": "{}/uploads/{}".format(API_PREFIX, row["id"]),
            "Upload-Expires": http_date(row["expires_at"]),
            "Upload-Offset": str(row["offset"]),
        },
    )


@router.head("/{upload_id}")
async def tus_head(upload_id: str, me: TusMe) -> Response:
    row = await me.run(me.ex.get_upload, me.account, upload_id)
    headers = {
        **TUS_HEADERS,
        "Upload-Offset": str(row["offset"]),
        "Upload-Length": str(row["length"]),
        "Cache-Control": "no-store",
        "Upload-Expires": http_date(row["expires_at"]),
    }
    if row["sha256"]:
        headers["Upload-Sha256"] = row["sha256"]
    return Response(status_code=200, headers=headers)


@router.get("/{upload_id}")
async def upload_status(upload_id: str, me: Me) -> dict:
    row = await me.run(me.ex.get_upload, me.account, upload_id)
    return {
        "upload_id": row["id"],
        "offset": row["offset"],
        "length": row["length"],
        "state": row["state"],
        "sha256": row["sha256"],
        "expires_at": iso(row["expires_at"]),
    }


@router.patch("/{upload_id}")
async def tus_patch(upload_id: str, request: Request, me: TusMe) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/offset+octet-stream":
        raise ApiError("CONTENT_TYPE")
    try:
        client_offset = int(request.headers.get("upload-offset", ""))
    except ValueError:
        raise ApiError("REQUEST_INVALID", "Upload-Offset")
    expected_digest = checksum_header(request, "Upload-Checksum", CHUNK_ALGORITHMS)
    prefix = checksum_header(request, "Upload-Prefix-Checksum", ("sha256",))
    prefix_digest = prefix[1] if prefix is not None else None
    uploads = request.app.state.uploads
    async with uploads.lock(upload_id):
        row = await me.run(me.ex.get_upload, me.account, upload_id)
        if row["state"] != "active":
            raise ApiError(
                "UPLOAD_ALREADY_COMMITTED" if row["state"] == "committed" else "UPLOAD_OFFSET_MISMATCH"
            )
        offset, length = row["offset"], row["length"]
        if client_offset != offset:
            raise ApiError("UPLOAD_OFFSET_MISMATCH", f"server offset {offset}")
        result = await uploads.receive(
            upload_id, request, me.account, me.ip, offset, length, expected_digest, prefix_digest
        )
    return Response(status_code=204, headers={**TUS_HEADERS, "Upload-Offset": str(result)})


@router.delete("/{upload_id}", status_code=204)
async def tus_delete(upload_id: str, request: Request, me: TusMe) -> Response:
    uploads = request.app.state.uploads
    async with uploads.lock(upload_id):
        await me.run(me.ex.terminate_upload, me.account, upload_id, me.ip)
    uploads.running_hash.pop(upload_id, None)
    return Response(status_code=204, headers=TUS_HEADERS)


def parse_metadata(header: str | None) -> dict[str, str]:
    meta: dict[str, str] = {}
    for part in (header or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition(" ")
        try:
            meta[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError("REQUEST_INVALID", "Upload-Metadata")
    return meta


def checksum_header(request: Request, name: str, algorithms: tuple[str, ...]) -> tuple[str, bytes] | None:
    """(algorithm, digest) of a ``<name>: <algorithm> <base64>`` header, None when the header is absent."""
    value = request.headers.get(name)
    if not value:
        return None
    algo, _, encoded = value.strip().partition(" ")
    algo = algo.lower()
    if algo not in algorithms:
        raise ApiError("CHECKSUM_ALGORITHM", algo[:20])
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise ApiError("REQUEST_INVALID", name)
    if len(digest) != hashlib.new(algo).digest_size:
        raise ApiError("REQUEST_INVALID", name)
    return algo, digest
