"""A fault of the server is not a verdict about the package: with the data directory on a real, full disk (a
small tmpfs), a commit answers 503 with Retry-After and no paths or errno text, the upload stays committable,
DELETE still frees space, and once there is room again the same commit is checked and accepted."""

from __future__ import annotations

import errno
import hashlib
import subprocess

import pytest

from tests.server.conftest import ADMIN_PASSWORD, PASSWORD
from tests.server.helpers import ServerProcess, build_package, login


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def disk_server(small_disk, catalog_dir, db_factory):
    srv = ServerProcess(small_disk / "srv", catalog_dir, db_factory(), ["--no-direct-io"])
    srv.cli("create-account", "--username", "admin", "--password", ADMIN_PASSWORD, "--department", "zrzy",
            "--region", "610000", "--role", "admin")  # fmt: skip
    srv.start()
    yield srv
    srv.stop()


def fill(directory) -> None:
    """Write a file until the disk says it is full."""
    block = b"\0" * 65536
    with open(directory / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    with open(directory / "filler2", "wb", buffering=0) as fh:  # the last partial block
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError as err:
            assert err.errno == errno.ENOSPC


def assert_transient(r, mount) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    err = r.json()["error"]
    assert err["code"] in ("STORAGE_UNAVAILABLE", "DATABASE_BUSY"), err
    for text in (err["message"], err["message_zh"], r.text):
        assert "Errno" not in text and str(mount) not in text and "/" not in text, text


def test_disk_full_is_a_503_not_a_rejection(disk_server, small_disk):
    srv = disk_server
    admin = login(srv.url, "admin", ADMIN_PASSWORD)
    body = {"password": PASSWORD, "department": "zrzy", "region_code": "610102", "role": "submitter"}
    assert admin.post("/admin/accounts", json={"username": "sub", **body}).status_code == 201
    client = login(srv.url, "sub", PASSWORD)
    package, manifest = build_package("dltb_biangeng", "610102", count=200)
    upload_id = client.upload(package)
    spare, _ = build_package("dltb_biangeng", "610102", count=150)
    spare_id = client.upload(spare)
    commit = {
        "upload_id": upload_id,
        "package_sha256": hashlib.sha256(package).hexdigest(),
        "manifest": manifest,
    }

    fill(small_disk)
    r = client.post("/submissions", json=commit)
    assert_transient(r, small_disk)
    # the upload is still complete and committable, no submission exists
    status = client.get("/uploads/" + upload_id)
    assert status.status_code == 200 and status.json()["state"] == "complete", status.text
    assert client.get("/submissions").json()["items"] == []
    # a new upload's bytes are refused the same way (creating it may already fail on the full database)
    r = client.create_upload(4096)
    if r.status_code == 201:
        new_id = r.headers["Location"].rsplit("/", 1)[1]
        r = client.patch(new_id, 0, b"x" * 4096)
        assert_transient(r, small_disk)
        assert client.offset(new_id) == 0
    else:
        assert_transient(r, small_disk)
    # DELETE works on the full disk: the file goes first, freeing the space the row needs
    r = client.request("DELETE", "/uploads/" + spare_id)
    assert r.status_code == 204, r.text

    (small_disk / "filler").unlink()
    (small_disk / "filler2").unlink()
    r = client.post("/submissions", json=commit)
    assert r.status_code == 201, r.text
    assert r.headers["X-Duplicate"] == "False"
    assert r.json()["receipt"]["status"] == "accepted", r.json()["receipt"]["findings"]


def test_database_locked_after_the_move_is_a_503_and_the_upload_stays(tmp_path, catalog_dir):
    """SQLite locked by another writer while the commit records its result (after the package was moved to
    the store): 503 DATABASE_BUSY, the package goes back to the upload, and the repeated commit is accepted
    (before: 500, then NOT_A_ZIP on the retry, signed)."""
    import sqlite3

    srv = ServerProcess(tmp_path / "srv", catalog_dir, None, ["--db-busy-timeout", "1"])
    srv.cli("create-account", "--username", "admin", "--password", ADMIN_PASSWORD, "--department", "zrzy",
            "--region", "610000", "--role", "admin")  # fmt: skip
    srv.start()
    try:
        admin = login(srv.url, "admin", ADMIN_PASSWORD)
        body = {"password": PASSWORD, "department": "zrzy", "region_code": "610102", "role": "submitter"}
        assert admin.post("/admin/accounts", json={"username": "sub", **body}).status_code == 201
        client = login(srv.url, "sub", PASSWORD)
        package, manifest = build_package("dltb_biangeng", "610102")
        upload_id = client.upload(package)
        sha = hashlib.sha256(package).hexdigest()
        commit = {"upload_id": upload_id, "package_sha256": sha, "manifest": manifest}
        holder = sqlite3.connect(srv.data_dir / "exchange.sqlite3", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock; readers (WAL) go on
        try:
            r = client.post("/submissions", json=commit)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "DATABASE_BUSY" and int(r.headers["Retry-After"]) > 0
        assert "/" not in r.json()["error"]["message"] and "Errno" not in r.text
        assert not list((srv.data_dir / "packages").rglob("*.zip"))
        r = client.post("/submissions", json=commit)
        assert r.status_code == 201, r.text
        assert r.headers["X-Duplicate"] == "False"
        assert r.json()["receipt"]["status"] == "accepted", r.json()["receipt"]["findings"]
    finally:
        srv.stop()
