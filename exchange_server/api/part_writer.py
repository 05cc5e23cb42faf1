"""Writing a PATCH body to an upload's part file: page-aligned staging buffers, O_DIRECT where allowed, and
the hashing helpers."""

from __future__ import annotations

import errno
import hashlib
import logging
import mmap
import os
from typing import Any

from exchange_server import platform

LOG = logging.getLogger(__name__)
# received bytes handed to the worker threads (write, hash) at a time
WRITE_BUFFER = 8 * 1024 * 1024
DIRECT_ALIGN = 4096


class Batch:
    """A filled stretch of a staging buffer: ``length`` bytes for the file position ``pos``."""

    __slots__ = ("buf", "length", "pos")

    def __init__(self, buf: mmap.mmap, length: int, pos: int) -> None:
        self.buf = buf
        self.length = length
        self.pos = pos


class PartWriter:
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

    def append(self, block: bytes) -> list[Batch]:
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

    def take(self) -> Batch | None:
        """The buffer being filled, as it is (None when empty); the next bytes go to a new buffer."""
        if self.buf is None or not self.fill:
            return None
        batch = Batch(self.buf, self.fill, self.pos)
        self.view.release()
        self.pos += self.fill
        self.buf = self.view = None
        return batch

    def release(self, batch: Batch) -> None:
        """The batch was written and hashed: its buffer goes back to the pool."""
        if batch.buf is not None:
            if len(self.pool) < self.POOL_MAX:
                self.pool.append(batch.buf)
            else:
                batch.buf.close()
            batch.buf = None

    def write(self, batch: Batch) -> None:
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
            self.release(Batch(self.buf, 0, self.pos))
            self.buf = self.view = None
        if self.dfd >= 0:
            os.close(self.dfd)
        os.close(self.fd)


def prefix_hash(path: Any, length: int) -> Any:
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


def update_hash(h: Any, batch: Batch) -> None:
    with memoryview(batch.buf) as view, view[: batch.length] as data:
        h.update(data)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(4 * 1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()
