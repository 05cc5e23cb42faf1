"""HTTP layer: FastAPI routes under /api/v1 (tus uploads, commits, versions, feed, deadlines, evaluation)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import concurrent.futures
import contextlib
import datetime as dt
import email.utils
import errno
import functools
import hashlib
import logging
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from exchange_server import API_PREFIX, __version__, platform
from exchange_server.authz import check_read_version, require_region, require_role
from exchange_server.errors import ERRORS, ApiError
from exchange_server.regions import RegionCodeError, normalise
from exchange_server.service import CHINA_TZ, Exchange, account_public, iso

LOG = logging.getLogger(__name__)
TUS_VERSION = "1.0.0"
# checksum-prefix: the huijiao extension ``Upload-Prefix-Checksum`` (docs/exchange-protocol.md, section 5)
TUS_EXTENSIONS = "creation,checksum,checksum-prefix,termination,expiration"
DOWNLOAD_CHUNK = 1024 * 1024
# received bytes handed to the worker threads (write, hash) at a time
WRITE_BUFFER = 8 * 1024 * 1024
# buffers of one PATCH queued for writing and hashing while the next one arrives: an upload holds at most
# about (INFLIGHT + 1) * WRITE_BUFFER of received bytes in memory
INFLIGHT = 3
DIRECT_ALIGN = 4096


class LoginBody(BaseModel):
    username: str
    password: str
    ttl_seconds: int | None = None


class CommitBody(BaseModel):
    upload_id: str
    package_sha256: str
    manifest: dict[str, Any]


class OfflineBody(BaseModel):
    package_sha256: str
    package_size: int = 0
    manifest: dict[str, Any]
    offline: bool = True


class AccountBody(BaseModel):
    username: str
    password: str
    department: str
    region_code: str
    role: str
    display_name: str = ""
    unit: str = ""


class AccountUpdateBody(BaseModel):
    disabled: bool | None = None
    password: str | None = None


class TokenBody(BaseModel):
    username: str
    ttl_seconds: int | None = None


class RevokeBody(BaseModel):
    username: str


class ReleaseBody(BaseModel):
    dataset_id: str
    year: int = Field(ge=1990, le=2200)
    release_date: dt.date


def _http_date(value: dt.datetime) -> str:
    return email.utils.format_datetime(value.astimezone(dt.timezone.utc), usegmt=True)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _parse_metadata(header: str | None) -> dict[str, str]:
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


def _as_of(value: str | None) -> dt.date:
    if value:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ApiError("REQUEST_INVALID", "as_of")
    return dt.datetime.now(CHINA_TZ).date()


def _region(value: str) -> str:
    try:
        return normalise(value)
    except RegionCodeError:
        raise ApiError("REGION_INVALID", value)


def create_app(ex: Exchange) -> FastAPI:
    app = FastAPI(
        title="汇交联动 exchange server",
        version=__version__,
        description="Reference server of the Shaanxi farmland data exchange (docs/exchange-protocol.md).",
        openapi_url=API_PREFIX + "/openapi.json",
        docs_url=API_PREFIX + "/docs",
        redoc_url=None,
    )
    app.state.exchange = ex
    locks: dict[str, asyncio.Lock] = {}
    running_hash: dict[str, tuple[int, Any]] = {}
    staging: list[mmap.mmap] = []  # free page-aligned staging buffers, reused across PATCH requests
    tus_headers = {"Tus-Resumable": TUS_VERSION}

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        headers.update(tus_headers)
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        err = ApiError("REQUEST_INVALID", "; ".join(str(e.get("msg")) for e in exc.errors())[:300])
        return JSONResponse(err.body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "NOT_FOUND" if exc.status_code == 404 else "REQUEST_INVALID"
        err = ApiError(code, str(exc.detail))
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.on_event("startup")
    async def _start_cleanup() -> None:
        async def loop() -> None:
            while True:
                try:
                    n = await run_in_threadpool(ex.cleanup_expired)
                    if n:
                        LOG.info("expired %d uploads", n)
                except Exception:  # noqa: BLE001 - keep the cleanup loop alive
                    LOG.exception("upload cleanup failed")
                await asyncio.sleep(ex.config.cleanup_interval_seconds)

        app.state.cleanup_task = asyncio.create_task(loop())

    async def auth(request: Request) -> dict:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        return await run_in_threadpool(ex.authenticate, token, _client_ip(request))

    # --- public --------------------------------------------------------------------------------
    @app.get(API_PREFIX + "/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__, "server_time": iso(dt.datetime.now(dt.timezone.utc))}

    @app.get(API_PREFIX + "/server-key")
    def server_key() -> dict:
        return {
            "algorithm": "Ed25519",
            "public_key": ex.signer.public_b64,
            "encoding": "base64 of the 32-byte raw public key",
            "fingerprint": ex.signer.fingerprint,
            "canonicalisation": "JSON, keys sorted, separators (',', ':'), UTF-8, non-ASCII not escaped",
        }

    # --- auth ----------------------------------------------------------------------------------
    @app.post(API_PREFIX + "/auth/token")
    def login(body: LoginBody, request: Request) -> dict:
        return ex.login(body.username, body.password, body.ttl_seconds, _client_ip(request))

    @app.post(API_PREFIX + "/auth/revoke", status_code=204)
    async def revoke_own(request: Request) -> Response:
        account = await auth(request)
        token = request.headers["authorization"][7:].strip()
        await run_in_threadpool(ex.revoke_tokens, account["username"], token, account)
        return Response(status_code=204)

    @app.get(API_PREFIX + "/auth/me")
    async def me(request: Request) -> dict:
        return account_public(await auth(request))

    @app.get(API_PREFIX + "/catalog")
    async def catalog(request: Request) -> dict:
        await auth(request)
        items = []
        for ds in sorted(ex.catalog.datasets.values(), key=lambda d: d.id):
            item = ds.to_json()
            item["submit_departments"] = list(ex.catalog.submit_departments(ds.id))
            items.append(item)
        return {"datasets": items}

    # --- tus uploads -----------------------------------------------------------------------------
    @app.options(API_PREFIX + "/uploads")
    @app.options(API_PREFIX + "/uploads/{upload_id}")
    def tus_options(upload_id: str | None = None) -> Response:
        return Response(
            status_code=204,
            headers={
                "Tus-Resumable": TUS_VERSION,
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(ex.config.max_upload_size),
                "Tus-Checksum-Algorithm": "sha256",
            },
        )

    def check_tus(request: Request) -> None:
        version = request.headers.get("tus-resumable")
        if version is not None and version != TUS_VERSION:
            raise ApiError("TUS_VERSION", headers={"Tus-Version": TUS_VERSION})

    @app.post(API_PREFIX + "/uploads", status_code=201)
    async def tus_create(request: Request) -> Response:
        check_tus(request)
        account = await auth(request)
        require_role(account, "submitter")
        if request.headers.get("upload-defer-length"):
            raise ApiError("REQUEST_INVALID", "Upload-Defer-Length is not supported")
        try:
            length = int(request.headers.get("upload-length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            raise ApiError("REQUEST_INVALID", "Upload-Length")
        meta = _parse_metadata(request.headers.get("upload-metadata"))
        row = await run_in_threadpool(ex.create_upload, account, length, meta, _client_ip(request))
        return Response(
            status_code=201,
            headers={
                **tus_headers,
                "Location": "{}/uploads/{}".format(API_PREFIX, row["id"]),
                "Upload-Expires": _http_date(row["expires_at"]),
                "Upload-Offset": str(row["offset"]),
            },
        )

    @app.head(API_PREFIX + "/uploads/{upload_id}")
    async def tus_head(upload_id: str, request: Request) -> Response:
        check_tus(request)
        account = await auth(request)
        row = await run_in_threadpool(ex.get_upload, account, upload_id)
        headers = {
            **tus_headers,
            "Upload-Offset": str(row["offset"]),
            "Upload-Length": str(row["length"]),
            "Cache-Control": "no-store",
            "Upload-Expires": _http_date(row["expires_at"]),
        }
        if row["sha256"]:
            headers["Upload-Sha256"] = row["sha256"]
        return Response(status_code=200, headers=headers)

    @app.get(API_PREFIX + "/uploads/{upload_id}")
    async def upload_status(upload_id: str, request: Request) -> dict:
        account = await auth(request)
        row = await run_in_threadpool(ex.get_upload, account, upload_id)
        return {
            "upload_id": row["id"],
            "offset": row["offset"],
            "length": row["length"],
            "state": row["state"],
            "sha256": row["sha256"],
            "expires_at": iso(row["expires_at"]),
        }

    @app.patch(API_PREFIX + "/uploads/{upload_id}")
    async def tus_patch(upload_id: str, request: Request) -> Response:
        check_tus(request)
        account = await auth(request)
        ip = _client_ip(request)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/offset+octet-stream":
            raise ApiError("CONTENT_TYPE")
        try:
            client_offset = int(request.headers.get("upload-offset", ""))
        except ValueError:
            raise ApiError("REQUEST_INVALID", "Upload-Offset")
        expected_digest = _checksum_header(request, "Upload-Checksum")
        prefix_digest = _checksum_header(request, "Upload-Prefix-Checksum")
        lock = locks.setdefault(upload_id, asyncio.Lock())
        if lock.locked():
            raise ApiError("UPLOAD_LOCKED")
        async with lock:
            row = await run_in_threadpool(ex.get_upload, account, upload_id)
            if row["state"] != "active":
                raise ApiError(
                    "UPLOAD_ALREADY_COMMITTED" if row["state"] == "committed" else "UPLOAD_OFFSET_MISMATCH"
                )
            offset, length = row["offset"], row["length"]
            if client_offset != offset:
                raise ApiError("UPLOAD_OFFSET_MISMATCH", f"server offset {offset}")
            result = await _receive(
                upload_id, request, account, ip, offset, length, expected_digest, prefix_digest
            )
        return Response(status_code=204, headers={**tus_headers, "Upload-Offset": str(result)})

    async def _receive(
        upload_id, request, account, ip, offset, length, expected_digest, prefix_digest
    ) -> int:
        """Stream one PATCH body into the part file. With ``Upload-Checksum`` (the chunk's sha256) and/or
        ``Upload-Prefix-Checksum`` (the sha256 of bytes [0, end of this PATCH)) the PATCH is all or nothing:
        kept only when it arrived whole and every given digest matches."""
        LOG.debug("upload %s: receiving from %d", upload_id, offset)
        path = ex.upload_path(upload_id)
        chunk_hash = hashlib.sha256() if expected_digest is not None else None
        verified = expected_digest is not None or prefix_digest is not None
        prev = running_hash.pop(upload_id, None)
        whole = prev[1] if prev is not None and prev[0] == offset else None
        if whole is None and offset == 0:
            whole = hashlib.sha256()
        elif whole is None and prefix_digest is not None:
            # no running hash for this offset (server restarted, or the last PATCH was refused before the
            # state could be restored): rebuild it once from the bytes on disk
            LOG.info("upload %s: rebuilding the running sha256 of %d stored bytes", upload_id, offset)
            whole = await run_in_threadpool(_prefix_hash, path, offset)
        # the running hash as it was before this PATCH: restored when the PATCH is not kept
        start = whole.copy() if whole is not None else None
        writer = _PartWriter(path, offset, staging, ex.config.direct_io)
        fd = writer.fd
        position = offset  # bytes accepted (staged or written)
        synced = offset
        disconnected = False
        too_long = False
        # one single-thread lane per job (the write, each hash): a lane takes the staged buffers in order, the
        # lanes run in parallel, each with one call per buffer that releases the GIL for its whole length
        # (hashing the received ~256 KiB blocks one by one had the hash thread wait for the GIL between
        # blocks: measured 40-65 % over its CPU time), and the receiving goes on meanwhile
        jobs = [writer.write] + [
            functools.partial(_update_hash, h) for h in (chunk_hash, whole) if h is not None
        ]
        lanes = [ThreadPoolExecutor(1, thread_name_prefix="upload-" + upload_id[:8]) for _ in jobs]
        inflight: collections.deque[tuple[_Batch, list[concurrent.futures.Future]]] = collections.deque()

        async def drain(keep: int = 0) -> None:
            """Wait until at most ``keep`` buffers are still being written or hashed."""
            while len(inflight) > keep:
                batch, futures = inflight[0]
                for future in futures:
                    await asyncio.wrap_future(future)
                inflight.popleft()
                writer.release(batch)

        async def submit(batch: _Batch) -> None:
            inflight.append((batch, [lane.submit(job, batch) for lane, job in zip(lanes, jobs)]))
            await drain(INFLIGHT)

        syncing: list = []

        async def sync_to(pos: int) -> None:
            await run_in_threadpool(os.fsync, fd)
            await run_in_threadpool(ex.set_offset, upload_id, pos, None, account, ip)

        async def flush() -> None:
            """Hand the partly filled staging buffer to the lanes and wait until everything is written."""
            batch = writer.take()
            if batch is not None:
                await submit(batch)
            await drain()

        try:
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            try:
                async for block in request.stream():
                    if not block:
                        continue
                    if position + len(block) > length:
                        too_long = True
                        break
                    position += len(block)
                    for batch in writer.append(block):  # full staging buffers
                        await submit(batch)
                    if not verified and position - synced >= ex.config.sync_every_bytes:
                        # fsync, then record the offset, in the background while the next bytes arrive
                        await flush()
                        if syncing:
                            await asyncio.gather(*syncing)
                            syncing.clear()
                        syncing.append(asyncio.ensure_future(sync_to(position)))
                        synced = position
            except ClientDisconnect:
                LOG.debug("upload %s: client disconnected at %d", upload_id, position)
                disconnected = True
            await flush()
            if syncing:
                await asyncio.gather(*syncing)
                syncing.clear()
            mismatch = (chunk_hash is not None and chunk_hash.digest() != expected_digest) or (
                prefix_digest is not None and whole.digest() != prefix_digest
            )
            if too_long or (verified and (disconnected or mismatch)):
                os.ftruncate(fd, offset)
                if start is not None:
                    running_hash[upload_id] = (offset, start)
                if too_long:
                    await run_in_threadpool(ex.set_offset, upload_id, offset, None, account, ip)
                    await run_in_threadpool(
                        ex.audit,
                        "upload.patch",
                        "refused",
                        account,
                        "upload:" + upload_id,
                        {"code": "UPLOAD_BEYOND_LENGTH"},
                        ip,
                    )
                    raise ApiError("UPLOAD_BEYOND_LENGTH")
                if not disconnected:
                    await run_in_threadpool(
                        ex.audit,
                        "upload.patch",
                        "refused",
                        account,
                        "upload:" + upload_id,
                        {"code": "CHECKSUM_MISMATCH", "offset": offset},
                        ip,
                    )
                    raise ApiError("CHECKSUM_MISMATCH", headers={"Upload-Offset": str(offset)})
                return offset
            await run_in_threadpool(os.fsync, fd)
        finally:
            for batch, futures in inflight:
                await asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True)
                writer.release(batch)
            if syncing:
                await asyncio.gather(*syncing, return_exceptions=True)
            for lane in lanes:
                lane.shutdown(wait=False)
            writer.close()
        sha = None
        if position == length:
            sha = whole.hexdigest() if whole is not None else await run_in_threadpool(_file_sha256, path)
        elif whole is not None:
            running_hash[upload_id] = (position, whole)
        if position != synced or sha is not None:
            await run_in_threadpool(ex.set_offset, upload_id, position, sha, account, ip)
        return position

    @app.delete(API_PREFIX + "/uploads/{upload_id}", status_code=204)
    async def tus_delete(upload_id: str, request: Request) -> Response:
        check_tus(request)
        account = await auth(request)
        lock = locks.setdefault(upload_id, asyncio.Lock())
        if lock.locked():
            raise ApiError("UPLOAD_LOCKED")
        async with lock:
            await run_in_threadpool(ex.terminate_upload, account, upload_id, _client_ip(request))
        running_hash.pop(upload_id, None)
        return Response(status_code=204, headers=tus_headers)

    # --- submissions -------------------------------------------------------------------------------
    @app.post(API_PREFIX + "/submissions", status_code=201)
    async def commit(body: CommitBody, request: Request) -> JSONResponse:
        account = await auth(request)
        lock = locks.setdefault(body.upload_id, asyncio.Lock())
        async with lock:
            envelope, created = await run_in_threadpool(
                ex.commit, account, body.upload_id, body.package_sha256, body.manifest, _client_ip(request)
            )
        return JSONResponse(
            envelope, status_code=201 if created else 200, headers={"X-Duplicate": str(not created)}
        )

    @app.post(API_PREFIX + "/submissions/offline", status_code=201)
    async def register_offline(body: OfflineBody, request: Request) -> JSONResponse:
        account = await auth(request)
        if not body.offline:
            raise ApiError("REQUEST_INVALID", "offline must be true")
        envelope, created = await run_in_threadpool(
            ex.register_offline,
            account,
            body.package_sha256,
            body.package_size,
            body.manifest,
            _client_ip(request),
        )
        return JSONResponse(
            envelope, status_code=201 if created else 200, headers={"X-Duplicate": str(not created)}
        )

    @app.get(API_PREFIX + "/submissions")
    async def list_submissions(
        request: Request,
        region: str | None = None,
        dataset_id: str | None = None,
        package_sha256: str | None = None,
    ) -> dict:
        account = await auth(request)
        require_role(account, "reviewer", "submitter")
        items = await run_in_threadpool(ex.list_submissions, account, region, dataset_id, package_sha256)
        return {"items": items}

    @app.get(API_PREFIX + "/submissions/{submission_id}")
    async def get_submission(submission_id: str, request: Request) -> dict:
        account = await auth(request)
        return await run_in_threadpool(ex.get_submission, account, submission_id)

    @app.get(API_PREFIX + "/submissions/{submission_id}/receipt")
    async def get_receipt(submission_id: str, request: Request) -> dict:
        account = await auth(request)
        sub = await run_in_threadpool(ex.get_submission, account, submission_id)
        return {k: sub[k] for k in ("receipt", "signature", "key_fingerprint", "signature_algorithm")}

    # --- versions ------------------------------------------------------------------------------------
    @app.get(API_PREFIX + "/versions")
    async def list_versions(
        request: Request,
        dataset_id: str | None = None,
        region: str | None = None,
        period: str | None = None,
        latest: bool = False,
    ) -> dict:
        account = await auth(request)
        items = await run_in_threadpool(ex.list_versions, account, dataset_id, region, period, latest)
        return {"items": items}

    @app.get(API_PREFIX + "/datasets/{dataset_id}/regions/{region}/versions")
    async def history(dataset_id: str, region: str, request: Request, period: str | None = None) -> dict:
        account = await auth(request)
        items = await run_in_threadpool(ex.list_versions, account, dataset_id, region, period, False, True)
        return {"items": items}

    @app.get(API_PREFIX + "/datasets/{dataset_id}/regions/{region}/latest")
    async def latest(dataset_id: str, region: str, request: Request, period: str | None = None) -> dict:
        account = await auth(request)
        region = _region(region)
        items = await run_in_threadpool(ex.list_versions, account, dataset_id, region, period, False, True)
        if not items:
            dept = ex.catalog.get(dataset_id).department if ex.catalog.get(dataset_id) else ""
            check_read_version(account, ex.catalog, dataset_id, dept, region)
            raise ApiError("NOT_FOUND")
        if period is None:
            items.sort(key=lambda v: (v["period"][:4], v["created_at"], v["version_id"]))
        return items[-1]

    @app.get(API_PREFIX + "/versions/{version_id}")
    async def get_version(version_id: int, request: Request) -> dict:
        account = await auth(request)
        row = await run_in_threadpool(ex.get_version, account, version_id)
        return ex.version_public(row)

    @app.get(API_PREFIX + "/versions/{version_id}/manifest")
    async def get_version_manifest(version_id: int, request: Request) -> dict:
        account = await auth(request)
        return await run_in_threadpool(ex.version_manifest, account, version_id)

    @app.get(API_PREFIX + "/versions/{version_id}/download")
    async def download(version_id: int, request: Request) -> Response:
        account = await auth(request)
        ip = _client_ip(request)
        try:
            row = await run_in_threadpool(ex.get_version, account, version_id)
        except ApiError as err:
            await run_in_threadpool(
                ex.audit,
                "download",
                "refused",
                account,
                f"version:{version_id}",
                {"code": err.code},
                ip,
            )
            raise
        etag = '"{}"'.format(row["package_sha256"])
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-transform"}
        inm = request.headers.get("if-none-match")
        if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
            return Response(status_code=304, headers=headers)
        path = ex.config.data_dir / row["path"]
        size = row["size"]
        start, end, status = 0, size - 1, 200
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if range_header and (not if_range or if_range.strip() == etag):
            parsed = _parse_range(range_header, size)
            if parsed is None:
                raise ApiError("RANGE_NOT_SATISFIABLE", headers={"Content-Range": f"bytes */{size}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        headers["Content-Disposition"] = 'attachment; filename="{}_{}_{}_v{}.zip"'.format(
            row["dataset_id"], row["region_code"], row["period"], row["version_no"]
        )
        await run_in_threadpool(
            ex.audit,
            "download",
            "ok",
            account,
            f"version:{version_id}",
            {"range": [start, end], "status": status},
            ip,
        )

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

    # --- feed ------------------------------------------------------------------------------------------
    @app.get(API_PREFIX + "/feed")
    async def feed(request: Request, cursor: int = 0, wait: float = 0, limit: int = 100) -> dict:
        account = await auth(request)
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

    # --- releases, deadlines, evaluation ------------------------------------------------------------
    @app.get(API_PREFIX + "/releases")
    async def releases(request: Request, year: int | None = None) -> dict:
        await auth(request)
        return {"items": await run_in_threadpool(ex.list_releases, year)}

    @app.get(API_PREFIX + "/deadlines")
    async def deadlines(
        request: Request, year: int | None = None, region: str | None = None, as_of: str | None = None
    ) -> dict:
        account = await auth(request)
        year = year or _as_of(as_of).year
        reg = _region(region) if region else account["region_code"]
        require_region(account, reg)
        day = _as_of(as_of)
        items = await run_in_threadpool(ex.obligations, reg, year, day)
        return {"region_code": reg, "year": year, "as_of": day.isoformat(), "items": items}

    @app.get(API_PREFIX + "/evaluation")
    async def evaluation(
        request: Request, year: int | None = None, region: str | None = None, as_of: str | None = None
    ) -> dict:
        account = await auth(request)
        year = year or _as_of(as_of).year
        require_role(account, "reviewer")
        reg = _region(region) if region else account["region_code"]
        require_region(account, reg)
        return await run_in_threadpool(ex.evaluation, reg, year, _as_of(as_of))

    # --- admin -----------------------------------------------------------------------------------------
    async def admin(request: Request) -> dict:
        account = await auth(request)
        if account["role"] != "admin":
            await run_in_threadpool(
                ex.audit,
                "admin",
                "refused",
                account,
                request.url.path,
                {"code": "FORBIDDEN_ROLE"},
                _client_ip(request),
            )
            raise ApiError("FORBIDDEN_ROLE", account["role"])
        return account

    @app.post(API_PREFIX + "/admin/accounts", status_code=201)
    async def create_account(body: AccountBody, request: Request) -> dict:
        actor = await admin(request)
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

    @app.patch(API_PREFIX + "/admin/accounts/{username}")
    async def update_account(username: str, body: AccountUpdateBody, request: Request) -> dict:
        actor = await admin(request)
        return await run_in_threadpool(ex.update_account, username, body.disabled, body.password, actor)

    @app.get(API_PREFIX + "/admin/accounts")
    async def list_accounts(request: Request) -> dict:
        await admin(request)
        return {"items": await run_in_threadpool(ex.list_accounts)}

    @app.post(API_PREFIX + "/admin/tokens", status_code=201)
    async def issue_token(body: TokenBody, request: Request) -> dict:
        actor = await admin(request)
        return await run_in_threadpool(ex.issue_token, body.username, body.ttl_seconds, "admin", actor)

    @app.post(API_PREFIX + "/admin/tokens/revoke")
    async def revoke_tokens(body: RevokeBody, request: Request) -> dict:
        actor = await admin(request)
        return {"revoked": await run_in_threadpool(ex.revoke_tokens, body.username, None, actor)}

    @app.put(API_PREFIX + "/admin/releases")
    async def set_release(body: ReleaseBody, request: Request) -> dict:
        actor = await admin(request)
        return await run_in_threadpool(ex.set_release, body.dataset_id, body.year, body.release_date, actor)

    @app.get(API_PREFIX + "/admin/audit")
    async def read_audit(
        request: Request, action: str | None = None, after_id: int = 0, limit: int = 500
    ) -> dict:
        await admin(request)
        return {"items": await run_in_threadpool(_audit_rows, ex, action, after_id, min(limit, 5000))}

    @app.get(API_PREFIX + "/errors")
    def error_codes() -> dict:
        return {code: {"status": s, "message_zh": zh, "message": en} for code, (s, zh, en) in ERRORS.items()}

    return app


def _audit_rows(ex: Exchange, action: str | None, after_id: int, limit: int) -> list[dict]:
    from sqlalchemy import select

    from exchange_server import db

    q = select(db.audit).where(db.audit.c.id > after_id).order_by(db.audit.c.id).limit(limit)
    if action:
        q = q.where(db.audit.c.action == action)
    with ex.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        r["ts"] = iso(r["ts"])
    return rows


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
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


class _Batch:
    """A filled stretch of a staging buffer: ``length`` bytes for the file position ``pos``."""

    __slots__ = ("buf", "length", "pos")

    def __init__(self, buf: mmap.mmap, length: int, pos: int) -> None:
        self.buf = buf
        self.length = length
        self.pos = pos


class _PartWriter:
    """Stages received blocks into page-aligned buffers (``append``, ``take``: event loop) and writes the
    buffers to an upload's ``.part`` file from ``offset`` on (``write``: one worker thread, in order).

    The staging copy gives the hash threads one contiguous buffer per WRITE_BUFFER bytes, and with
    ``direct`` (where the OS has O_DIRECT) whole 4 KiB-aligned stretches go to the disk directly, bypassing
    the page cache (on the benchmark VM, writes into fresh page-cache pages ran at ~400 MiB/s, slower than
    receiving and both hashes together; the pages would only be written back at the fsync anyway). A buffer
    starts at a 4 KiB-aligned file position: an unaligned start gets a short first buffer, written normally,
    like the tail (< 4 KiB) of a request. A filesystem that refuses O_DIRECT (EINVAL) gets plain writes.
    Durability is the caller's fsync either way (it covers the file, whichever descriptor wrote). Buffers
    come from, and go back to, ``pool`` (shared by all requests)."""

    POOL_MAX = 8

    def __init__(self, path: Any, offset: int, pool: list[mmap.mmap], direct: bool) -> None:
        self.fd = platform.open_fd(path, os.O_RDWR | os.O_CREAT)
        self.pool = pool
        self.pos = offset  # file position of the first byte of the buffer being filled
        self.buf: mmap.mmap | None = None
        self.view: memoryview | None = None
        self.fill = 0
        self.cap = 0
        self.dfd = platform.open_direct(path) if direct else -1

    def _start(self) -> None:
        self.buf = self.pool.pop() if self.pool else mmap.mmap(-1, WRITE_BUFFER)
        self.view = memoryview(self.buf)
        self.fill = 0
        misaligned = self.pos % DIRECT_ALIGN
        self.cap = WRITE_BUFFER if not misaligned else DIRECT_ALIGN - misaligned

    def append(self, block: bytes) -> list[_Batch]:
        """Copy ``block`` into the staging buffers; the buffers it filled, to be written and hashed."""
        full = []
        data = memoryview(block)
        while data:
            if self.buf is None:
                self._start()
            n = min(len(data), self.cap - self.fill)
            self.view[self.fill : self.fill + n] = data[:n]
            self.fill += n
            data = data[n:]
            if self.fill == self.cap:
                full.append(self.take())
        return full

    def take(self) -> _Batch | None:
        """The buffer being filled, as it is (None when empty); the next bytes go to a new buffer."""
        if self.buf is None or not self.fill:
            return None
        batch = _Batch(self.buf, self.fill, self.pos)
        self.view.release()
        self.pos += self.fill
        self.buf = self.view = None
        return batch

    def release(self, batch: _Batch) -> None:
        """The batch was written and hashed: its buffer goes back to the pool."""
        if batch.buf is not None:
            if len(self.pool) < self.POOL_MAX:
                self.pool.append(batch.buf)
            else:
                batch.buf.close()
            batch.buf = None

    def write(self, batch: _Batch) -> None:
        """Write a batch: the aligned part directly (when possible), a remainder (< 4 KiB) normally."""
        aligned = 0
        if self.dfd >= 0 and batch.pos % DIRECT_ALIGN == 0:
            aligned = batch.length - batch.length % DIRECT_ALIGN
        with memoryview(batch.buf) as view:
            if aligned:
                try:
                    platform.pwrite(self.dfd, view[:aligned], batch.pos)
                except OSError as err:
                    if err.errno != errno.EINVAL:
                        raise
                    LOG.info("O_DIRECT refused by the filesystem (%s): buffered writes", err)
                    os.close(self.dfd)
                    self.dfd = -1
                    aligned = 0
            if batch.length > aligned:
                platform.pwrite(self.fd, view[aligned : batch.length], batch.pos + aligned)

    def close(self) -> None:
        if self.buf is not None:
            self.view.release()
            self.release(_Batch(self.buf, 0, self.pos))
            self.buf = self.view = None
        if self.dfd >= 0:
            os.close(self.dfd)
        os.close(self.fd)


def _checksum_header(request: Request, name: str) -> bytes | None:
    """The digest of a ``<name>: sha256 <base64>`` header, None when the header is absent."""
    value = request.headers.get(name)
    if not value:
        return None
    algo, _, encoded = value.strip().partition(" ")
    if algo.lower() != "sha256":
        raise ApiError("CHECKSUM_ALGORITHM", algo)
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise ApiError("REQUEST_INVALID", name)


def _prefix_hash(path: Any, length: int) -> Any:
    """A running sha256 of the first ``length`` bytes of a part file."""
    h = hashlib.sha256()
    left = length
    with open(path, "rb", buffering=0) as fh:
        buffer = bytearray(4 * 1024 * 1024)
        view = memoryview(buffer)
        while left > 0:
            n = fh.readinto(view[: min(left, len(buffer))])
            if not n:
                break
            h.update(view[:n])
            left -= n
    return h


def _update_hash(h: Any, batch: _Batch) -> None:
    with memoryview(batch.buf) as view, view[: batch.length] as data:
        h.update(data)


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(4 * 1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()
