"""tus 1.0 uploads over real HTTP: creation, per-chunk sha256, resume after a dropped line at random offsets
and after the server was killed, termination, expiration, limits."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time

import pytest

from tests.server.conftest import ADMIN_PASSWORD, start_server
from tests.server.helpers import build_package, login, partial_patch, slow_patch, wait_offset


def _id(response) -> str:
    assert response.status_code == 201, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def test_create_head_patch_complete(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(300_000)
    r = c.create_upload(len(data), {"filename": "包.zip", "dataset_id": "dltb_biangeng"})
    upload_id = _id(r)
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert "GMT" in r.headers["Upload-Expires"]
    assert c.offset(upload_id) == 0
    r = c.patch(upload_id, 0, data[:100_000])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "100000"
    r = c.patch(upload_id, 100_000, data[100_000:])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    status = c.get("/uploads/" + upload_id).json()
    assert status["state"] == "complete"
    assert status["sha256"] == hashlib.sha256(data).hexdigest()
    assert (server.data_dir / "uploads" / (upload_id + ".part")).read_bytes() == data


def test_corrupted_chunk_refused_with_460_and_nothing_stored(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(200_000)
    upload_id = _id(c.create_upload(len(data)))
    assert c.patch(upload_id, 0, data[:50_000]).status_code == 204
    bad = bytearray(data[50_000:120_000])
    bad[1000] ^= 0xFF
    r = c.patch(upload_id, 50_000, bytes(bad), digest=hashlib.sha256(data[50_000:120_000]).digest())
    assert r.status_code == 460
    assert r.json()["error"]["code"] == "CHECKSUM_MISMATCH"
    assert "校验" in r.json()["error"]["message_zh"]
    assert c.offset(upload_id) == 50_000
    assert (server.data_dir / "uploads" / (upload_id + ".part")).stat().st_size == 50_000
    assert c.patch(upload_id, 50_000, data[50_000:]).status_code == 204
    assert c.get("/uploads/" + upload_id).json()["sha256"] == hashlib.sha256(data).hexdigest()
    refusals = [
        a
        for a in login(server.url, "admin", ADMIN_PASSWORD)
        .get("/admin/audit", params={"action": "upload.patch"})
        .json()["items"]
        if a["target"] == "upload:" + upload_id and a["outcome"] == "refused"
    ]
    assert refusals and "CHECKSUM_MISMATCH" in refusals[0]["detail"]


def test_protocol_errors(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    upload_id = _id(c.create_upload(1000))
    r = c.patch(upload_id, 10, b"x" * 10)
    assert r.status_code == 409 and r.json()["error"]["code"] == "UPLOAD_OFFSET_MISMATCH"
    r = c.request(
        "PATCH",
        "/uploads/" + upload_id,
        data=b"abc",
        headers={"Upload-Offset": "0", "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 415
    r = c.request(
        "PATCH",
        "/uploads/" + upload_id,
        data=b"abc",
        headers={
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "md5 AAAA",
        },
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "CHECKSUM_ALGORITHM"
    r = c.patch(upload_id, 0, b"y" * 1001, checksum=False)
    assert r.status_code == 400 and r.json()["error"]["code"] == "UPLOAD_BEYOND_LENGTH"
    assert c.offset(upload_id) == 0
    r = c.request("HEAD", "/uploads/" + upload_id, headers={"Tus-Resumable": "0.2.2"})
    assert r.status_code == 412
    other = make_account("zrzy", "610102", "submitter")
    assert other.request("HEAD", "/uploads/" + upload_id).status_code == 404
    assert c.request("DELETE", "/uploads/" + upload_id).status_code == 204
    assert c.request("HEAD", "/uploads/" + upload_id).status_code == 404
    assert not (server.data_dir / "uploads" / (upload_id + ".part")).exists()


def test_second_patch_while_first_streams_is_locked(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(400_000)
    upload_id = _id(c.create_upload(len(data)))
    t = threading.Thread(
        target=partial_patch, args=(server.url, c.token, upload_id, 0, data, 100_000, False, 1.5)
    )
    t.start()
    time.sleep(0.5)
    r = c.patch(upload_id, 0, data[:1000])
    t.join()
    assert r.status_code == 423 and r.json()["error"]["code"] == "UPLOAD_LOCKED"
    assert wait_offset(c, upload_id, 100_000) == 100_000


def test_size_and_concurrency_limits(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    r = c.create_upload(5 * 1024**3)
    assert r.status_code == 413 and "最大" in r.json()["error"]["message_zh"]
    ids = [_id(c.create_upload(10)) for _ in range(3)]
    r = c.create_upload(10)
    assert r.status_code == 429
    assert (
        r.json()["error"]["code"] == "UPLOAD_TOO_MANY" and "上传任务过多" in r.json()["error"]["message_zh"]
    )
    # complete but not committed: still held, still counts (only DELETE or a commit frees the slot)
    assert c.patch(ids[0], 0, b"0123456789").status_code == 204
    assert c.create_upload(10).status_code == 429
    assert c.request("DELETE", "/uploads/" + ids[1]).status_code == 204
    _id(c.create_upload(10))
    assert c.create_upload(10).status_code == 429


def test_reader_cannot_upload(make_account):
    r = make_account("nync", "610102", "reader").create_upload(10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN_ROLE"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dropped_line_at_random_offsets_resumes_from_last_stored_byte(server, make_account, seed):
    rng = random.Random(seed)
    c = make_account("zrzy", "610102", "submitter")
    package, manifest = build_package("dltb_biangeng", "610102", count=rng.randint(2, 40))
    package_len = len(package)
    upload_id = _id(c.create_upload(package_len))
    offset = 0
    for _cut in range(3):
        send = rng.randint(1, package_len - offset - 1)
        # the bytes reach the server, then the line drops before the announced length was sent
        partial_patch(server.url, c.token, upload_id, offset, package[offset:], send, pause=0.3)
        assert wait_offset(c, upload_id, offset + send) == offset + send
        offset += send
        stored = (server.data_dir / "uploads" / (upload_id + ".part")).read_bytes()
        assert stored == package[:offset]
    # a checksummed chunk cut in the middle stores nothing
    half = (package_len - offset) // 2
    partial_patch(server.url, c.token, upload_id, offset, package[offset:], half, True, pause=0.3)
    time.sleep(0.3)
    assert c.offset(upload_id) == offset
    assert (server.data_dir / "uploads" / (upload_id + ".part")).stat().st_size == offset
    assert c.patch(upload_id, offset, package[offset:]).status_code == 204
    sha = hashlib.sha256(package).hexdigest()
    r = c.post("/submissions", json={"upload_id": upload_id, "package_sha256": sha, "manifest": manifest})
    assert r.status_code == 201, r.text
    assert r.json()["receipt"]["status"] == "accepted", r.json()


def test_server_killed_mid_upload_then_restarted(tmp_path_factory, catalog_dir, db_factory):
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, ["--sync-every-bytes", "65536"])
    try:
        admin = login(srv.url, "admin", ADMIN_PASSWORD)
        r = admin.post(
            "/admin/accounts",
            json={
                "username": "k",
                "password": "kill-pass-123",
                "department": "zrzy",
                "region_code": "610102",
                "role": "submitter",
            },
        )
        assert r.status_code == 201
        c = login(srv.url, "k", "kill-pass-123")
        data, manifest = build_package("dltb_biangeng", "610102", count=12000)
        assert len(data) > 400_000
        upload_id = _id(c.create_upload(len(data)))
        first = len(data) // 3
        assert c.patch(upload_id, 0, data[:first]).status_code == 204
        # the next PATCH is streaming (no checksum) when the server dies
        t = threading.Thread(
            target=partial_patch,
            args=(srv.url, c.token, upload_id, first, data[first:], len(data) - first - 10, False, 2),
        )
        t.start()
        time.sleep(0.8)
        srv.kill()
        t.join()
        srv.start()
        c.base = srv.url
        offset = c.offset(upload_id)
        assert first + 65536 <= offset < len(data)  # bytes synced in the middle of the cut PATCH survived
        part = (srv.data_dir / "uploads" / (upload_id + ".part")).read_bytes()
        assert part[:offset] == data[:offset]
        assert c.patch(upload_id, offset, data[offset:]).status_code == 204
        sha = hashlib.sha256(data).hexdigest()
        assert c.get("/uploads/" + upload_id).json()["sha256"] == sha
        r = c.post("/submissions", json={"upload_id": upload_id, "package_sha256": sha, "manifest": manifest})
        assert r.status_code == 201 and r.json()["receipt"]["status"] == "accepted", r.text
    finally:
        srv.stop()


def test_upload_expires_and_is_cleaned(tmp_path_factory, catalog_dir, db_factory):
    srv = start_server(
        tmp_path_factory,
        catalog_dir,
        db_factory,
        ["--upload-expiry-seconds", "1", "--cleanup-interval-seconds", "1"],
    )
    try:
        c = login(srv.url, "admin", ADMIN_PASSWORD)
        upload_id = _id(c.create_upload(100))
        assert c.patch(upload_id, 0, b"a" * 40).status_code == 204
        part = srv.data_dir / "uploads" / (upload_id + ".part")
        assert part.exists()
        deadline = time.monotonic() + 10
        while part.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not part.exists()
        r = c.request("HEAD", "/uploads/" + upload_id)
        assert r.status_code == 410
        assert c.patch(upload_id, 40, b"b" * 60).status_code == 410
    finally:
        srv.stop()


def test_upload_checksum_sha1_as_the_tus_extension_requires(make_account):
    """The tus checksum extension requires sha1 of every server (standard clients such as tuspy send it)."""
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(3000)
    r = c.create_upload(len(data))
    upload_id = r.headers["Location"].rsplit("/", 1)[1]
    h = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    r = c.request(
        "PATCH", "/uploads/" + upload_id, headers={**h, "Upload-Checksum": "sha1 " + wrong}, data=data[:1000]
    )
    assert r.status_code == 460, r.text
    assert c.offset(upload_id) == 0
    right = base64.b64encode(hashlib.sha1(data[:1000]).digest()).decode()
    r = c.request(
        "PATCH", "/uploads/" + upload_id, headers={**h, "Upload-Checksum": "sha1 " + right}, data=data[:1000]
    )
    assert r.status_code == 204, r.text
    assert r.headers["Upload-Offset"] == "1000"


def test_files_readable_by_the_server_user_only(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    package, manifest = build_package("dltb_biangeng", "610102")
    r = c.submit(package, manifest)
    assert r.status_code == 201 and r.json()["receipt"]["status"] == "accepted", r.text
    c.create_upload(100)
    files = [p for p in server.data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".zip" for p in files) and any(p.suffix == ".part" for p in files)
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))


def test_upload_expiring_during_a_patch_is_kept_and_committable(tmp_path_factory, catalog_dir, db_factory):
    """The expiry passes while a PATCH is being received: the clean-up leaves the upload alone (a request
    holds it), the PATCH completes it (204) and the commit checks the whole package (201 accepted)."""
    srv = start_server(
        tmp_path_factory,
        catalog_dir,
        db_factory,
        ["--upload-expiry-seconds", "2", "--cleanup-interval-seconds", "1"],
    )
    try:
        c = login(srv.url, "admin", ADMIN_PASSWORD)
        package, manifest = build_package("dltb_biangeng", "610102", count=20)
        upload_id = _id(c.create_upload(len(package)))
        status, headers = slow_patch(srv.url, c.token, upload_id, package, pieces=5, pause=1.0)
        assert status == 204 and headers["upload-offset"] == str(len(package))
        time.sleep(1.5)  # a clean-up round after the PATCH: a complete upload stays committable
        body = {
            "upload_id": upload_id,
            "package_sha256": hashlib.sha256(package).hexdigest(),
            "manifest": manifest,
        }
        r = c.post("/submissions", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["receipt"]["status"] == "accepted"
    finally:
        srv.stop()
