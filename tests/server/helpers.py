"""Test helpers for the exchange server: a real server process, an HTTP client and package builders."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
API = "/api/v1"

TEST_CATALOG = [
    {
        "id": "dltb_biangeng",
        "name_zh": "年度变更调查地类图斑",
        "name_en": "Land-use patches (annual change survey)",
        "department": "zrzy",
        "geometry": "polygon",
        "layer_names": ["DLTB", "DLTB_BG"],
        "fields": [
            {"name": "DLBM", "type": "string", "required": True, "aliases": ["地类编码"]},
            {"name": "TBMJ", "type": "double", "required": True, "aliases": []},
            {"name": "BZ", "type": "string", "required": False},
        ],
        "frequency": "yearly",
        "shared": True,
    },
    {
        "id": "jctb",
        "name_zh": "监测图斑",
        "name_en": "Monitoring patches",
        "department": "zrzy",
        "geometry": "polygon",
        "layer_names": ["JCTB"],
        "fields": [{"name": "JCBH", "type": "string", "required": True}],
        "frequency": "quarterly",
        "shared": True,
    },
    {
        "id": "gbznt",
        "name_zh": "高标准农田",
        "name_en": "High-standard farmland",
        "department": "nync",
        "geometry": "polygon",
        "layer_names": ["GBZNT"],
        "fields": [
            {"name": "XMBH", "type": "string", "required": True, "aliases": ["项目编号"]},
            {"name": "XMMC", "type": "string", "required": True},
        ],
        "frequency": "yearly",
        "shared": True,
    },
    {
        "id": "nync_internal",
        "name_zh": "农业农村内部数据",
        "name_en": "Agriculture internal data",
        "department": "nync",
        "geometry": "polygon",
        "layer_names": ["NBSJ"],
        "fields": [],
        "frequency": "irregular",
        "shared": False,
    },
    {
        "id": "xzq",
        "name_zh": "行政区",
        "name_en": "Administrative regions",
        "department": "base",
        "geometry": "polygon",
        "layer_names": ["XZQ"],
        "fields": [{"name": "XZQDM", "type": "string", "required": True}],
        "frequency": "once",
        "shared": True,
    },
]
LAYER_OF = {
    "dltb_biangeng": ("DLTB", ["DLBM", "TBMJ"]),
    "jctb": ("JCTB", ["JCBH"]),
    "gbznt": ("GBZNT", ["项目编号", "XMMC"]),
    "nync_internal": ("NBSJ", ["NOTE"]),
    "xzq": ("XZQ", ["XZQDM"]),
    "bghtb": ("BGHTB", ["BGBH"]),
}
DEPT_OF = {"dltb_biangeng": "zrzy", "jctb": "zrzy", "gbznt": "nync", "nync_internal": "nync", "xzq": "zrzy"}


def write_catalog(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for entry in TEST_CATALOG:
        (directory / "{}.json".format(entry["id"])).write_text(json.dumps(entry, ensure_ascii=False), "utf-8")
    return directory


class ServerProcess:
    """``python -m exchange_server serve`` on 127.0.0.1, port chosen by the OS (read from --port-file)."""

    def __init__(
        self,
        data_dir: Path,
        catalog_dir: Path,
        db_url: str | None = None,
        extra: list[str] | None = None,
        tag: str = "",
    ):
        """``tag``: a name for the port and log files of a second process on the same data directory."""
        self.data_dir = data_dir
        self.tag = data_dir.name + tag
        self.catalog_dir = catalog_dir
        self.db_url = db_url
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = data_dir.parent / (self.tag + ".log")

    def base_args(self) -> list[str]:
        args = ["--data", str(self.data_dir), "--catalog", str(self.catalog_dir)]
        if self.db_url:
            args += ["--db", self.db_url]
        return args

    def cli(self, *args: str) -> dict | list:
        cmd = [sys.executable, "-m", "exchange_server", "admin", *self.base_args(), *args]
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout)

    def start(self) -> ServerProcess:
        port_file = self.data_dir.parent / (self.tag + ".port")
        port_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "exchange_server", "serve", *self.base_args(), "--host", "127.0.0.1"]
        cmd += [
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--log-level",
            os.environ.get("HJ_LOG", "warning"),
            *self.extra,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.log_path.read_text(errors="replace")[-3000:])
            if port_file.exists():
                self.port = int(port_file.read_text())
                try:
                    if requests.get(self.url + API + "/health", timeout=2).status_code == 200:
                        return self
                except requests.ConnectionError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("server did not start: " + self.log_path.read_text(errors="replace")[-3000:])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash or power cut."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def two_workers(tmp_path: Path, pg: str, extra: list[str]) -> Iterator[list[ServerProcess]]:
    """Two real server processes on one PostgreSQL schema and data folder (an admin account made first);
    stopped and the schema dropped on exit."""
    from tests.server.conftest import ADMIN_PASSWORD, PgSchema

    schema = PgSchema(pg)
    catalog = write_catalog(tmp_path / "catalog")
    data = tmp_path / "data"
    first = ServerProcess(data, catalog, schema.url, extra, tag="-a")
    first.cli("create-account", "--username", "admin", "--password", ADMIN_PASSWORD, "--department", "zrzy",
              "--region", "610000", "--role", "admin")  # fmt: skip
    procs = [first, ServerProcess(data, catalog, schema.url, extra, tag="-b")]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()
        schema.drop()


def db_rows(server: ServerProcess, sql: str) -> list[tuple]:
    """Read the server's database directly (SQLite file or PostgreSQL schema)."""
    if not server.db_url:
        import sqlite3

        conn = sqlite3.connect(server.data_dir / "exchange.sqlite3")
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(server.db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(sql).fetchall()


class Client:
    """A thin requests client of the protocol (what a plugin does)."""

    def __init__(self, base: str, token: str | None = None):
        self.base = base
        self.token = token
        self.s = requests.Session()

    def headers(self, extra: dict | None = None) -> dict:
        h = {"Tus-Resumable": "1.0.0"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return h

    def get(self, path: str, **kw) -> requests.Response:
        return self.s.get(
            self.base + API + path, headers=self.headers(kw.pop("headers", None)), timeout=60, **kw
        )

    def post(self, path: str, **kw) -> requests.Response:
        return self.s.post(
            self.base + API + path, headers=self.headers(kw.pop("headers", None)), timeout=60, **kw
        )

    def put(self, path: str, **kw) -> requests.Response:
        return self.s.put(
            self.base + API + path, headers=self.headers(kw.pop("headers", None)), timeout=60, **kw
        )

    def request(self, method: str, path: str, **kw) -> requests.Response:
        h = self.headers(kw.pop("headers", None))
        return self.s.request(method, self.base + API + path, headers=h, timeout=60, **kw)

    # tus
    def create_upload(self, length: int, meta: dict | None = None) -> requests.Response:
        h = {"Upload-Length": str(length)}
        if meta:
            h["Upload-Metadata"] = ",".join(
                f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items()
            )
        return self.request("POST", "/uploads", headers=h)

    def patch(
        self, upload_id: str, offset: int, data: bytes, checksum: bool = True, digest: bytes | None = None
    ):
        h = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
        if checksum:
            d = digest if digest is not None else hashlib.sha256(data).digest()
            h["Upload-Checksum"] = "sha256 " + base64.b64encode(d).decode()
        return self.request("PATCH", "/uploads/" + upload_id, headers=h, data=data)

    def offset(self, upload_id: str) -> int:
        r = self.request("HEAD", "/uploads/" + upload_id)
        assert r.status_code == 200, r.status_code
        return int(r.headers["Upload-Offset"])

    def upload(self, data: bytes, chunk: int = 256 * 1024) -> str:
        r = self.create_upload(len(data))
        assert r.status_code == 201, r.text
        upload_id = r.headers["Location"].rsplit("/", 1)[1]
        offset = 0
        while offset < len(data):
            r = self.patch(upload_id, offset, data[offset : offset + chunk])
            assert r.status_code == 204, r.text
            offset = int(r.headers["Upload-Offset"])
        return upload_id

    def submit(self, package: bytes, manifest: dict, sha: str | None = None) -> requests.Response:
        upload_id = self.upload(package)
        body = {"upload_id": upload_id, "package_sha256": sha or hashlib.sha256(package).hexdigest()}
        body["manifest"] = manifest
        return self.post("/submissions", json=body)


def slow_patch(
    base: str, token: str, upload_id: str, body: bytes, pieces: int, pause: float, started=None
) -> tuple[int, dict]:
    """A PATCH at offset 0 whose body arrives in ``pieces`` parts ``pause`` seconds apart (a slow link), with
    its sha256 as Upload-Checksum; ``started`` (a threading.Event) is set once the first part is sent.
    Returns (status, headers with lower-case names)."""
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.putrequest("PATCH", f"{API}/uploads/{upload_id}")
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    for name, value in {
        "Authorization": "Bearer " + token,
        "Tus-Resumable": "1.0.0",
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0",
        "Upload-Checksum": "sha256 " + digest,
        "Content-Length": str(len(body)),
    }.items():
        conn.putheader(name, value)
    conn.endheaders()
    step = -(-len(body) // pieces)
    for i in range(0, len(body), step):
        if i:
            time.sleep(pause)
        conn.send(body[i : i + step])
        if started is not None:
            started.set()
    response = conn.getresponse()
    answer = response.status, {k.lower(): v for k, v in response.getheaders()}
    conn.close()
    return answer


def login(base: str, username: str, password: str) -> Client:
    r = requests.post(
        base + API + "/auth/token", json={"username": username, "password": password}, timeout=30
    )
    assert r.status_code == 200, r.text
    return Client(base, r.json()["access_token"])


_GPKG_CACHE: dict[tuple, bytes] = {}


def make_gpkg(
    layer: str, fields: list[str], count: int = 3, epsg: int = 4545, geom: str = "polygon"
) -> bytes:
    """A small real GeoPackage made with OGR (cached by parameters)."""
    key = (layer, tuple(fields), count, epsg, geom)
    if key in _GPKG_CACHE:
        return _GPKG_CACHE[key]
    import tempfile

    from osgeo import ogr, osr

    ogr.UseExceptions()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.gpkg")
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        gtype = ogr.wkbPolygon if geom == "polygon" else ogr.wkbPoint
        lyr = ds.CreateLayer(layer, srs, gtype)
        for f in fields:
            lyr.CreateField(ogr.FieldDefn(f, ogr.OFTString))
        x0, y0 = (500000.0, 3800000.0) if epsg != 4490 else (108.9, 34.2)
        step = 100.0 if epsg != 4490 else 0.001
        for i in range(count):
            feat = ogr.Feature(lyr.GetLayerDefn())
            for f in fields:
                feat.SetField(f, f"{f[:2]}{i}")
            x = x0 + i * step
            if geom == "polygon":
                wkt = "POLYGON(({0} {1},{2} {1},{2} {3},{0} {3},{0} {1}))".format(
                    x, y0, x + step / 2, y0 + step / 2
                )
            else:
                wkt = f"POINT({x} {y0})"
            feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
            lyr.CreateFeature(feat)
        ds = None
        data = Path(path).read_bytes()
    _GPKG_CACHE[key] = data
    return data


def build_package(
    dataset_id: str,
    region: str,
    period: str = "2025",
    department: str | None = None,
    count: int = 3,
    epsg: int = 4545,
    layer: str | None = None,
    fields: list[str] | None = None,
    gpkg: bytes | None = None,
    extra_entries: dict[str, bytes] | None = None,
    tamper=None,
    validation: dict | None = None,
) -> tuple[bytes, dict]:
    """A zip with manifest.json + data/<dataset>.gpkg, as the plugin builds it.

    ``tamper(manifest)`` may edit the manifest after the true hashes were written; ``extra_entries`` adds
    raw zip members (name -> bytes) that the manifest does not list."""
    lname, lfields = LAYER_OF[dataset_id]
    layer = layer or lname
    data = (
        gpkg if gpkg is not None else make_gpkg(lname, fields if fields is not None else lfields, count, epsg)
    )
    rel = f"data/{dataset_id}.gpkg"
    manifest = {
        "format_version": "1.0",
        "package_uuid": str(uuid.uuid4()),
        "dataset_id": dataset_id,
        "region_code": region,
        "period": period,
        "department": department or DEPT_OF.get(dataset_id, "zrzy"),
        "unit": "测试单位",
        "created_at": "2025-06-01T10:00:00+08:00",
        "crs": f"EPSG:{epsg}",
        "files": [{"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}],
        "layers": [
            {
                "file": rel,
                "name": layer,
                "geometry_type": "Polygon",
                "feature_count": count,
                "area_m2": 1234.5,
                "extent": [500000.0, 3800000.0, 500300.0, 3800050.0],
            }
        ],
        "validation": validation or {"errors": 0, "warnings": 0},
        "sources": [],
        "plugin_version": "0.1.0",
    }
    if tamper is not None:
        tamper(manifest)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            zipfile.ZipInfo("manifest.json", (2025, 6, 1, 10, 0, 0)), json.dumps(manifest, ensure_ascii=False)
        )
        zf.writestr(zipfile.ZipInfo(rel, (2025, 6, 1, 10, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)
        for name, blob in (extra_entries or {}).items():
            zf.writestr(
                zipfile.ZipInfo(name, (2025, 6, 1, 10, 0, 0)), blob, compress_type=zipfile.ZIP_DEFLATED
            )
    return buf.getvalue(), manifest


def partial_patch(
    base: str,
    token: str,
    upload_id: str,
    offset: int,
    body: bytes,
    send: int,
    checksum: bool = False,
    pause: float = 0.0,
    headers: dict[str, str] | None = None,
) -> None:
    """A PATCH announcing ``len(body)`` bytes that sends only ``send`` of them, then drops the line
    (``headers``: more request headers, e.g. ``Upload-Prefix-Checksum``)."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(base)
    head = [
        f"PATCH {API}/uploads/{upload_id} HTTP/1.1",
        f"Host: {u.hostname}:{u.port}",
        "Authorization: Bearer " + token,
        "Tus-Resumable: 1.0.0",
        "Content-Type: application/offset+octet-stream",
        f"Upload-Offset: {offset}",
        f"Content-Length: {len(body)}",
    ]
    if checksum:
        head.append("Upload-Checksum: sha256 " + base64.b64encode(hashlib.sha256(body).digest()).decode())
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        view = memoryview(body)[:send]
        step = 64 * 1024
        for i in range(0, len(view), step):
            sock.sendall(view[i : i + step])
        if pause:
            time.sleep(pause)
    finally:
        sock.close()


def wait_offset(client: Client, upload_id: str, expected: int, timeout: float = 10.0) -> int:
    """HEAD until the server reports ``expected`` (it records a dropped PATCH asynchronously)."""
    deadline = time.monotonic() + timeout
    value = client.offset(upload_id)
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = client.offset(upload_id)
    return value
