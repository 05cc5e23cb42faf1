"""Operating-system calls that exist only on some platforms, each guarded here and nowhere else.

The server also runs on Windows (and macOS): without a call the guard does the plain thing and logs a
note once, so the server works everywhere and is only faster where the call exists.
"""

from __future__ import annotations

import logging
import os
import sys

LOG = logging.getLogger("exchange_server.platform")
_noted: set[str] = set()


def _note(call: str, consequence: str) -> None:
    if call not in _noted:
        _noted.add(call)
        LOG.info("%s is not available on this system (%s): %s", call, sys.platform, consequence)


def open_fd(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """``os.open`` for bytes. Windows opens descriptors in text mode (each \\n written as \\r\\n) unless
    O_BINARY is given; other systems have no such flag and no such mode."""
    return os.open(path, flags | getattr(os, "O_BINARY", 0), mode)


def open_direct(path: str | os.PathLike[str]) -> int:
    """A write descriptor bypassing the page cache (O_DIRECT, Linux), or -1 where the OS lacks the flag
    or the filesystem refuses it: the caller then writes through its plain descriptor."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        _note("O_DIRECT", "uploads are written through the page cache")
        return -1
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError as err:  # e.g. tmpfs: EINVAL
        _note("O_DIRECT on this filesystem", f"{err}: uploads are written through the page cache")
        return -1


def pwrite(fd: int, data: memoryview | bytes, pos: int) -> None:
    """Write all of ``data`` at file position ``pos`` (``os.pwrite``; seek + write where it is missing,
    e.g. Windows: the descriptor is used by one writer thread at a time)."""
    data = memoryview(data)
    if not hasattr(os, "pwrite"):
        _note("os.pwrite", "seek + write")
        os.lseek(fd, pos, os.SEEK_SET)
        while data:
            data = data[os.write(fd, data) :]
        return
    while data:
        n = os.pwrite(fd, data, pos)
        data = data[n:]
        pos += n


def keep_freed_memory() -> None:
    """glibc: keep freed request buffers in the heap for reuse instead of giving them back to the OS.

    An upload passes through ~256 KiB blocks (a few tens of MiB alive at a time). With glibc's defaults the
    top of the heap is trimmed and grown again all the time, so a good part of the bytes lands in fresh
    pages, each a page fault (measured: ~30 000 faults per GiB uploaded, ~0.1 CPU-s). Blocks below 4 MiB
    come from the heap and up to 64 MiB of free heap is kept. Other C libraries: nothing to do."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        _note("mallopt", "the C library's default heap settings are kept")
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        _note("mallopt", "the C library's default heap settings are kept")
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 4 * 1024 * 1024)
    mallopt(m_trim_threshold, 64 * 1024 * 1024)
