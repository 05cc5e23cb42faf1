"""Accounts, login, token expiry and revocation, the public endpoints, the append-only audit log."""

from __future__ import annotations

import sqlite3
import time

import pytest
import requests

from tests.server.conftest import PASSWORD
from tests.server.helpers import API, Client, db_rows, login


def test_health_openapi_and_server_key(server):
    assert requests.get(server.url + API + "/health", timeout=10).json()["status"] == "ok"
    spec = requests.get(server.url + API + "/openapi.json", timeout=10).json()
    assert "/api/v1/uploads/{upload_id}" in spec["paths"]
    assert "/api/v1/submissions" in spec["paths"]
    key = requests.get(server.url + API + "/server-key", timeout=10).json()
    assert key["algorithm"] == "Ed25519"
    assert key["fingerprint"].startswith("SHA256:")
    assert (server.data_dir / "keys" / "receipt_ed25519.pem").stat().st_mode & 0o077 == 0


def test_tus_options(server):
    r = requests.options(server.url + API + "/uploads", timeout=10)
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {
        "creation",
        "checksum",
        "checksum-prefix",
        "termination",
        "expiration",
    }
    assert r.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"
    assert int(r.headers["Tus-Max-Size"]) > 0


def test_login_wrong_password_refused_in_chinese(server, make_account):
    c = make_account("zrzy", "610102", "reader")
    r = requests.post(
        server.url + API + "/auth/token", json={"username": c.username, "password": "nope"}, timeout=10
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTH_INVALID"
    assert "密码" in r.json()["error"]["message_zh"]


def test_no_token_and_garbage_token(server):
    r = requests.get(server.url + API + "/auth/me", timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "AUTH_REQUIRED"
    r = Client(server.url, "hj_garbage").get("/auth/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "TOKEN_INVALID"


def test_me_shows_normalised_region(server, make_account):
    c = make_account("nync", "610100", "reviewer")
    me = c.get("/auth/me").json()
    assert me["region_code"] == "6101" and me["department"] == "nync" and me["role"] == "reviewer"


def test_expired_token_refused(server, make_account):
    c = make_account("zrzy", "610102", "reader")
    r = requests.post(
        server.url + API + "/auth/token",
        json={"username": c.username, "password": PASSWORD, "ttl_seconds": 1},
        timeout=10,
    )
    short = Client(server.url, r.json()["access_token"])
    assert short.get("/auth/me").status_code == 200
    time.sleep(1.3)
    r = short.get("/auth/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "TOKEN_EXPIRED"
    assert "过期" in r.json()["error"]["message_zh"]


def test_revoked_token_refused_own_and_by_admin(server, admin, make_account):
    c = make_account("zrzy", "610102", "submitter")
    assert c.post("/auth/revoke").status_code == 204
    r = c.get("/auth/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "TOKEN_REVOKED"
    c2 = login(server.url, c.username, PASSWORD)
    c3 = login(server.url, c.username, PASSWORD)
    assert admin.post("/admin/tokens/revoke", json={"username": c.username}).json()["revoked"] == 2
    for cl in (c2, c3):
        assert cl.get("/auth/me").json()["error"]["code"] == "TOKEN_REVOKED"


def test_cli_issue_and_revoke_token(server):
    server.cli(
        "create-account",
        "--username",
        "cli_user",
        "--password",
        PASSWORD,
        "--department",
        "nync",
        "--region",
        "610102",
        "--role",
        "reader",
    )
    tok = server.cli("issue-token", "--username", "cli_user")["access_token"]
    c = Client(server.url, tok)
    assert c.get("/auth/me").json()["username"] == "cli_user"
    assert server.cli("revoke-token", "--username", "cli_user")["revoked"] == 1
    assert c.get("/auth/me").json()["error"]["code"] == "TOKEN_REVOKED"


def test_create_account_validation(admin):
    ok = dict(username="x4", password=PASSWORD, department="zrzy", region_code="610102", role="reader")

    def create(**changes):
        return admin.post("/admin/accounts", json={**ok, **changes})

    assert create(username="x1", password="short").status_code == 400
    assert create(username="x2", department="other").status_code == 400
    r = create(username="x3", region_code="61ab")
    assert r.status_code == 400 and r.json()["error"]["code"] == "REGION_INVALID"
    assert create().status_code == 201
    assert create().json()["error"]["code"] == "ACCOUNT_EXISTS"


def test_passwords_stored_as_scrypt(server):
    hashes = [r[0] for r in db_rows(server, "SELECT password_hash FROM accounts")]
    assert hashes and all(h.startswith("scrypt$") for h in hashes)
    assert not any(PASSWORD in h for h in hashes)


def test_audit_is_append_only(server, admin, backend):
    body = {"username": "admin", "password": "not-the-password"}
    assert requests.post(server.url + API + "/auth/token", json=body, timeout=10).status_code == 401
    # a refused login is recorded apart (bounded, trimmed); the actions of accounts stay append-only
    rows = admin.get("/admin/audit", params={"action": "login", "unauthenticated": "true"}).json()["items"]
    assert any(r["outcome"] == "refused" and r["target"] == "account:admin" for r in rows)
    assert admin.get("/admin/audit").json()["items"]
    if backend == "sqlite":
        conn = sqlite3.connect(server.data_dir / "exchange.sqlite3")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET outcome = 'ok'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")
        conn.close()
    else:
        import psycopg

        url = server.db_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("UPDATE audit SET outcome = 'ok'")
            conn.rollback()
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("DELETE FROM audit")
            conn.rollback()
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("TRUNCATE audit")


def test_non_admin_cannot_use_admin_api(make_account):
    c = make_account("zrzy", "61", "reviewer")
    r = c.get("/admin/accounts")
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN_ROLE"


def test_disable_enable_and_set_password(server, admin, make_account):
    c = make_account("nync", "610102", "reader")
    r = admin.request("PATCH", "/admin/accounts/" + c.username, json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    r = c.get("/auth/me")
    assert r.status_code == 403 and r.json()["error"]["code"] == "ACCOUNT_DISABLED"
    r = requests.post(
        server.url + API + "/auth/token", json={"username": c.username, "password": PASSWORD}, timeout=10
    )
    # told the same way as a wrong password (no account state revealed before authentication)
    assert r.status_code == 401 and r.json()["error"]["code"] == "AUTH_INVALID"
    server.cli("enable-account", "--username", c.username)
    assert c.get("/auth/me").status_code == 200
    server.cli("set-password", "--username", c.username, "--password", "another-pass-9")
    # the password reset revoked the old token
    assert c.get("/auth/me").status_code == 401
    username = c.username
    c = login(server.url, username, "another-pass-9")
    c.username = username
    assert c.get("/auth/me").status_code == 200
    assert admin.request("PATCH", "/admin/accounts/nobody_here", json={"disabled": True}).status_code == 404
    assert c.request("PATCH", "/admin/accounts/" + c.username, json={"disabled": False}).status_code == 403
