"""Records of unauthenticated requests with two real server processes on one PostgreSQL database: bounded per
address and minute across both workers (each counting in its own memory would write twice the bound), every
request still counted, trimmed after the retention by the expiry loop, while the audit of accounts' actions
stays append-only."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import requests

from tests.server.conftest import ADMIN_PASSWORD, PG_SKIP, pg_url
from tests.server.helpers import API, ServerProcess, db_rows, login, two_workers

BOUND = 5


@pytest.fixture()
def workers(tmp_path):
    if not pg_url():
        pytest.skip(PG_SKIP)
    extra = ["--unauthenticated-audit-per-minute", str(BOUND), "--cleanup-interval-seconds", "1"]
    extra += ["--unauthenticated-audit-retention-days", "30"]
    with two_workers(tmp_path, pg_url(), extra) as procs:
        yield procs


def _refused(proc: ServerProcess, n: int, statuses: list) -> None:
    for _ in range(n):
        r = requests.get(proc.url + API + "/auth/me", headers={"Authorization": "Bearer forged"}, timeout=30)
        statuses.append(r.status_code)


def test_unauthenticated_records_bounded_across_two_workers(workers):
    a, b = workers
    audit_before = db_rows(a, "SELECT count(*) FROM audit")[0][0]
    statuses: list[int] = []
    t0 = time.time()
    threads = [threading.Thread(target=_refused, args=(proc, 20, statuses)) for proc in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    minutes = int(time.time() // 60) - int(t0 // 60) + 1
    assert statuses == [401] * 80
    per_minute = db_rows(
        a,
        "SELECT date_trunc('minute', ts), count(*) FROM unauth_audit "
        "WHERE client_ip = '127.0.0.1' AND action = 'auth' GROUP BY 1",
    )
    assert len(per_minute) <= minutes and all(n <= BOUND for _, n in per_minute), per_minute
    assert sum(n for _, n in per_minute) >= BOUND
    counted = db_rows(a, "SELECT sum(requests) FROM unauth_audit_counts WHERE client_ip = '127.0.0.1'")
    assert counted[0][0] == 80
    counts = db_rows(a, "SELECT requests FROM unauth_audit_counts WHERE client_ip = '127.0.0.1'")
    assert sum(n for _, n in per_minute) == sum(min(n, BOUND) for (n,) in counts), (per_minute, counts)
    assert db_rows(a, "SELECT count(*) FROM audit")[0][0] == audit_before


def test_records_past_the_retention_trimmed_audit_kept(workers):
    import psycopg

    a, _ = workers
    login(a.url, "admin", ADMIN_PASSWORD)  # an audited action of an account
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31)
    old_minute = int(old.timestamp() // 60)
    url = a.db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        for ip, ts in (("192.0.2.1", old), ("192.0.2.2", old + dt.timedelta(days=2))):
            conn.execute(
                "INSERT INTO unauth_audit (ts, action, outcome, target, detail, client_ip) "
                "VALUES (%s, 'login', 'refused', 'account:x', '{}', %s)",
                (ts, ip),
            )
        conn.execute(
            "INSERT INTO unauth_audit_counts (client_ip, minute, requests) VALUES ('192.0.2.1', %s, 7), "
            "('192.0.2.2', %s, 3)",
            (old_minute, old_minute + 2 * 1440),
        )
        conn.execute(
            "INSERT INTO audit (ts, username, department, region_code, action, outcome, target, detail, "
            "client_ip) VALUES (%s, 'old', 'zrzy', '610000', 'login', 'ok', 'account:old', '{}', %s)",
            (old, "192.0.2.1"),
        )
    deadline = time.time() + 20
    while time.time() < deadline:
        if not db_rows(a, "SELECT 1 FROM unauth_audit WHERE client_ip = '192.0.2.1'"):
            break
        time.sleep(0.5)
    assert db_rows(a, "SELECT client_ip FROM unauth_audit WHERE client_ip LIKE '192.0.2.%'") == [
        ("192.0.2.2",)
    ]
    assert db_rows(a, "SELECT client_ip FROM unauth_audit_counts WHERE client_ip LIKE '192.0.2.%'") == [
        ("192.0.2.2",)
    ]
    assert db_rows(a, "SELECT count(*) FROM audit WHERE target = 'account:old'") == [(1,)]
    with psycopg.connect(url) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM audit WHERE target = 'account:old'")
        conn.rollback()
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE audit SET outcome = 'refused' WHERE target = 'account:old'")
