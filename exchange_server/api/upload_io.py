"""Receiving tus PATCH bodies: the per-upload lock, the running sha256 between PATCH requests, and the
pipelined write + hash of a body into the part file."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import mmap
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from exchange_server.api.part_writer import Batch, PartWriter, file_sha256, prefix_hash, update_hash
from exchange_server.errors import ApiError
from exchange_server.locks import named_lock
from exchange_server.services import Exchange

LOG = logging.getLogger(__name__)
# buffers of one PATCH queued for writing and hashing while the next one arrives: an upload holds at most
# about (INFLIGHT + 1) * WRITE_BUFFER of received bytes in memory
INFLIGHT = 3
# running hashes kept between PATCH requests (a dropped one is rebuilt from the file when needed)
MAX_RUNNING_HASHES = 10_000


class UploadReceiver:
    """State of the uploads held by one server process (app.state.uploads)."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        # a cache of this process (a PATCH through another worker finds none and rebuilds or re-reads)
        self.running_hash: dict[str, tuple[int, Any]] = {}
        self.staging: list[mmap.mmap] = []  # free page-aligned staging buffers, reused across PATCH requests

    @contextlib.asynccontextmanager
    async def lock(self, upload_id: str) -> AsyncIterator[None]:
        """Hold the upload's lock, or refuse (423) when another request of any worker process holds it (a
        database lock on PostgreSQL, exchange_server/locks.py): two PATCHes of one upload never write at
        once, a DELETE never removes the file under a PATCH or a commit."""
        held = named_lock(self.ex.engine, "upload:" + upload_id, wait=False)
        acquired = await run_in_threadpool(held.__enter__)
        try:
            if not acquired:
                raise ApiError("UPLOAD_LOCKED")
            yield
        finally:
            await run_in_threadpool(held.__exit__, None, None, None)

    async def receive(
        self,
        upload_id: str,
        request: Request,
        account: dict,
        ip: str,
        offset: int,
        length: int,
        expected_digest: tuple[str, bytes] | None,
        prefix_digest: bytes | None,
    ) -> int:
        """Stream one PATCH body into the part file. With ``Upload-Checksum`` (the chunk's sha256) and/or
        ``Upload-Prefix-Checksum`` (the sha256 of bytes [0, end of this PATCH)) the PATCH is all or nothing:
        kept only when it arrived whole and every given digest matches."""
        LOG.debug("upload %s: receiving from %d", upload_id, offset)
        path = self.ex.upload_path(upload_id)
        # Upload-Checksum: (algorithm, digest) of this PATCH's bytes, sha1 or sha256
        chunk_hash = hashlib.new(expected_digest[0]) if expected_digest is not None else None
        verified = expected_digest is not None or prefix_digest is not None
        prev = self.running_hash.pop(upload_id, None)
        whole = prev[1] if prev is not None and prev[0] == offset else None
        if whole is None and offset == 0:
            whole = hashlib.sha256()
        elif whole is None and prefix_digest is not None:
            # no running hash for this offset (server restarted, or the last PATCH was refused before the
            # state could be restored): rebuild it once from the bytes on disk
            LOG.info("upload %s: rebuilding the running sha256 of %d stored bytes", upload_id, offset)
            whole = await run_in_threadpool(prefix_hash, path, offset)
        # the running hash as it was before this PATCH: restored when the PATCH is not kept
        start = whole.copy() if whole is not None else None
        writer = PartWriter(path, offset, self.staging, self.ex.config.direct_io)
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
            functools.partial(update_hash, h) for h in (chunk_hash, whole) if h is not None
        ]
        lanes = [ThreadPoolExecutor(1, thread_name_prefix="upload-" + upload_id[:8]) for _ in jobs]
        inflight: collections.deque[tuple[Batch, list[concurrent.futures.Future]]] = collections.deque()

        async def drain(keep: int = 0) -> None:
            """Wait until at most ``keep`` buffers are still being written or hashed."""
            while len(inflight) > keep:
                batch, futures = inflight[0]
                for future in futures:
                    await asyncio.wrap_future(future)
                inflight.popleft()
                writer.release(batch)

        async def submit(batch: Batch) -> None:
            inflight.append((batch, [lane.submit(job, batch) for lane, job in zip(lanes, jobs)]))
            await drain(INFLIGHT)

        syncing: list = []

        async def refused(detail: dict) -> None:
            await run_in_threadpool(
                self.ex.audit, "upload.patch", "refused", account, "upload:" + upload_id, detail, ip
            )

        async def sync_to(pos: int) -> None:
            await run_in_threadpool(os.fsync, fd)
            await run_in_threadpool(self.ex.set_offset, upload_id, pos, None, account, ip)

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
                    if not verified and position - synced >= self.ex.config.sync_every_bytes:
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
            mismatch = (chunk_hash is not None and chunk_hash.digest() != expected_digest[1]) or (
                prefix_digest is not None and whole.digest() != prefix_digest
            )
            if too_long or (verified and (disconnected or mismatch)):
                os.ftruncate(fd, offset)
                if start is not None:
                    self.running_hash[upload_id] = (offset, start)
                if too_long:
                    await run_in_threadpool(self.ex.set_offset, upload_id, offset, None, account, ip)
                    await refused({"code": "UPLOAD_BEYOND_LENGTH"})
                    raise ApiError("UPLOAD_BEYOND_LENGTH")
                if not disconnected:
                    await refused({"code": "CHECKSUM_MISMATCH", "offset": offset})
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
            sha = whole.hexdigest() if whole is not None else await run_in_threadpool(file_sha256, path)
        elif whole is not None:
            self.running_hash[upload_id] = (position, whole)
            while len(self.running_hash) > MAX_RUNNING_HASHES:  # abandoned uploads: drop the oldest
                del self.running_hash[next(iter(self.running_hash))]
        if position != synced or sha is not None:
            await run_in_threadpool(self.ex.set_offset, upload_id, position, sha, account, ip)
        return position
