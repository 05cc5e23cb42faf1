"""Login after OWASP ASVS: throttling per account and per address (429 + Retry-After whatever the password),
unknown users answered in the time of known ones, disabled accounts told as wrong passwords, a bounded number
of audit rows for unauthenticated requests, and tokens revoked by a password reset or a role change."""

from __future__ import annotations

import statistics
import time

import pytest
import requests

from tests.server.conftest import ADMIN_PASSWORD, PASSWORD, start_server
from tests.server.helpers import API, db_rows, login


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, catalog_dir, db_factory):
    extra = ["--login-max-failures-account", "3", "--login-max-failures-address", "8"]
    extra += ["--login-window-seconds", "4", "--unauthenticated-audit-per-minute", "5"]
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, extra)
    admin = login(srv.url, "admin", ADMIN_PASSWORD)
    for name in ("alice", "bob", "carol"):
        body = {"username": name, "password": PASSWORD, "department": "zrzy", "region_code": "610102"}
        assert admin.post("/admin/accounts", json={**body, "role": "reader"}).status_code == 201
    yield srv
    srv.stop()


def attempt(srv, username: str, password: str) -> requests.Response:
    body = {"username": username, "password": password}
    return requests.post(srv.url + API + "/auth/token", json=body, timeout=30)


def test_account_throttled_with_retry_after(guarded):
    for _ in range(3):
        assert attempt(guarded, "alice", "wrong-password").status_code == 401
    r = attempt(guarded, "alice", PASSWORD)  # the right password does not help while throttled
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "LOGIN_THROTTLED"
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 4
    time.sleep(wait + 0.2)
    assert attempt(guarded, "alice", PASSWORD).status_code == 200


def test_address_throttled_across_accounts(guarded):
    time.sleep(4.2)  # the window of the previous test is over
    statuses = [attempt(guarded, f"nobody{i}", "wrong-password").status_code for i in range(8)]
    assert statuses == [401] * 8
    r = attempt(guarded, "bob", PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
    time.sleep(4.2)
    assert attempt(guarded, "bob", PASSWORD).status_code == 200


def test_unknown_user_costs_a_password_hash(guarded):
    time.sleep(4.2)

    def median(username: str) -> float:
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            assert attempt(guarded, username, "wrong-password").status_code == 401
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    known, unknown = median("carol"), median("no-such-user")
    assert unknown > known / 3, (known, unknown)  # without the dummy hash: ~1 ms against ~36 ms


def test_disabled_account_told_as_wrong_password(guarded):
    time.sleep(4.2)
    admin = login(guarded.url, "admin", ADMIN_PASSWORD)
    assert admin.request("PATCH", "/admin/accounts/carol", json={"disabled": True}).status_code == 200
    right, wrong = attempt(guarded, "carol", PASSWORD), attempt(guarded, "carol", "wrong-password")
    assert right.status_code == wrong.status_code == 401
    assert right.json() == wrong.json()


def test_unauthenticated_audit_rows_bounded(guarded):
    """60 refused tokens from one address: at most 5 records a minute, the count of every request kept, and
    nothing written to the append-only audit."""
    count_sql = "SELECT coalesce(sum(requests), 0) FROM unauth_audit_counts WHERE client_ip = '127.0.0.1'"
    audit_before = db_rows(guarded, "SELECT count(*) FROM audit")[0][0]
    counted_before = db_rows(guarded, count_sql)[0][0]
    rows_before = db_rows(guarded, "SELECT max(id) FROM unauth_audit")[0][0] or 0
    t0 = time.time()
    for _ in range(60):
        r = requests.get(guarded.url + API + "/auth/me", headers={"Authorization": "Bearer x"}, timeout=10)
        assert r.status_code == 401
    minutes = int(time.time() // 60) - int(t0 // 60) + 1  # the requests may straddle a minute
    rows = db_rows(guarded, f"SELECT action, outcome FROM unauth_audit WHERE id > {rows_before}")
    assert len(rows) <= 5 * minutes and set(rows) <= {("auth", "refused")}, rows
    # every minute of this address: a record for each request up to the bound
    counts = db_rows(guarded, "SELECT requests FROM unauth_audit_counts WHERE client_ip = '127.0.0.1'")
    recorded = db_rows(guarded, "SELECT count(*) FROM unauth_audit WHERE client_ip = '127.0.0.1'")[0][0]
    assert recorded == sum(min(n, 5) for (n,) in counts), (recorded, counts)
    assert db_rows(guarded, count_sql)[0][0] - counted_before == 60
    assert db_rows(guarded, "SELECT count(*) FROM audit")[0][0] == audit_before


def test_tokens_revoked_by_password_reset_and_role_change(guarded):
    time.sleep(4.2)
    admin = login(guarded.url, "admin", ADMIN_PASSWORD)
    bob = login(guarded.url, "bob", PASSWORD)
    assert bob.get("/auth/me").status_code == 200
    r = admin.request("PATCH", "/admin/accounts/bob", json={"password": "new-pass-456"})
    assert r.status_code == 200, r.text
    r = bob.get("/auth/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "TOKEN_REVOKED"
    bob = login(guarded.url, "bob", "new-pass-456")
    r = admin.request("PATCH", "/admin/accounts/bob", json={"role": "reviewer"})
    assert r.status_code == 200 and r.json()["role"] == "reviewer", r.text
    assert bob.get("/auth/me").status_code == 401
    assert login(guarded.url, "bob", "new-pass-456").get("/auth/me").json()["role"] == "reviewer"


def test_usernames_normalised_and_colon_refused(guarded):
    admin = login(guarded.url, "admin", ADMIN_PASSWORD)
    body = {"password": PASSWORD, "department": "nync", "region_code": "610102", "role": "reader"}
    r = admin.post("/admin/accounts", json={"username": " Ｄａｖｅ ", **body})
    assert r.status_code == 201 and r.json()["username"] == "dave", r.text
    assert admin.post("/admin/accounts", json={"username": "DAVE", **body}).status_code == 409
    assert login(guarded.url, "Dave", PASSWORD).get("/auth/me").json()["username"] == "dave"
    r = admin.post("/admin/accounts", json={"username": "eve:admin", **body})
    assert r.status_code == 400, r.text


def test_trusted_network_is_throttled_per_account_only(tmp_path_factory, catalog_dir, db_factory):
    """A department's NAT listed in --login-trusted-networks: more failures from its address than the address
    limit lock nobody else out; one account's own limit still holds."""
    extra = ["--login-max-failures-account", "3", "--login-max-failures-address", "2"]
    extra += ["--login-trusted-networks", "192.0.2.0/24,127.0.0.0/8"]
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, extra)
    try:
        admin = login(srv.url, "admin", ADMIN_PASSWORD)
        body = {"username": "frank", "password": PASSWORD, "department": "zrzy", "region_code": "610102"}
        assert admin.post("/admin/accounts", json={**body, "role": "reader"}).status_code == 201
        statuses = [attempt(srv, f"typo{i}", "wrong-password").status_code for i in range(6)]
        assert statuses == [401] * 6  # three times the address limit, from one address
        assert attempt(srv, "frank", PASSWORD).status_code == 200
        statuses = [attempt(srv, "frank", "wrong-password").status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
    finally:
        srv.stop()


def test_unauthenticated_records_trimmed_on_sqlite(tmp_path):
    """The same bound and retention on SQLite (PostgreSQL with two workers: tests/deploy)."""
    import datetime as dt

    from sqlalchemy import text

    from exchange_server import db
    from exchange_server.services.guard import AuditBudget

    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    db.init_schema(engine)
    budget = AuditBudget(engine, 2, 30 * 86400)
    assert [budget.record("auth", "refused", "", {}, "192.0.2.9") for _ in range(5)] == [True] * 2 + [
        False
    ] * 3
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO unauth_audit (ts, action, outcome, target, detail, client_ip) "
                "VALUES (:ts, 'login', 'refused', '', '{}', '192.0.2.1')"
            ),
            {"ts": old.strftime("%Y-%m-%d %H:%M:%S.%f")},
        )
        conn.execute(
            text("INSERT INTO unauth_audit_counts VALUES ('192.0.2.1', :m, 3)"),
            {"m": int(old.timestamp() // 60)},
        )
    budget.trim()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT client_ip FROM unauth_audit")).fetchall() == [("192.0.2.9",)] * 2
        assert conn.execute(text("SELECT client_ip, requests FROM unauth_audit_counts")).fetchall() == [
            ("192.0.2.9", 5)
        ]
