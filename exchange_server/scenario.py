"""End-to-end scenario against a running server, as a new user would do it:

create accounts → set a release date → upload a large package over a connection cut three times → commit →
verify the receipt offline → pull it as the other department (Range-resumed download) → see it in the feed →
see the deadline met in the evaluation.

    python -m exchange_server scenario --url http://127.0.0.1:8765 --admin-user demo_admin \\
        --admin-password huijiao-demo-2025 [--size-mb 200] [--region 610102]

Builds the GeoPackage with GDAL (osgeo.ogr); the server itself never needs GDAL.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import random
import socket
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

API = "/api/v1"
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))


class ScenarioError(AssertionError):
    pass


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise ScenarioError(what)


class _Session:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.s = requests.Session()

    def call(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Tus-Resumable": "1.0.0", **kw.pop("headers", {})}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        return self.s.request(method, self.url + API + path, headers=headers, timeout=600, **kw)


def _login(url: str, username: str, password: str) -> _Session:
    r = requests.post(
        url + API + "/auth/token", json={"username": username, "password": password}, timeout=30
    )
    _check(r.status_code == 200, f"login {username}: {r.text[:200]}")
    return _Session(url, r.json()["access_token"])


def _gpkg(layer: str, fields: list[str], count: int) -> bytes:
    from osgeo import ogr, osr

    ogr.UseExceptions()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "d.gpkg")
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(4545)
        lyr = ds.CreateLayer(layer, srs, ogr.wkbPolygon)
        for name in fields:
            lyr.CreateField(ogr.FieldDefn(name, ogr.OFTString))
        for i in range(count):
            f = ogr.Feature(lyr.GetLayerDefn())
            for name in fields:
                f.SetField(name, f"{i}")
            x, y = 500000 + (i % 100) * 50, 3800000 + (i // 100) * 50
            f.SetGeometry(
                ogr.CreateGeometryFromWkt(
                    "POLYGON(({0} {1},{2} {1},{2} {3},{0} {3},{0} {1}))".format(x, y, x + 40, y + 40)
                )
            )
            lyr.CreateFeature(f)
        ds = None
        return Path(path).read_bytes()


def build_package(
    catalog_entry: dict, region: str, period: str, department: str, size: int
) -> tuple[bytes, dict]:
    layer = catalog_entry["layer_names"][0]
    data = _gpkg(layer, catalog_entry.get("required_fields") or [], 200)
    filler = random.Random(7).randbytes(max(0, size - len(data)))
    files = {"data/{}.gpkg".format(catalog_entry["id"]): data, "attachments/scan.bin": filler}
    manifest = {
        "format_version": "1.0",
        "package_uuid": str(uuid.uuid4()),
        "dataset_id": catalog_entry["id"],
        "region_code": region,
        "period": period,
        "department": department,
        "unit": "演示单位",
        "created_at": dt.datetime.now(CHINA_TZ).isoformat(timespec="seconds"),
        "crs": "EPSG:4545",
        "files": [
            {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()
        ],
        "layers": [
            {
                "file": "data/{}.gpkg".format(catalog_entry["id"]),
                "name": layer,
                "geometry_type": "Polygon",
                "feature_count": 200,
                "area_m2": 320000.0,
                "extent": None,
            }
        ],
        "validation": {"errors": 0, "warnings": 0},
        "sources": [],
        "plugin_version": "scenario",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False))
        for p, b in files.items():
            zf.writestr(p, b)
    return buf.getvalue(), manifest


def _cut_patch(url: str, token: str, upload_id: str, offset: int, body: memoryview, send: int) -> None:
    """Send part of a PATCH body, then drop the connection (a cut line)."""
    u = urlparse(url)
    lines = [
        f"PATCH {API}/uploads/{upload_id} HTTP/1.1",
        f"Host: {u.hostname}:{u.port}",
        f"Authorization: Bearer {token}",
        "Tus-Resumable: 1.0.0",
        "Content-Type: application/offset+octet-stream",
        f"Upload-Offset: {offset}",
        f"Content-Length: {len(body)}",
    ]
    head = "\r\n".join(lines) + "\r\n\r\n"
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    try:
        sock.sendall(head.encode())
        sock.sendall(body[:send])
        time.sleep(0.5)
    finally:
        sock.close()


def _settled_offset(session: _Session, upload_id: str) -> int:
    """HEAD until the offset stops moving (the server may still be storing the bytes of a cut PATCH)."""
    last = -1
    stable = 0
    while stable < 3:
        time.sleep(0.2)
        value = int(session.call("HEAD", "/uploads/" + upload_id).headers["Upload-Offset"])
        stable = stable + 1 if value == last else 0
        last = value
    return last


def run_scenario(
    url: str,
    admin_user: str,
    admin_password: str,
    size_mb: float = 200,
    region: str = "610102",
    dataset_id: str = "dltb_biangeng",
    cuts: int = 3,
    log=print,
) -> dict:
    rng = random.Random(2025)
    admin = _login(url, admin_user, admin_password)
    key = requests.get(url + API + "/server-key", timeout=30).json()
    log("1. 服务器公钥指纹 {}".format(key["fingerprint"]))
    suffix = uuid.uuid4().hex[:6]
    names = {
        "sub": ("zrzy_sub_" + suffix, "zrzy", "submitter"),
        "reader": ("nync_read_" + suffix, "nync", "reader"),
        "reviewer": ("zrzy_rev_" + suffix, "zrzy", "reviewer"),
    }
    password = "pw-" + uuid.uuid4().hex
    for username, dept, role in names.values():
        r = admin.call(
            "POST",
            "/admin/accounts",
            json={
                "username": username,
                "password": password,
                "department": dept,
                "region_code": region,
                "role": role,
            },
        )
        _check(r.status_code == 201, "create account: " + r.text[:200])
    log("2. 已创建账号 {}".format(", ".join(n[0] for n in names.values())))
    today = dt.datetime.now(CHINA_TZ).date()
    year = today.year
    r = admin.call(
        "PUT",
        "/admin/releases",
        json={
            "dataset_id": dataset_id,
            "year": year,
            "release_date": (today - dt.timedelta(days=1)).isoformat(),
        },
    )
    _check(r.status_code == 200, "set release: " + r.text[:200])
    sub = _login(url, names["sub"][0], password)
    reader = _login(url, names["reader"][0], password)
    reviewer = _login(url, names["reviewer"][0], password)
    cursor = reader.call("GET", "/feed").json()["next_cursor"]
    entry = next(d for d in sub.call("GET", "/catalog").json()["datasets"] if d["id"] == dataset_id)
    package, manifest = build_package(entry, region, str(year), "zrzy", int(size_mb * 1024 * 1024))
    sha = hashlib.sha256(package).hexdigest()
    log(f"3. 数据包 {len(package) / 1048576:.1f} MB, SHA-256 {sha}")

    t0 = time.monotonic()
    r = sub.call("POST", "/uploads", headers={"Upload-Length": str(len(package))})
    _check(r.status_code == 201, "create upload: " + r.text[:200])
    upload_id = r.headers["Location"].rsplit("/", 1)[1]
    view = memoryview(package)
    offset = 0
    for i in range(cuts):
        send = rng.randint(1, max(1, (len(package) - offset) // (cuts - i + 1)))
        _cut_patch(url, sub.token, upload_id, offset, view[offset:], send)
        new = _settled_offset(sub, upload_id)
        log(f"   第 {i + 1} 次断线：已发送至 {offset + send}，服务器已保存 {new}，从 {new} 续传")
        _check(offset <= new <= offset + send, "offset after cut")
        offset = new
    chunk = 32 * 1024 * 1024
    # the huijiao prefix checksum when the server offers it (one running hash of the file), else tus per chunk
    prefix = "checksum-prefix" in sub.call("OPTIONS", "/uploads").headers.get("Tus-Extension", "").split(",")
    running = hashlib.sha256(view[:offset]) if prefix else None
    running_end = offset
    while offset < len(package):
        body = view[offset : offset + chunk]
        if running is not None:
            if running_end != offset:  # resuming elsewhere: rebuild the running hash of [0, offset)
                running = hashlib.sha256(view[:offset])
            after = running.copy()
            after.update(body)
            checksum = {"Upload-Prefix-Checksum": "sha256 " + base64.b64encode(after.digest()).decode()}
        else:
            checksum = {
                "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(body).digest()).decode()
            }
        r = sub.call(
            "PATCH",
            "/uploads/" + upload_id,
            data=bytes(body),
            headers={
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": str(offset),
                **checksum,
            },
        )
        if r.status_code in (409, 423):  # the server still finishes the cut PATCH: ask again, then resume
            offset = _settled_offset(sub, upload_id)
            continue
        _check(r.status_code == 204, f"PATCH: {r.status_code} {r.text[:200]}")
        if running is not None:
            running = after
            running_end = offset + len(body)
        offset = int(r.headers["Upload-Offset"])
    log(f"4. 上传完成（{time.monotonic() - t0:.1f} s）")

    r = sub.call(
        "POST", "/submissions", json={"upload_id": upload_id, "package_sha256": sha, "manifest": manifest}
    )
    _check(r.status_code == 201, "commit: " + r.text[:300])
    envelope = r.json()
    receipt = envelope["receipt"]
    _check(receipt["status"] == "accepted", "receipt status: {}".format(receipt["findings"]))
    canonical = json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"])).verify(
        base64.b64decode(envelope["signature"]), canonical
    )
    _check(
        receipt["package_sha256"] == sha and receipt["key_fingerprint"] == key["fingerprint"],
        "receipt fields",
    )
    log("5. 回执已接受（第 {} 版），签名离线验证通过".format(receipt["version"]))

    feed = reader.call("GET", "/feed", params={"cursor": cursor, "wait": 10}).json()
    item = next((i for i in feed["items"] if i["package_sha256"] == sha), None)
    _check(item is not None, "feed item for the new version")
    log("6. 农业农村账号收到推送：{}".format(item["message_zh"]))
    dl = "/versions/{}/download".format(item["version_id"])
    half = len(package) // 2
    first = reader.call("GET", dl, headers={"Range": f"bytes=0-{half - 1}"})
    rest = reader.call("GET", dl, headers={"Range": f"bytes={half}-", "If-Range": f'"{sha}"'})
    _check(first.status_code == 206 and rest.status_code == 206, "range download")
    _check(hashlib.sha256(first.content + rest.content).hexdigest() == sha, "downloaded bytes hash")
    log("7. 农业农村账号分段下载完成，SHA-256 一致")

    ev = reviewer.call("GET", "/evaluation", params={"year": year, "region": region}).json()
    obligation = next(
        (o for o in ev["obligations"] if o["dataset_id"] == dataset_id and o["region_code"] == region), None
    )
    _check(obligation is not None and obligation["status"] == "met", f"deadline met: {obligation}")
    log(
        "8. 评估：{} {} 年 截止 {}，状态 {}；及时率 {}".format(
            dataset_id,
            year,
            obligation["due_date"],
            obligation["status"],
            ev["indicators"]["timeliness"]["rate"],
        )
    )
    return {"receipt": receipt, "evaluation": ev["indicators"], "feed_item": item}
