"""Offline-registration squatting: one department cannot register another department's package hash and so
block the owner's upload; the package's own manifest decides."""

from __future__ import annotations

import copy
import hashlib

from tests.server.helpers import build_package


def test_squatted_hash_gives_way_to_the_owner(make_account):
    owner = make_account("zrzy", "610102", "submitter", "own")
    squatter = make_account("nync", "610102", "submitter", "sq")
    package, manifest = build_package("dltb_biangeng", "610102")
    sha = hashlib.sha256(package).hexdigest()
    claim = copy.deepcopy(manifest)
    claim.update(dataset_id="gbznt", department="nync")  # a dataset the squatter may register
    r = squatter.post(
        "/submissions/offline", json={"package_sha256": sha, "package_size": len(package), "manifest": claim}
    )
    assert r.status_code == 201, r.text  # the server cannot know yet whose package this is

    r = owner.submit(package, manifest)
    assert r.status_code == 201, r.text
    receipt = r.json()["receipt"]
    assert receipt["status"] == "accepted" and receipt["department"] == "zrzy" and receipt["version"] >= 1

    # now the server holds the package: the other department cannot register its hash again
    r = squatter.post(
        "/submissions/offline", json={"package_sha256": sha, "package_size": len(package), "manifest": claim}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "PACKAGE_OWNED_BY_OTHER", r.text
    mine = owner.get("/submissions", params={"package_sha256": sha}).json()["items"]
    assert [s["department"] for s in mine] == ["zrzy"]


def test_registering_another_departments_submitted_hash_refused(make_account):
    owner = make_account("nync", "610102", "submitter", "own2")
    other = make_account("zrzy", "610102", "submitter", "oth2")
    package, manifest = build_package("gbznt", "610102")
    assert owner.submit(package, manifest).status_code == 201
    claim = copy.deepcopy(manifest)
    claim.update(dataset_id="dltb_biangeng", department="zrzy")
    sha = hashlib.sha256(package).hexdigest()
    r = other.post("/submissions/offline", json={"package_sha256": sha, "package_size": 1, "manifest": claim})
    assert r.status_code == 403 and r.json()["error"]["code"] == "PACKAGE_OWNED_BY_OTHER", r.text


def test_receipt_bounded_whatever_the_manifest_lists(make_account):
    """5,000 layers with unknown names would give 5,000 findings (megabytes of receipt): at most 200 are kept,
    the error count stays exact."""
    client = make_account("zrzy", "610102", "submitter", "big")
    _package, manifest = build_package("dltb_biangeng", "610102")
    manifest["layers"] = [{"file": "data/x.gpkg", "name": f"L{i}"} for i in range(5000)]
    body = {
        "package_sha256": hashlib.sha256(b"big receipt").hexdigest(),
        "package_size": 1,
        "manifest": manifest,
    }
    r = client.post("/submissions/offline", json=body)
    assert r.status_code == 201, r.text[:300]
    assert len(r.content) < 100_000
    findings = r.json()["receipt"]["findings"]
    assert len(findings) == 200 and findings[-1]["code"] == "FINDINGS_TRUNCATED"
    assert "（4802）" in findings[-1]["message_zh"]  # 5,000 layer findings + OFFLINE_REGISTERED - 199 kept
    sub = client.get("/submissions/" + r.json()["receipt"]["submission_id"]).json()
    assert sub["errors"] == 5000
