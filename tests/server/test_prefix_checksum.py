"""The huijiao tus extension ``checksum-prefix`` over real HTTP: ``Upload-Prefix-Checksum`` is the sha256 of
the upload's bytes [0, end of the PATCH); the server verifies it with its one running hash of the file."""

from __future__ import annotations

import base64
import hashlib
import os
import time

import pytest
import requests

from tests.server.conftest import ADMIN_PASSWORD, start_server
from tests.server.helpers import API, build_package, login, partial_patch


def _id(response) -> str:
    assert response.status_code == 201, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def _b64(digest: bytes) -> str:
    return "sha256 " + base64.b64encode(digest).decode()


def _patch(
    client, upload_id: str, offset: int, body: bytes, prefix: bytes | None, chunk: bytes | None = None
):
    """PATCH ``body`` at ``offset`` with ``Upload-Prefix-Checksum`` = sha256(prefix) and, when given,
    ``Upload-Checksum`` = sha256(chunk)."""
    headers = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
    if prefix is not None:
        headers["Upload-Prefix-Checksum"] = _b64(hashlib.sha256(prefix).digest())
    if chunk is not None:
        headers["Upload-Checksum"] = _b64(hashlib.sha256(chunk).digest())
    return client.request("PATCH", "/uploads/" + upload_id, headers=headers, data=body)


def _part(server, upload_id: str):
    return server.data_dir / "uploads" / (upload_id + ".part")


def _refusals(server, upload_id: str) -> list[dict]:
    items = (
        login(server.url, "admin", ADMIN_PASSWORD)
        .get("/admin/audit", params={"action": "upload.patch"})
        .json()["items"]
    )
    return [a for a in items if a["target"] == "upload:" + upload_id and a["outcome"] == "refused"]


def test_options_advertises_prefix_checksum(server):
    r = requests.options(server.url + API + "/uploads", timeout=10)
    assert "checksum-prefix" in r.headers["Tus-Extension"].split(",")
    assert r.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"


def test_prefix_checksum_accepted(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(250_000)
    upload_id = _id(c.create_upload(len(data)))
    for start, end in ((0, 80_000), (80_000, 170_000), (170_000, 250_000)):
        r = _patch(c, upload_id, start, data[start:end], data[:end])
        assert r.status_code == 204, r.text
        assert r.headers["Upload-Offset"] == str(end)
    status = c.get("/uploads/" + upload_id).json()
    assert status["state"] == "complete"
    assert status["sha256"] == hashlib.sha256(data).hexdigest()
    assert _part(server, upload_id).read_bytes() == data


def test_wrong_prefix_checksum_refused_nothing_kept_then_retry_succeeds(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(200_000)
    upload_id = _id(c.create_upload(len(data)))
    assert _patch(c, upload_id, 0, data[:60_000], data[:60_000]).status_code == 204
    # the prefix digest of other bytes (the body itself is right)
    r = _patch(c, upload_id, 60_000, data[60_000:130_000], b"x" + data[1:130_000])
    assert r.status_code == 460
    assert r.json()["error"]["code"] == "CHECKSUM_MISMATCH"
    assert r.headers["Upload-Offset"] == "60000"
    assert c.offset(upload_id) == 60_000
    assert _part(server, upload_id).stat().st_size == 60_000
    refusals = _refusals(server, upload_id)
    assert refusals and "CHECKSUM_MISMATCH" in refusals[0]["detail"]
    # the server went back to its running hash of [0, 60000): the right retry and the rest are accepted
    assert _patch(c, upload_id, 60_000, data[60_000:130_000], data[:130_000]).status_code == 204
    assert _patch(c, upload_id, 130_000, data[130_000:], data).status_code == 204
    status = c.get("/uploads/" + upload_id).json()
    assert status["sha256"] == hashlib.sha256(data).hexdigest()
    assert _part(server, upload_id).read_bytes() == data


def test_corruption_in_a_later_chunk_detected_at_that_chunk(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(300_000)
    upload_id = _id(c.create_upload(len(data)))
    assert _patch(c, upload_id, 0, data[:100_000], data[:100_000]).status_code == 204
    assert _patch(c, upload_id, 100_000, data[100_000:200_000], data[:200_000]).status_code == 204
    bad = bytearray(data[200_000:])
    bad[77_777] ^= 0x01  # one bit flipped on the line in the third chunk
    r = _patch(c, upload_id, 200_000, bytes(bad), data)
    assert r.status_code == 460 and r.headers["Upload-Offset"] == "200000"
    assert c.offset(upload_id) == 200_000
    assert _part(server, upload_id).read_bytes() == data[:200_000]
    assert _patch(c, upload_id, 200_000, data[200_000:], data).status_code == 204
    assert c.get("/uploads/" + upload_id).json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_mixed_chunk_and_prefix_checksums_on_one_upload(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(400_000)
    upload_id = _id(c.create_upload(len(data)))
    assert c.patch(upload_id, 0, data[:100_000]).status_code == 204  # standard per-chunk sha256
    assert _patch(c, upload_id, 100_000, data[100_000:200_000], data[:200_000]).status_code == 204
    # both headers: both are verified; a right chunk digest does not save a wrong prefix, nor the reverse
    body = data[200_000:300_000]
    r = _patch(c, upload_id, 200_000, body, data[:299_999], chunk=body)
    assert r.status_code == 460 and c.offset(upload_id) == 200_000
    r = _patch(c, upload_id, 200_000, body, data[:300_000], chunk=body[:-1])
    assert r.status_code == 460 and c.offset(upload_id) == 200_000
    assert _patch(c, upload_id, 200_000, body, data[:300_000], chunk=body).status_code == 204
    assert c.patch(upload_id, 300_000, data[300_000:]).status_code == 204  # per-chunk again to the end
    status = c.get("/uploads/" + upload_id).json()
    assert status["state"] == "complete"
    assert status["sha256"] == hashlib.sha256(data).hexdigest()


def test_cut_prefix_patch_keeps_nothing(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    data = os.urandom(500_000)
    upload_id = _id(c.create_upload(len(data)))
    assert _patch(c, upload_id, 0, data[:100_000], data[:100_000]).status_code == 204
    prefix = {"Upload-Prefix-Checksum": _b64(hashlib.sha256(data).digest())}
    partial_patch(server.url, c.token, upload_id, 100_000, data[100_000:], 250_000, pause=0.3, headers=prefix)
    time.sleep(0.3)
    assert c.offset(upload_id) == 100_000
    assert _part(server, upload_id).stat().st_size == 100_000
    assert _patch(c, upload_id, 100_000, data[100_000:], data).status_code == 204
    assert c.get("/uploads/" + upload_id).json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_malformed_prefix_header_refused(server, make_account):
    c = make_account("zrzy", "610102", "submitter")
    upload_id = _id(c.create_upload(10))
    h = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    r = c.request(
        "PATCH", "/uploads/" + upload_id, headers={**h, "Upload-Prefix-Checksum": "md5 AAAA"}, data=b"1"
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "CHECKSUM_ALGORITHM"
    r = c.request(
        "PATCH", "/uploads/" + upload_id, headers={**h, "Upload-Prefix-Checksum": "sha256 ***"}, data=b"1"
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "REQUEST_INVALID"
    assert c.offset(upload_id) == 0


def test_resume_after_server_restart_rebuilds_running_hash(tmp_path_factory, catalog_dir, db_factory):
    srv = start_server(tmp_path_factory, catalog_dir, db_factory)
    try:
        admin = login(srv.url, "admin", ADMIN_PASSWORD)
        r = admin.post(
            "/admin/accounts",
            json={
                "username": "p",
                "password": "prefix-pass-123",
                "department": "zrzy",
                "region_code": "610102",
                "role": "submitter",
            },
        )
        assert r.status_code == 201, r.text
        c = login(srv.url, "p", "prefix-pass-123")
        data, manifest = build_package("dltb_biangeng", "610102", count=3000)
        third = len(data) // 3
        upload_id = _id(c.create_upload(len(data)))
        assert _patch(c, upload_id, 0, data[:third], data[:third]).status_code == 204
        srv.kill()  # the running hash dies with the process
        srv.start()
        c.base = srv.url
        assert c.offset(upload_id) == third
        # the rebuilt hash is the real one: a wrong prefix is still refused after the restart
        r = _patch(c, upload_id, third, data[third : 2 * third], b"\0" * (2 * third))
        assert r.status_code == 460 and c.offset(upload_id) == third
        srv.stop()
        srv.start()
        c.base = srv.url
        assert _patch(c, upload_id, third, data[third : 2 * third], data[: 2 * third]).status_code == 204
        assert _patch(c, upload_id, 2 * third, data[2 * third :], data).status_code == 204
        sha = hashlib.sha256(data).hexdigest()
        assert c.get("/uploads/" + upload_id).json()["sha256"] == sha
        r = c.post("/submissions", json={"upload_id": upload_id, "package_sha256": sha, "manifest": manifest})
        assert r.status_code == 201, r.text
        assert r.json()["receipt"]["status"] == "accepted", r.json()
        assert r.json()["receipt"]["package_sha256"] == sha
    finally:
        srv.stop()


@pytest.mark.parametrize("extra", [[], ["--no-direct-io"]], ids=["direct", "page-cache"])
def test_unaligned_patches_larger_than_a_staging_buffer(tmp_path_factory, catalog_dir, db_factory, extra):
    """Direct writes (O_DIRECT where possible) and ``--no-direct-io`` (through the page cache): PATCHes that
    start and end off the 4 KiB grid, one of them cut, a body larger than a staging buffer (8 MiB)."""
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, extra)
    try:
        c = login(srv.url, "admin", ADMIN_PASSWORD)
        data = os.urandom(9 * 1024 * 1024 + 12_345)
        upload_id = _id(c.create_upload(len(data)))
        assert _patch(c, upload_id, 0, data[:5_000], data[:5_000]).status_code == 204
        partial_patch(srv.url, c.token, upload_id, 5_000, data[5_000:], 70_001, pause=0.3)
        deadline = time.monotonic() + 10
        while c.offset(upload_id) != 75_001 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.offset(upload_id) == 75_001  # no checksum: the bytes that arrived are kept
        assert _patch(c, upload_id, 75_001, data[75_001:], data).status_code == 204
        assert c.get("/uploads/" + upload_id).json()["sha256"] == hashlib.sha256(data).hexdigest()
        assert _part(srv, upload_id).read_bytes() == data
    finally:
        srv.stop()
