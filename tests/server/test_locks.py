"""Database locks across worker processes (exchange_server/locks.py): two real processes on PostgreSQL
run the same check-then-insert "commit" at the same moment; with the advisory lock exactly one row is
written, without it both are (so the test can fail). SQLite's in-process locks are freed after use."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text

from exchange_server.db import make_engine
from exchange_server.locks import LOCAL_LOCKS, lock_key, named_lock
from tests.integration.server_support import REPO
from tests.server.conftest import PG_SKIP, PgSchema, pg_url

# one worker: wait for the common start time, then check-then-insert (with a pause in between)
_WORKER = """
import sys, time
from contextlib import nullcontext
from sqlalchemy import text
from exchange_server.db import make_engine
from exchange_server.locks import named_lock

url, start, use_lock = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
engine = make_engine(url)
engine.connect().close()
time.sleep(max(0.0, start - time.time()))
with named_lock(engine, "commit:upload-1") if use_lock else nullcontext():
    with engine.begin() as conn:
        n = conn.execute(text("SELECT count(*) FROM fake_submissions WHERE upload_id = 'upload-1'")).scalar()
    time.sleep(0.5)  # the package check
    if n == 0:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO fake_submissions (upload_id) VALUES ('upload-1')"))
"""


@pytest.fixture()
def pg_engine():
    if not pg_url():
        pytest.skip(PG_SKIP)
    schema = PgSchema(pg_url())
    engine = make_engine(schema.url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE fake_submissions (id serial PRIMARY KEY, upload_id text)"))
    yield schema.url, engine
    engine.dispose()
    schema.drop()


def _two_workers(url: str, use_lock: bool) -> None:
    start = time.time() + 3.0
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, url, str(start), "1" if use_lock else "0"], cwd=REPO)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(60) == 0


def _rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM fake_submissions")).scalar()


def test_two_processes_committing_the_same_upload_record_one_submission(pg_engine):
    url, engine = pg_engine
    _two_workers(url, use_lock=True)
    assert _rows(engine) == 1


def test_without_the_lock_two_processes_record_two(pg_engine):
    url, engine = pg_engine
    _two_workers(url, use_lock=False)
    assert _rows(engine) == 2


def test_a_held_advisory_lock_refuses_a_try_and_is_freed(pg_engine):
    _url, engine = pg_engine
    with named_lock(engine, "upload:u1") as first:
        assert first
        with named_lock(engine, "upload:u1", wait=False) as second:
            assert not second
        with named_lock(engine, "upload:u2", wait=False) as other:
            assert other  # another upload is not blocked
    with named_lock(engine, "upload:u1", wait=False) as again:
        assert again
    with engine.connect() as conn:  # nothing is left held in the database
        held = conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar()
    assert held == 0


def test_sqlite_locks_exclude_and_are_freed(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    order: list[str] = []

    def second() -> None:
        with named_lock(engine, "commit:a"):
            order.append("second")

    with named_lock(engine, "commit:a") as first:
        assert first
        with named_lock(engine, "commit:a", wait=False) as again:
            assert not again
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
    assert len(LOCAL_LOCKS) == 0  # no lock is kept per name (1 MiB ids cost nothing afterwards)
    with named_lock(engine, "x" * (1024 * 1024)):
        pass
    assert len(LOCAL_LOCKS) == 0


def test_lock_key_is_a_signed_64_bit_integer():
    keys = {lock_key(f"commit:{i}") for i in range(1000)}
    assert len(keys) == 1000
    assert all(-(2**63) <= k < 2**63 for k in keys)
