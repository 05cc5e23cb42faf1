"""Versions: lists, history, latest, one version, its manifest and its download (Range, ETag)."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from exchange_server.api.deps import Cursor, Id, Me, normalise_region
from exchange_server.authz import check_read_version
from exchange_server.errors import ApiError

DOWNLOAD_CHUNK = 1024 * 1024
router = APIRouter()


@router.get("/versions")
async def list_versions(
    me: Me,
    dataset_id: str | None = None,
    region: str | None = None,
    period: str | None = None,
    latest: bool = False,
    after: Cursor = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict:
    """Paged by version id (``after``, ``limit``; ``next_after`` continues, null at the end); ``latest``
    lists the newest version per dataset, region and period, unpaged."""
    if latest:
        items = await me.run(me.ex.list_versions, me.account, dataset_id, region, period, True)
        return {"items": items, "next_after": None}
    page = (after, limit)
    items, end = await me.run(me.ex.list_versions, me.account, dataset_id, region, period, False, False, page)
    return {"items": items, "next_after": end}


async def region_series(dataset_id: str, region: str, me: Me, period: str | None = None) -> list[dict]:
    """The versions of one dataset in exactly one region (one period, or all), oldest first."""
    region = normalise_region(region)
    return await me.run(me.ex.list_versions, me.account, dataset_id, region, period, False, True)


@router.get("/datasets/{dataset_id}/regions/{region}/versions")
async def history(items: list[dict] = Depends(region_series)) -> dict:
    return {"items": items}


@router.get("/datasets/{dataset_id}/regions/{region}/latest")
async def latest(
    dataset_id: str,
    region: str,
    me: Me,
    period: str | None = None,
    items: list[dict] = Depends(region_series),
) -> dict:
    if not items:
        dept = me.ex.catalog.get(dataset_id).department if me.ex.catalog.get(dataset_id) else ""
        check_read_version(me.account, me.ex.catalog, dataset_id, dept, normalise_region(region))
        raise ApiError("NOT_FOUND")
    if period is None:
        items.sort(key=lambda v: (v["period"][:4], v["created_at"], v["version_id"]))
    return items[-1]


@router.get("/versions/{version_id}")
async def get_version(version_id: Id, me: Me) -> dict:
    return me.ex.version_public(await me.run(me.ex.get_version, me.account, version_id))


@router.get("/versions/{version_id}/manifest")
async def get_version_manifest(version_id: Id, me: Me) -> dict:
    return await me.run(me.ex.version_manifest, me.account, version_id)


@router.get("/versions/{version_id}/download")
async def download(version_id: Id, request: Request, me: Me) -> Response:
    try:
        row = await me.run(me.ex.get_version, me.account, version_id)
    except ApiError as err:
        detail = {"code": err.code}
        await me.run(me.ex.audit, "download", "refused", me.account, f"version:{version_id}", detail, me.ip)
        raise
    etag = '"{}"'.format(row["package_sha256"])
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-transform"}
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        return Response(status_code=304, headers=headers)
    path = me.ex.config.data_dir / row["path"]
    size = row["size"]
    start, end, status = 0, size - 1, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and (not if_range or if_range.strip() == etag):
        parsed = parse_range(range_header, size)
        if parsed is None:
            raise ApiError("RANGE_NOT_SATISFIABLE", headers={"Content-Range": f"bytes */{size}"})
        start, end = parsed
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Disposition"] = 'attachment; filename="{}_{}_{}_v{}.zip"'.format(
        row["dataset_id"], row["region_code"], row["period"], row["version_no"]
    )
    detail = {"range": [start, end], "status": status}
    await me.run(me.ex.audit, "download", "ok", me.account, f"version:{version_id}", detail, me.ip)

    def body():
        with path.open("rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                block = fh.read(min(DOWNLOAD_CHUNK, left))
                if not block:
                    break
                left -= len(block)
                yield block

    return StreamingResponse(body(), status_code=status, headers=headers, media_type="application/zip")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec or size == 0:
        return None
    first, _, last = spec.strip().partition("-")
    with contextlib.suppress(ValueError):
        if first == "":
            n = int(last)
            return (max(0, size - n), size - 1) if n > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
        if start >= size or end < start:
            return None
        return start, min(end, size - 1)
    return None
