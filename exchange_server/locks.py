"""Locks that hold across worker processes, kept in the database.

With several workers (``uvicorn --workers N`` or several hosts) on one PostgreSQL database, an
in-process lock does not stop two workers from writing or committing the same upload at once.
:func:`named_lock` takes a PostgreSQL advisory lock keyed by a 64-bit hash of the name, on one session
per process that holds all of that process's locks: nothing is stored per name, so no lock outlives its
holder and none accumulates (a crashed worker's session ends and its locks with it), and the number of
connections does not grow with the requests holding locks.

On SQLite (one serving process per database file) the same call takes an in-process lock that is
removed as soon as nobody holds or waits for it.

Where they are taken (one place each):

* ``named_lock(engine, "upload:" + upload_id)``: every writer of one upload. A tus PATCH and a DELETE
  try it (``wait=False``; not acquired means another request is writing this upload: 423 UPLOAD_LOCKED),
  a commit waits for it, the expiry clean-up tries it and leaves a held upload for its next round;
* ``named_lock(engine, "package:" + sha256)`` inside a commit, so that two uploads of the same package
  never record two submissions;
* ``transaction_locked(engine, "versions:" + ...)``: the transaction that numbers a new version of one
  (dataset, region, period) holds the lock until it commits, so that the next one reads the number it wrote;
* ``transaction_locked(engine, "uploads-of:" + account id)``: the creation of an upload, so that the limit
  on uploads held and the quota are checked against every creation that went before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from exchange_server.errors import ApiError

LOG = logging.getLogger(__name__)
# seconds a waiting lock (a commit) waits before the request is answered 503 DATABASE_BUSY
LOCK_WAIT = 300.0


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


class _LockSession:
    """One PostgreSQL session per server process that holds every advisory lock the process takes. Taking or
    releasing a lock is one short statement on it (serialised here), so the number of database connections
    does not grow with the uploads being written: 200 PATCHes at once cost one connection, not 200."""

    def __init__(self, engine: Engine) -> None:
        self.engine = create_engine(engine.url, poolclass=NullPool)
        self.conn: Connection | None = None
        self.mutex = threading.Lock()

    def _run(self, sql: str, key: int) -> bool:
        with self.mutex:
            for attempt in range(2):
                try:
                    if self.conn is None:
                        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                    return bool(self.conn.execute(text(sql), {"key": key}).scalar())
                except DBAPIError as err:
                    if not err.connection_invalidated and not (
                        self.conn is not None and self.conn.invalidated
                    ):
                        raise
                    # the session is gone, and every lock it held with it: a new one for what comes next
                    LOG.warning("advisory lock session lost (%r); reconnecting", err)
                    self.conn = None
                    if attempt:
                        raise
        return False

    def try_lock(self, key: int) -> bool:
        return self._run("SELECT pg_try_advisory_lock(:key)", key)

    def unlock(self, key: int) -> None:
        self._run("SELECT pg_advisory_unlock(:key)", key)


_SESSIONS: dict[tuple[int, str], _LockSession] = {}
_SESSIONS_GUARD = threading.Lock()


def _session(engine: Engine) -> _LockSession:
    key = (os.getpid(), engine.url.render_as_string(hide_password=False))
    with _SESSIONS_GUARD:
        if key not in _SESSIONS:
            _SESSIONS[key] = _LockSession(engine)
        return _SESSIONS[key]


@contextmanager
def named_lock(engine: Engine, name: str, wait: bool = True) -> Iterator[bool]:
    """Hold the lock ``name`` for the ``with`` block; yields whether it was acquired (always True with
    ``wait``, or ``ApiError("DATABASE_BUSY")`` after LOCK_WAIT seconds). In-process first (one holder per
    process; a waiter waits on a thread lock), then, on PostgreSQL, the advisory lock of the process's lock
    session (a waiter polls it, backing off to 0.2 s)."""
    with LOCAL_LOCKS.hold(name, wait) as acquired:
        if not acquired or engine.dialect.name != "postgresql":
            yield acquired
            return
        session, key = _session(engine), lock_key(name)
        acquired = session.try_lock(key)
        deadline, delay = time.monotonic() + LOCK_WAIT, 0.01
        while wait and not acquired:
            if time.monotonic() > deadline:
                raise ApiError("DATABASE_BUSY", "lock wait")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
            acquired = session.try_lock(key)
        try:
            yield acquired
        finally:
            if acquired:
                session.unlock(key)


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
