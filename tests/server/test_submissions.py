"""Commits: the server's own checks, signed receipts verified offline, idempotency, hostile packages."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.server.helpers import build_package, make_gpkg


def canonical(obj) -> bytes:
    """The documented canonical form, written here independently of the server's code."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def verify(public_b64: str, envelope: dict) -> None:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
    key.verify(base64.b64decode(envelope["signature"]), canonical(envelope["receipt"]))


@pytest.fixture(scope="module")
def zrzy(make_account):
    return make_account("zrzy", "610102", "submitter")


@pytest.fixture(scope="module")
def public_key(server, zrzy):
    return zrzy.get("/server-key").json()["public_key"]


def test_accepted_receipt_verifies_offline_and_fails_after_one_byte(zrzy, public_key):
    package, manifest = build_package("dltb_biangeng", "610102000000", period="2025")
    r = zrzy.submit(package, manifest)
    assert r.status_code == 201, r.text
    env = r.json()
    receipt = env["receipt"]
    assert receipt["status"] == "accepted"
    assert receipt["package_sha256"] == hashlib.sha256(package).hexdigest()
    assert receipt["region_code"] == "610102"
    assert receipt["version"] >= 1
    assert receipt["findings"] == []
    assert receipt["account"] == zrzy.username
    verify(public_key, env)
    body = bytearray(canonical(receipt))
    for pos in (0, len(body) // 2, len(body) - 1):
        tampered = bytearray(body)
        tampered[pos] ^= 0x01
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        with pytest.raises(InvalidSignature):
            key.verify(base64.b64decode(env["signature"]), bytes(tampered))
    changed = dict(receipt, status="rejected")
    with pytest.raises(InvalidSignature):
        verify(public_key, {"receipt": changed, "signature": env["signature"]})
    stored = zrzy.get("/submissions/{}/receipt".format(receipt["submission_id"])).json()
    assert canonical(stored["receipt"]) == canonical(receipt) and stored["signature"] == env["signature"]


def test_duplicate_commit_same_receipt_no_second_submission(server, zrzy, make_account):
    package, manifest = build_package("dltb_biangeng", "610102", period="2024")
    first = zrzy.submit(package, manifest)
    assert first.status_code == 201
    again = zrzy.submit(package, manifest)  # a new upload of the same bytes
    assert again.status_code == 200
    assert again.content == first.content
    sha = hashlib.sha256(package).hexdigest()
    subs = zrzy.get("/submissions", params={"package_sha256": sha}).json()["items"]
    assert len(subs) == 1
    versions = zrzy.get("/datasets/dltb_biangeng/regions/610102/versions", params={"period": "2024"}).json()
    assert len(versions["items"]) == 1
    other = make_account("zrzy", "610102", "submitter")
    r = other.submit(package, manifest)
    assert r.status_code == 409 and r.json()["error"]["code"] == "PACKAGE_SUBMITTED_BY_OTHER"


def test_versions_increment(zrzy):
    numbers = []
    for _ in range(2):
        package, manifest = build_package("jctb", "610102", period="2025Q1")
        numbers.append(zrzy.submit(package, manifest).json()["receipt"]["version"])
    assert numbers[1] == numbers[0] + 1


def test_claimed_hash_mismatch_and_incomplete_upload(zrzy):
    package, manifest = build_package("dltb_biangeng", "610102")
    complete_id = zrzy.upload(package)
    r = zrzy.post(
        "/submissions", json={"upload_id": complete_id, "package_sha256": "0" * 64, "manifest": manifest}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "PACKAGE_HASH_MISMATCH"
    upload_id = zrzy.create_upload(len(package)).headers["Location"].rsplit("/", 1)[1]
    zrzy.patch(upload_id, 0, package[:100])
    r = zrzy.post(
        "/submissions", json={"upload_id": upload_id, "package_sha256": "a" * 64, "manifest": manifest}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "UPLOAD_INCOMPLETE"
    # both uploads are still held (and count against the account's limits) until deleted
    for held in (complete_id, upload_id):
        assert zrzy.request("DELETE", "/uploads/" + held).status_code == 204


def _symlink_zip(manifest_holder: dict) -> bytes:
    package, manifest = build_package("dltb_biangeng", "610102")
    buf = io.BytesIO(package)
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("data/link")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    manifest_holder.update(manifest)
    return buf.getvalue()


def _hostile(kind: str):
    if kind == "path_traversal":
        return build_package("dltb_biangeng", "610102", extra_entries={"../../evil.sh": b"rm -rf /"})
    if kind == "absolute_path":
        return build_package("dltb_biangeng", "610102", extra_entries={"/etc/cron.d/evil": b"* * * * * x"})
    if kind == "zip_bomb":
        return build_package(
            "dltb_biangeng", "610102", extra_entries={"data/zeros.bin": bytes(20 * 1024 * 1024)}
        )
    if kind == "extra_file":
        return build_package("dltb_biangeng", "610102", extra_entries={"attachments/unlisted.txt": b"hello"})
    if kind == "wrong_file_hash":
        return build_package(
            "dltb_biangeng", "610102", tamper=lambda m: m["files"][0].update(sha256="1" * 64)
        )
    if kind == "wrong_file_size":
        return build_package("dltb_biangeng", "610102", tamper=lambda m: m["files"][0].update(size=12))
    if kind == "not_a_geopackage":
        return build_package("dltb_biangeng", "610102", gpkg=os.urandom(5000))
    if kind == "sqlite_not_gpkg":
        import sqlite3
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            conn = sqlite3.connect(os.path.join(tmp, "x.db"))
            conn.execute("CREATE TABLE DLTB (DLBM TEXT, TBMJ REAL)")
            conn.commit()
            conn.close()
            data = Path(tmp, "x.db").read_bytes()
        return build_package("dltb_biangeng", "610102", gpkg=data)
    if kind == "layer_is_endless_view":
        import sqlite3
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "v.gpkg")
            path.write_bytes(make_gpkg("DLTB", ["DLBM", "TBMJ"]))
            conn = sqlite3.connect(path)
            conn.execute('ALTER TABLE "DLTB" RENAME TO "DLTB_REAL"')
            conn.execute(
                'CREATE VIEW "DLTB" AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) '
                "SELECT i AS fid, 'x' AS DLBM, 1.0 AS TBMJ FROM n"
            )
            conn.commit()
            conn.close()
            data = path.read_bytes()
        return build_package("dltb_biangeng", "610102", gpkg=data)
    if kind == "wrong_crs":
        return build_package("dltb_biangeng", "610102", epsg=32649)
    if kind == "crs_differs_from_manifest":
        return build_package("dltb_biangeng", "610102", tamper=lambda m: m.update(crs="EPSG:4546"))
    if kind == "feature_count":
        return build_package(
            "dltb_biangeng", "610102", tamper=lambda m: m["layers"][0].update(feature_count=99)
        )
    if kind == "missing_required_field":
        return build_package("dltb_biangeng", "610102", fields=["DLBM"])
    if kind == "unknown_layer_name":
        return build_package("dltb_biangeng", "610102", layer="TUBAN")
    if kind == "client_validation_errors":
        return build_package("dltb_biangeng", "610102", validation={"errors": 3, "warnings": 0})
    if kind == "symlink":
        holder: dict = {}
        data = _symlink_zip(holder)
        return data, holder
    if kind == "not_a_zip":
        _p, manifest = build_package("dltb_biangeng", "610102")
        return os.urandom(3000), manifest
    raise AssertionError(kind)


HOSTILE = {
    "path_traversal": "ZIP_UNSAFE_PATH",
    "absolute_path": "ZIP_UNSAFE_PATH",
    "zip_bomb": "ZIP_RATIO",
    "extra_file": "EXTRA_FILE",
    "wrong_file_hash": "FILE_HASH_MISMATCH",
    "wrong_file_size": "FILE_SIZE_MISMATCH",
    "not_a_geopackage": "NOT_GEOPACKAGE",
    "sqlite_not_gpkg": "NOT_GEOPACKAGE",
    "wrong_crs": "CRS_NOT_CGCS2000",
    "layer_is_endless_view": "LAYER_MISSING",
    "crs_differs_from_manifest": "CRS_MISMATCH",
    "feature_count": "FEATURE_COUNT_MISMATCH",
    "missing_required_field": "FIELD_MISSING",
    "unknown_layer_name": "LAYER_NAME_UNKNOWN",
    "client_validation_errors": "VALIDATION_ERRORS",
    "symlink": "ZIP_SYMLINK",
    "not_a_zip": "NOT_A_ZIP",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_package_rejected_with_reason(server, zrzy, public_key, kind):
    package, manifest = _hostile(kind)
    r = zrzy.submit(package, manifest)
    assert r.status_code == 201, r.text
    receipt = r.json()["receipt"]
    codes = {f["code"] for f in receipt["findings"]}
    assert receipt["status"] == "rejected", receipt
    assert HOSTILE[kind] in codes, codes
    assert all(f["message_zh"] for f in receipt["findings"])
    assert "version" not in receipt
    verify(public_key, r.json())
    sha = hashlib.sha256(package).hexdigest()
    assert not (server.data_dir / "packages" / sha[:2] / (sha + ".zip")).exists()
    assert not any(p.name in ("evil.sh", "evil", "passwd") for p in server.data_dir.rglob("*"))


def test_manifest_in_commit_must_equal_manifest_in_zip(zrzy):
    package, manifest = build_package("dltb_biangeng", "610102")
    r = zrzy.submit(package, dict(manifest, unit="别的单位"))
    assert r.status_code == 201
    assert {f["code"] for f in r.json()["receipt"]["findings"]} == {"MANIFEST_MISMATCH"}


def test_aliases_and_warnings_accepted(zrzy, make_account):
    nync = make_account("nync", "610102", "submitter")
    package, manifest = build_package(
        "gbznt", "610102", validation={"errors": 0, "warnings": 2}
    )  # 项目编号 alias
    receipt = nync.submit(package, manifest).json()["receipt"]
    assert receipt["status"] == "accepted", receipt
    assert [f["code"] for f in receipt["findings"]] == ["VALIDATION_WARNINGS"]


def test_geographic_cgcs2000_accepted(zrzy):
    package, manifest = build_package("dltb_biangeng", "610102", epsg=4490, period="2023")
    assert zrzy.submit(package, manifest).json()["receipt"]["status"] == "accepted"


def test_invalid_manifest_and_region_are_request_errors(zrzy):
    package, manifest = build_package("dltb_biangeng", "610102")
    upload_id = zrzy.upload(package)  # one upload, committed three times with a bad manifest

    def commit(m: dict):
        sha = hashlib.sha256(package).hexdigest()
        return zrzy.post("/submissions", json={"upload_id": upload_id, "package_sha256": sha, "manifest": m})

    r = commit({k: v for k, v in manifest.items() if k != "dataset_id"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "MANIFEST_INVALID"
    r = commit(dict(manifest, region_code="61x"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "REGION_INVALID"
    r = commit(dict(manifest, dataset_id="no_such_dataset"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "DATASET_UNKNOWN"
    assert "共享清单" in r.json()["error"]["message_zh"]
    assert zrzy.request("DELETE", "/uploads/" + upload_id).status_code == 204


def test_offline_registration(zrzy, public_key):
    _package, manifest = build_package("dltb_biangeng", "610102", period="2022")
    sha = hashlib.sha256(b"offline bytes").hexdigest()
    body = {"package_sha256": sha, "package_size": 13, "manifest": manifest, "offline": True}
    r = zrzy.post("/submissions/offline", json=body)
    assert r.status_code == 201, r.text
    receipt = r.json()["receipt"]
    assert receipt["offline"] is True and receipt["status"] == "accepted"
    assert [f["code"] for f in receipt["findings"]] == ["OFFLINE_REGISTERED"]
    verify(public_key, r.json())
    again = zrzy.post("/submissions/offline", json=body)
    assert again.status_code == 200 and again.content == r.content


def test_reviewer_reads_receipts_reader_does_not(zrzy, make_account):
    package, manifest = build_package("dltb_biangeng", "610102", period="2021")
    sid = zrzy.submit(package, manifest).json()["receipt"]["submission_id"]
    reviewer = make_account("zrzy", "6101", "reviewer")
    assert sid in [
        s["submission_id"] for s in reviewer.get("/submissions", params={"region": "6101"}).json()["items"]
    ]
    assert reviewer.get(f"/submissions/{sid}/receipt").status_code == 200
    other_reviewer = make_account("nync", "6101", "reviewer")
    assert other_reviewer.get(f"/submissions/{sid}/receipt").status_code == 404
    reader = make_account("zrzy", "610102", "reader")
    assert reader.get("/submissions").status_code == 403
    assert make_gpkg("DLTB", ["DLBM", "TBMJ"])[:16] == b"SQLite format 3\x00"
