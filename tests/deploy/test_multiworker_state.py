"""State shared by server workers: two real server processes on one data directory and one PostgreSQL
database (two workers behind one proxy, or two hosts), each request sent to a chosen one. What one process
kept in its memory (login failures, the lock of an upload being written, the next version number) would
let the other one pass: the tests alternate the workers so that they fail with per-process state."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
import requests

from tests.server.conftest import ADMIN_PASSWORD, PASSWORD, PG_SKIP, pg_url
from tests.server.helpers import (
    API,
    Client,
    ServerProcess,
    build_package,
    db_rows,
    login,
    slow_patch,
    two_workers,
)

ACCOUNT_LIMIT = 4
ADDRESS_LIMIT = 10


@pytest.fixture()
def workers(tmp_path):
    if not pg_url():
        pytest.skip(PG_SKIP)
    extra = ["--login-max-failures-account", str(ACCOUNT_LIMIT)]
    extra += ["--login-max-failures-address", str(ADDRESS_LIMIT), "--login-window-seconds", "600"]
    extra += ["--log-level", "info"]  # the commit retries are logged at info
    with two_workers(tmp_path, pg_url(), extra) as procs:
        yield procs


def _account(admin: Client, name: str, department: str = "zrzy", region: str = "610102") -> None:
    body = {"username": name, "password": PASSWORD, "department": department, "region_code": region}
    assert admin.post("/admin/accounts", json={**body, "role": "submitter"}).status_code == 201


def _attempt(proc: ServerProcess, username: str, password: str) -> requests.Response:
    body = {"username": username, "password": password}
    return requests.post(proc.url + API + "/auth/token", json=body, timeout=30)


def test_wrong_passwords_over_two_workers_throttle_at_the_count_of_one(workers):
    a, b = workers
    _account(login(a.url, "admin", ADMIN_PASSWORD), "alice")
    statuses = [_attempt(workers[i % 2], "alice", "wrong-password").status_code for i in range(ACCOUNT_LIMIT)]
    assert statuses == [401] * ACCOUNT_LIMIT
    for proc in (a, b):  # the right password does not help on either worker
        r = _attempt(proc, "alice", PASSWORD)
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["Retry-After"]) <= 600


def test_address_throttle_counts_the_failures_of_both_workers(workers):
    a, b = workers
    _account(login(a.url, "admin", ADMIN_PASSWORD), "bob")
    # the admin's login above succeeded: successes do not count against the address
    names = [f"nobody{i}" for i in range(ADDRESS_LIMIT)]
    statuses = [_attempt(workers[i % 2], name, "wrong-password").status_code for i, name in enumerate(names)]
    assert statuses == [401] * ADDRESS_LIMIT
    for proc in (a, b):
        r = _attempt(proc, "bob", PASSWORD)
        assert r.status_code == 429, r.text
    rows = db_rows(a, "SELECT count(*) FROM login_failures")[0][0]
    assert rows == ADDRESS_LIMIT + 1  # one per unknown account, one for the address


def test_two_patches_of_one_upload_through_two_workers(workers):
    a, b = workers
    admin = login(a.url, "admin", ADMIN_PASSWORD)
    _account(admin, "carol")
    on_a, on_b = login(a.url, "carol", PASSWORD), login(b.url, "carol", PASSWORD)
    package, manifest = build_package("dltb_biangeng", "610102", count=40)
    r = on_a.create_upload(len(package))
    assert r.status_code == 201, r.text
    upload_id = r.headers["Location"].rsplit("/", 1)[1]
    started, answers = threading.Event(), []
    writer = threading.Thread(
        target=lambda: answers.append(slow_patch(a.url, on_a.token, upload_id, package, 2, 2.0, started))
    )
    writer.start()
    assert started.wait(30)
    time.sleep(0.5)  # the first half is being written by worker a
    other = bytes(reversed(package))  # other bytes at the same offset, through worker b
    second = on_b.patch(upload_id, 0, other)
    writer.join(60)
    assert second.status_code == 423 and second.json()["error"]["code"] == "UPLOAD_LOCKED", second.text
    assert answers[0][0] == 204 and answers[0][1]["upload-offset"] == str(len(package))
    head = on_b.request("HEAD", "/uploads/" + upload_id)
    assert head.status_code == 200
    assert head.headers["Upload-Sha256"] == hashlib.sha256(package).hexdigest()
    stored = (a.data_dir / "uploads" / f"{upload_id}.part").read_bytes()
    assert stored == package
    sha = hashlib.sha256(package).hexdigest()
    body = {"upload_id": upload_id, "package_sha256": sha, "manifest": manifest}
    r = on_b.post("/submissions", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["receipt"]["status"] == "accepted"


def test_concurrent_publishes_through_two_workers_number_versions_consecutively(workers):
    a, b = workers
    admin = login(a.url, "admin", ADMIN_PASSWORD)
    count = 12
    clients, bodies = [], []
    for i in range(count):  # accounts of one county, each with a package of the same dataset and period
        _account(admin, f"pub{i}")
        client = login(workers[i % 2].url, f"pub{i}", PASSWORD)
        package, manifest = build_package("dltb_biangeng", "610102", count=3 + i)
        upload_id = client.upload(package)
        sha = hashlib.sha256(package).hexdigest()
        clients.append(client)
        bodies.append({"upload_id": upload_id, "package_sha256": sha, "manifest": manifest})
    start = threading.Barrier(count)
    answers: list = [None] * count

    def publish(i: int) -> None:
        start.wait()
        answers[i] = clients[i].post("/submissions", json=bodies[i])

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [r.status_code for r in answers] == [201] * count, [r.text[:300] for r in answers]
    numbers = sorted(r.json()["receipt"]["version"] for r in answers)
    assert numbers == list(range(1, count + 1))
    rows = db_rows(a, "SELECT version_no FROM versions WHERE region_code = '610102' ORDER BY version_no")
    assert [n for (n,) in rows] == list(range(1, count + 1))
    # numbered one after the other: no commit had to retry after losing a race for a number
    logs = a.log_path.read_text(errors="replace") + b.log_path.read_text(errors="replace")
    assert "commit race" not in logs


def test_concurrent_upload_creations_through_two_workers_keep_the_limit(workers):
    """The uploads an account may hold (default 4) and its quota are counted across workers."""
    a, b = workers
    _account(login(a.url, "admin", ADMIN_PASSWORD), "dave")
    clients = [login(proc.url, "dave", PASSWORD) for proc in (a, b)]
    count = 12
    start = threading.Barrier(count)
    answers: list = [None] * count

    def create(i: int) -> None:
        client = Client(clients[i % 2].base, clients[i % 2].token)  # a connection of its own
        start.wait()
        answers[i] = client.create_upload(1000).status_code

    threads = [threading.Thread(target=create, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [201] * 4 + [429] * (count - 4)
    held = db_rows(a, "SELECT count(*) FROM uploads WHERE state = 'active'")[0][0]
    assert held == 4
