"""The feed's cost does not grow with the number of versions (20,000 here): a poll reads a bounded number of
rows by primary key, measured as the server process's own CPU time; /versions is paged."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, insert, select

from exchange_server import db
from tests.server.conftest import ADMIN_PASSWORD, start_server
from tests.server.helpers import build_package, login

N = 20_000


@pytest.fixture(scope="module")
def big_server(tmp_path_factory, catalog_dir, db_factory):
    srv = start_server(tmp_path_factory, catalog_dir, db_factory)
    yield srv
    srv.stop()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_feed_poll_cost_independent_of_version_count(big_server, make_account):
    srv = big_server
    admin = login(srv.url, "admin", ADMIN_PASSWORD)
    body = {"username": "fs", "password": "secret-pass-123", "department": "zrzy", "region_code": "610102"}
    assert admin.post("/admin/accounts", json={**body, "role": "submitter"}).status_code == 201
    sub = login(srv.url, "fs", "secret-pass-123")
    package, manifest = build_package("dltb_biangeng", "610102")
    assert sub.submit(package, manifest).status_code == 201
    url = srv.db_url or "sqlite:///{}".format(srv.data_dir / "exchange.sqlite3")
    engine = create_engine(url)
    with engine.begin() as conn:
        first = dict(conn.execute(select(db.versions)).mappings().one())
        first.pop("id")
        rows = [dict(first, version_no=first["version_no"] + 1 + i) for i in range(N)]
        conn.execute(insert(db.versions), rows)
    engine.dispose()

    def polls(count: int) -> float:
        start = cpu_seconds(srv.proc.pid)
        for _ in range(count):
            r = admin.get("/feed", params={"cursor": 0, "limit": 1})
            assert r.status_code == 200 and len(r.json()["items"]) == 1, r.text
        return cpu_seconds(srv.proc.pid) - start

    polls(3)  # warm up
    spent = polls(20)
    # loading the 20,000 rows per poll costs ~0.1-0.3 s of CPU each (2-6 s for 20); a bounded read ~ms each
    assert spent < 1.0, spent
    r = admin.get("/feed", params={"cursor": 0, "limit": 1}).json()
    assert r["next_cursor"] == r["items"][0]["version_id"]

    page = admin.get("/versions", params={"limit": 500}).json()
    assert len(page["items"]) == 500 and page["next_after"] == page["items"][-1]["version_id"]
    page2 = admin.get("/versions", params={"limit": 500, "after": page["next_after"]}).json()
    assert page2["items"][0]["version_id"] > page["next_after"]
    last = admin.get("/versions", params={"limit": 5000, "after": page["next_after"] + N - 1000}).json()
    assert last["next_after"] is None
