"""Versions (list, latest, history), Range/ETag downloads, the long-polling feed, deadlines, evaluation."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from tests.server.helpers import build_package

COUNTY = "610124"


@pytest.fixture(scope="module")
def parties(make_account):
    return {
        "zrzy": make_account("zrzy", COUNTY, "submitter", prefix="v"),
        "nync": make_account("nync", COUNTY, "submitter", prefix="v"),
        "nync_reader": make_account("nync", COUNTY, "reader", prefix="v"),
        "zrzy_reader": make_account("zrzy", COUNTY, "reader", prefix="v"),
        "far_reader": make_account("nync", "610125", "reader", prefix="v"),
        "reviewer": make_account("zrzy", "6101", "reviewer", prefix="v"),
    }


@pytest.fixture(scope="module")
def published(parties):
    package, manifest = build_package("dltb_biangeng", COUNTY, period="2019", count=30)
    receipt = parties["zrzy"].submit(package, manifest).json()["receipt"]
    assert receipt["status"] == "accepted"
    return package, receipt


def test_download_range_etag(parties, published):
    package, receipt = published
    reader = parties["nync_reader"]
    latest = reader.get(f"/datasets/dltb_biangeng/regions/{COUNTY}/latest").json()
    assert latest["package_sha256"] == receipt["package_sha256"]
    url = "/versions/{}/download".format(latest["version_id"])
    r = reader.get(url)
    assert r.status_code == 200 and r.content == package
    assert r.headers["ETag"] == f'"{hashlib.sha256(package).hexdigest()}"'
    assert r.headers["Accept-Ranges"] == "bytes"
    assert reader.get(url, headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    half = len(package) // 2
    first = reader.get(url, headers={"Range": f"bytes=0-{half - 1}"})
    assert first.status_code == 206 and first.content == package[:half]
    rest = reader.get(url, headers={"Range": f"bytes={half}-", "If-Range": r.headers["ETag"]})
    assert rest.status_code == 206
    assert rest.headers["Content-Range"] == f"bytes {half}-{len(package) - 1}/{len(package)}"
    assert first.content + rest.content == package
    suffix = reader.get(url, headers={"Range": "bytes=-100"})
    assert suffix.status_code == 206 and suffix.content == package[-100:]
    bad = reader.get(url, headers={"Range": f"bytes={len(package) + 5}-"})
    assert bad.status_code == 416
    assert parties["far_reader"].get(url).status_code == 403


def test_manifest_history_and_list(parties, published):
    _package, receipt = published
    reader = parties["nync_reader"]
    hist = reader.get(f"/datasets/dltb_biangeng/regions/{COUNTY}/versions", params={"period": "2019"})
    items = hist.json()["items"]
    assert [v["version"] for v in items] == list(range(1, len(items) + 1))
    vid = items[-1]["version_id"]
    assert reader.get(f"/versions/{vid}/manifest").json()["layers"][0]["feature_count"] == 30
    listed = reader.get("/versions", params={"region": "6101"})
    assert listed.status_code == 403  # a county reader cannot list the whole city
    listed = reader.get("/versions", params={"dataset_id": "dltb_biangeng", "latest": "true"}).json()["items"]
    assert all(v["region_code"].startswith(COUNTY) for v in listed)
    assert (
        parties["far_reader"].get("/versions", params={"dataset_id": "dltb_biangeng"}).json()["items"] == []
    )


def test_feed_long_poll_delivers_new_version(parties):
    reader = parties["nync_reader"]
    cursor = reader.get("/feed").json()["next_cursor"]
    assert reader.get("/feed", params={"cursor": cursor}).json()["items"] == []
    result: dict = {}

    def poll():
        t0 = time.monotonic()
        result["body"] = reader.get("/feed", params={"cursor": cursor, "wait": 10}).json()
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.8)
    package, manifest = build_package("dltb_biangeng", COUNTY, period="2018")
    assert parties["zrzy"].submit(package, manifest).json()["receipt"]["status"] == "accepted"
    t.join(15)
    items = result["body"]["items"]
    assert [i["package_sha256"] for i in items] == [hashlib.sha256(package).hexdigest()]
    assert "数据已到达" in items[0]["message_zh"]
    assert 0.5 < result["elapsed"] < 6
    assert result["body"]["next_cursor"] == items[0]["version_id"]
    far = parties["far_reader"].get("/feed", params={"cursor": cursor}).json()
    assert far["items"] == [] and far["next_cursor"] >= items[0]["version_id"]
    t0 = time.monotonic()
    empty = reader.get("/feed", params={"cursor": result["body"]["next_cursor"], "wait": 1}).json()
    assert empty["items"] == [] and time.monotonic() - t0 >= 0.9


def test_deadlines_and_evaluation(admin, parties):
    year = 2031
    r = admin.put(
        "/admin/releases", json={"dataset_id": "dltb_biangeng", "year": year, "release_date": "2031-03-01"}
    )
    assert r.status_code == 200 and r.json()["due_date"] == "2031-03-31"
    admin.put("/admin/releases", json={"dataset_id": "gbznt", "year": year, "release_date": "2031-01-10"})
    # zrzy delivers dltb on time (server time is "now", well before the 2031 due date)
    package, manifest = build_package("dltb_biangeng", COUNTY, period=str(year))
    assert parties["zrzy"].submit(package, manifest).json()["receipt"]["status"] == "accepted"
    # one monitoring delivery only (two needed); one rejected submission (validation pass rate)
    package, manifest = build_package("jctb", COUNTY, period=f"{year}Q1")
    assert parties["zrzy"].submit(package, manifest).json()["receipt"]["status"] == "accepted"
    package, manifest = build_package(
        "jctb", COUNTY, period=f"{year}Q2", tamper=lambda m: m["layers"][0].update(feature_count=9)
    )
    assert parties["zrzy"].submit(package, manifest).json()["receipt"]["status"] == "rejected"
    # nync registers an offline-exchanged gbznt package
    _p, manifest = build_package("gbznt", COUNTY, period=str(year))
    r = parties["nync"].post(
        "/submissions/offline", json={"package_sha256": "c" * 64, "package_size": 1, "manifest": manifest}
    )
    assert r.json()["receipt"]["status"] == "accepted"
    # the other department downloads the dltb version once
    vid = (
        parties["nync_reader"]
        .get(f"/datasets/dltb_biangeng/regions/{COUNTY}/latest", params={"period": str(year)})
        .json()["version_id"]
    )
    assert parties["nync_reader"].get(f"/versions/{vid}/download").status_code == 200

    dl = (
        parties["zrzy"]
        .get("/deadlines", params={"region": COUNTY, "year": year, "as_of": "2031-05-01"})
        .json()
    )
    by = {(i["department"], i["dataset_id"]): i for i in dl["items"]}
    assert by[("zrzy", "dltb_biangeng")]["status"] == "met"
    assert by[("zrzy", "dltb_biangeng")]["due_date"] == "2031-03-31"
    assert by[("zrzy", "jctb")]["status"] == "pending" and by[("zrzy", "jctb")]["delivered_periods"] == [
        "2031Q1"
    ]
    assert by[("nync", "gbznt")]["status"] == "met"  # the offline registration counts
    assert ("zrzy", "gbznt") not in by
    late = (
        parties["zrzy"]
        .get("/deadlines", params={"region": COUNTY, "year": year, "as_of": "2032-01-05"})
        .json()
    )
    assert {(i["dataset_id"], i["status"]) for i in late["items"]} >= {
        ("jctb", "overdue"),
        ("dltb_biangeng", "met"),
    }

    ev = parties["reviewer"].get(
        "/evaluation", params={"region": COUNTY, "year": year, "as_of": "2032-01-05"}
    )
    assert ev.status_code == 200, ev.text
    ind = ev.json()["indicators"]
    assert ind["validation"] == {
        "submissions": 3,
        "accepted": 2,
        "pass_rate": 0.6667,
        "offline_registered": 1,
    }
    assert (
        ind["use"]["downloads_by_other_department"] == 1
        and ind["use"]["versions_used_by_other_department"] == 1
    )
    assert ind["timeliness"]["on_time"] == 2 and ind["timeliness"]["due"] == 3
    assert {"region_code": COUNTY, "dataset_id": "jctb", "due_date": "2031-12-31"} in ind["overdue"]
    assert ind["completeness"]["delivered"] == 3
    assert (
        parties["nync_reader"].get("/evaluation", params={"region": COUNTY, "year": year}).status_code == 403
    )
