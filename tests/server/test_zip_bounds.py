"""Zip inspection is bounded before the central directory is parsed: a zip of 200,000 empty entries is
refused from its end record without the server's peak memory growing, and many members just under the
per-member ratio threshold are caught by the ratio of the whole package."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile

import pytest

from tests.server.conftest import ADMIN_PASSWORD, PASSWORD, start_server
from tests.server.helpers import build_package, login
from tests.server.test_limits import memory_kib

MB = 1024 * 1024


@pytest.fixture(scope="module")
def zip_server(tmp_path_factory, catalog_dir, db_factory):
    srv = start_server(tmp_path_factory, catalog_dir, db_factory)
    yield srv
    srv.stop()


def many_entries(count: int) -> bytes:
    """A valid zip of ``count`` empty stored members, written directly (zipfile takes minutes for this)."""
    local, central = [], []
    offset = 0
    for i in range(count):
        name = b"%07d" % i
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
        central.append(
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset
            )
            + name
        )
        local.append(header)
        offset += len(header)
    cd = b"".join(central)
    entries = min(count, 0xFFFF)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries, len(cd), offset, 0)
    return b"".join(local) + cd + end


def submitter(srv, name: str):
    admin = login(srv.url, "admin", ADMIN_PASSWORD)
    body = {"username": name, "password": PASSWORD, "department": "zrzy", "region_code": "610102"}
    assert admin.post("/admin/accounts", json={**body, "role": "submitter"}).status_code == 201
    return login(srv.url, name, PASSWORD)


def test_entry_count_refused_from_the_end_record(zip_server):
    srv = zip_server
    client = submitter(srv, "zb1")
    _package, manifest = build_package("dltb_biangeng", "610102")
    data = many_entries(200_000)
    assert len(zipfile.ZipFile(io.BytesIO(data)).infolist()) == 200_000  # a real zip
    upload_id = client.upload(data, chunk=8 * MB)
    before = memory_kib(srv.proc.pid)
    body = {"upload_id": upload_id, "package_sha256": hashlib.sha256(data).hexdigest(), "manifest": manifest}
    r = client.post("/submissions", json=body)
    after = memory_kib(srv.proc.pid)
    assert r.status_code == 201, r.text
    codes = {f["code"] for f in r.json()["receipt"]["findings"]}
    assert "ZIP_TOO_MANY_FILES" in codes, codes
    # parsing 200,000 directory entries costs ~100 MB; reading the end record costs nothing
    assert after["VmHWM"] - before["VmHWM"] < 20 * 1024, (before, after)


def test_whole_package_ratio(zip_server):
    client = submitter(zip_server, "zb2")
    zeros = bytes(MB)  # exactly the per-member threshold: not checked member by member

    def tamper(manifest):
        for i in range(40):
            rel = f"data/z{i}.gpkg"
            manifest["files"].append({"path": rel, "size": MB, "sha256": hashlib.sha256(zeros).hexdigest()})

    package, manifest = build_package(
        "dltb_biangeng", "610102", tamper=tamper, extra_entries={f"data/z{i}.gpkg": zeros for i in range(40)}
    )
    r = client.submit(package, manifest)
    assert r.status_code == 201, r.text
    codes = {f["code"] for f in r.json()["receipt"]["findings"]}
    assert "ZIP_RATIO" in codes, codes
