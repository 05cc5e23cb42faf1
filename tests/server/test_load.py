"""200 clients on loopback at once, each uploading, committing (some twice: the idempotent replay), reading
the feed and the versions: no answer is a 5xx, and every package ends up as exactly one submission."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.server.conftest import ADMIN_PASSWORD, PASSWORD, start_server
from tests.server.helpers import Client, build_package, login

CLIENTS = 200
ACCOUNTS = 20
COUNTIES = ["610102", "610103", "610104", "610111", "610112"]


@pytest.fixture(scope="module")
def load_server(tmp_path_factory, catalog_dir, db_factory):
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, ["--max-concurrent-uploads", "40"])
    yield srv
    srv.stop()


def test_200_clients_no_5xx_no_lost_or_duplicated_submission(load_server):
    srv = load_server
    admin = login(srv.url, "admin", ADMIN_PASSWORD)
    tokens = []
    for i in range(ACCOUNTS):
        dept = "zrzy" if i % 2 == 0 else "nync"
        county = COUNTIES[i % len(COUNTIES)]
        body = {"username": f"load{i}", "password": PASSWORD, "department": dept, "region_code": county}
        assert admin.post("/admin/accounts", json={**body, "role": "submitter"}).status_code == 201
        r = admin.post("/admin/tokens", json={"username": f"load{i}", "ttl_seconds": 3600})
        assert r.status_code == 201, r.text
        tokens.append((r.json()["access_token"], dept, county))
    packages = []
    for n in range(CLIENTS):
        token, dept, county = tokens[n % ACCOUNTS]
        dataset = "dltb_biangeng" if dept == "zrzy" else "gbznt"
        packages.append((token, *build_package(dataset, county)))

    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def run(n: int) -> tuple[str, str, int]:
        token, package, manifest = packages[n]
        client = Client(srv.url, token)
        mine = []

        def note(r):
            mine.append(r.status_code)
            return r

        start.wait()
        r = note(client.create_upload(len(package)))
        upload_id = r.headers["Location"].rsplit("/", 1)[1]
        note(client.patch(upload_id, 0, package))
        sha = hashlib.sha256(package).hexdigest()
        body = {"upload_id": upload_id, "package_sha256": sha, "manifest": manifest}
        first = note(client.post("/submissions", json=body))
        if n % 4 == 0:  # the idempotent replay of a commit whose answer was "lost"
            again = note(client.post("/submissions", json=body))
            assert again.status_code == 200 and again.json() == first.json(), (
                first.status_code,
                first.text[:600],
                again.text[:600],
            )
        note(client.get("/feed", params={"cursor": 0, "limit": 5}))
        note(client.get("/versions", params={"limit": 10}))
        with lock:
            statuses.extend(mine)
        assert first.status_code == 201, first.text
        return sha, first.json()["receipt"]["submission_id"], first.status_code

    t0 = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(run, range(CLIENTS)))
    elapsed = time.monotonic() - t0
    assert elapsed < 60, elapsed
    assert not [s for s in statuses if s >= 500], sorted(set(statuses))
    assert len(statuses) == CLIENTS * 5 + CLIENTS // 4
    assert {status for _sha, _id, status in results} == {201}
    # exactly one submission per package, none lost, none twice
    shas = {sha for sha, _id, _status in results}
    assert len(shas) == CLIENTS
    listed = admin.get("/versions", params={"limit": 5000}).json()["items"]
    assert sorted(v["package_sha256"] for v in listed) == sorted(shas)
    assert len({sub_id for _sha, sub_id, _status in results}) == CLIENTS
