"""Quotas count every byte an account holds: uploads in progress, complete but uncommitted, and accepted
packages; DELETE gives the slot and the bytes back."""

from __future__ import annotations

import hashlib

import pytest

from tests.server.conftest import ADMIN_PASSWORD, PASSWORD, start_server
from tests.server.helpers import build_package, login


@pytest.fixture(scope="module")
def quota_server(tmp_path_factory, catalog_dir, db_factory):
    package, _ = build_package("dltb_biangeng", "610102")
    # room for the package accepted below plus 20,000 bytes of uploads
    extra = ["--max-concurrent-uploads", "2", "--account-quota-bytes", str(len(package) + 20_000)]
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, extra)
    yield srv
    srv.stop()


def test_complete_uncommitted_and_committed_bytes_count(quota_server):
    srv = quota_server
    admin = login(srv.url, "admin", ADMIN_PASSWORD)
    body = {"username": "q", "password": PASSWORD, "department": "zrzy", "region_code": "610102"}
    assert admin.post("/admin/accounts", json={**body, "role": "submitter"}).status_code == 201
    c = login(srv.url, "q", PASSWORD)
    package, manifest = build_package("dltb_biangeng", "610102")
    r = c.submit(package, manifest)  # accepted: its bytes are held from now on
    assert r.status_code == 201 and r.json()["receipt"]["status"] == "accepted", r.text

    complete = c.upload(b"a" * 8000)  # complete, never committed
    assert c.get("/uploads/" + complete).json()["state"] == "complete"
    r = c.create_upload(8000)
    assert r.status_code == 201, r.text
    active = r.headers["Location"].rsplit("/", 1)[1]
    # two uploads held (one complete, one in progress): no third
    r = c.create_upload(10)
    assert r.status_code == 429 and r.json()["error"]["code"] == "UPLOAD_TOO_MANY", r.text
    assert int(r.headers["Retry-After"]) > 0
    assert c.request("DELETE", "/uploads/" + active).status_code == 204
    # 8,000 held + the package + 12,001 > the quota; 12,000 fits
    r = c.create_upload(12_001)
    assert r.status_code == 413 and r.json()["error"]["code"] == "QUOTA_EXCEEDED", r.text
    r = c.create_upload(12_000)
    assert r.status_code == 201, r.text
    assert hashlib.sha256(package).hexdigest() in {
        s["package_sha256"] for s in c.get("/submissions").json()["items"]
    }
