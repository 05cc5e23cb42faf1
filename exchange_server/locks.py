"""Locks that hold across worker processes, kept in the database.

With several workers (``uvicorn --workers N`` or several hosts) on one PostgreSQL database, an
in-process lock (``asyncio.Lock`` per upload id) does not stop two workers from committing the same
upload at once. :func:`named_lock` takes a PostgreSQL session advisory lock keyed by a 64-bit hash of
the name: nothing is stored per name, so no lock outlives its holder and none accumulates (a crashed
worker's session ends and its locks with it).

On SQLite (one serving process per database file) the same call takes an in-process lock that is
removed as soon as nobody holds or waits for it.

Where they are taken (one place each):

* ``named_lock(engine, "upload:" + upload_id)``: every writer of one upload. A tus PATCH and a DELETE
  try it (``wait=False``; not acquired means another request is writing this upload: 423 UPLOAD_LOCKED),
  a commit waits for it, the expiry clean-up tries it and leaves a held upload for its next round;
* ``named_lock(engine, "package:" + sha256)`` inside a commit, so that two uploads of the same package
  never record two submissions;
* ``transaction_locked(engine, "versions:" + ...)``: the transaction that numbers a new version of one
  (dataset, region, period) holds the lock until it commits, so that the next one reads the number it wrote.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool


def lock_key(name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` (the first 8 bytes of the name's sha256)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


class _LocalLocks:
    """In-process named locks, each dropped when its last holder or waiter leaves."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, name: str, wait: bool) -> Iterator[bool]:
        with self._guard:
            lock, users = self._locks.get(name, (threading.Lock(), 0))
            self._locks[name] = (lock, users + 1)
        acquired = lock.acquire(blocking=wait)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
            with self._guard:
                lock, users = self._locks[name]
                if users <= 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


LOCAL_LOCKS = _LocalLocks()


_LOCK_ENGINES: dict[str, Engine] = {}
_LOCK_ENGINES_GUARD = threading.Lock()


def _lock_engine(engine: Engine) -> Engine:
    """Connections for held locks come from outside the server's pool (NullPool): a commit holding its lock
    connection must never wait for a pool slot that other lock holders keep (a deadlock under load)."""
    key = engine.url.render_as_string(hide_password=False)
    with _LOCK_ENGINES_GUARD:
        if key not in _LOCK_ENGINES:
            _LOCK_ENGINES[key] = create_engine(engine.url, poolclass=NullPool)
        return _LOCK_ENGINES[key]


@contextmanager
def named_lock(engine: Engine, name: str, wait: bool = True) -> Iterator[bool]:
    """Hold the lock ``name`` for the ``with`` block; yields whether it was acquired (always True with
    ``wait``). PostgreSQL: a session advisory lock on a connection kept for the block."""
    if engine.dialect.name != "postgresql":
        with LOCAL_LOCKS.hold(name, wait) as acquired:
            yield acquired
        return
    key = lock_key(name)
    with _lock_engine(engine).connect() as conn:
        if wait:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            acquired = True
        else:
            acquired = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        conn.commit()  # no transaction stays open while the lock is held
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


@contextmanager
def transaction_locked(engine: Engine, name: str) -> Iterator[Connection]:
    """``engine.begin()`` with the lock ``name`` held until the transaction ends (PostgreSQL: a transaction
    advisory lock, released by the commit or the rollback; SQLite: an in-process lock around it)."""
    if engine.dialect.name != "postgresql":
        with LOCAL_LOCKS.hold(name, True), engine.begin() as conn:
            yield conn
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})
        yield conn
