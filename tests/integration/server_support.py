"""Helpers for tests against the real exchange server (``python -m exchange_server serve`` on 127.0.0.1).

Connection cuts (and slow links) are made by a small TCP relay on 127.0.0.1 that closes every connection
after N bytes; the server itself is never mocked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from qgis.core import QgsFeature, QgsGeometry, QgsRectangle, QgsVectorLayer

from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator
from huijiao_plugin.core.exchange.client import Credentials, ExchangeClient
from huijiao_plugin.core.package import LayerInput, build_package

REPO = Path(__file__).resolve().parents[2]
CHUNK = 32 * 1024
DEMO_PASSWORD = "huijiao-demo-2025"
# the package parameters of the demo submitter (自然资源, 新城区 610102)
PACKAGE_ARGS: dict[str, str] = dict(
    dataset_id="dltb_biangeng",
    region_code="610102",
    period="2025",
    department="zrzy",
    unit="新城区自然资源局",
    crs="EPSG:4545",
)


# ---------------------------------------------------------------------------------------------- server


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def run_cli(self, *args: str) -> dict:
        cmd = [sys.executable, "-m", "exchange_server", *args]
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
        return json.loads(out.stdout)

    def start(self) -> None:
        port_file = self.data_dir.parent / "port"
        log = (self.data_dir.parent / "server.log").open("ab")
        cmd = [sys.executable, "-m", "exchange_server", "serve", "--data", str(self.data_dir)]
        cmd += ["--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data_dir.parent / "server.log").read_text()[-3000:]
            if port_file.exists():
                self.port = int(port_file.read_text())
                try:
                    if requests.get(self.url + "/api/v1/health", timeout=2).ok:
                        return
                except requests.ConnectionError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("exchange server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)  # the server closes requests in flight after GRACEFUL_SHUTDOWN_S


def demo_server_fixture(name: str, release: bool = True) -> Any:
    """A module-scoped ``server`` fixture: :func:`demo_server` in the temporary folder ``name``."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
        srv = demo_server(tmp_path_factory.mktemp(name), release)
        yield srv
        srv.stop()

    return server


def demo_server(root: Path, release: bool = True) -> Server:
    """A started server in ``root/data`` with the demo accounts of region 610102 (and, with ``release``,
    the 2025 release date of dltb_biangeng); the caller stops it."""
    srv = Server(root / "data")
    srv.run_cli("demo-accounts", "--data", str(srv.data_dir), "--region", "610102")
    if release:
        args = ["set-release", "--dataset", "dltb_biangeng", "--year", "2025", "--date", "2025-03-01"]
        srv.run_cli("admin", "--data", str(srv.data_dir), *args)
    srv.start()
    return srv


class CuttingRelay:
    """TCP relay 127.0.0.1:port → server; ``arm_up(n)``/``arm_down(n)`` cut every open connection once
    after n more bytes in that direction (client → server / server → client). With ``down_delay`` every
    block of up to 16 KB server → client waits that many seconds (16 ms: about 1 MB/s). With ``record``
    the bytes client → server are kept in ``sent`` (to check request headers); with ``refuse_options``
    the relay answers every OPTIONS request itself with 405, as a proxy that does not pass OPTIONS.
    ``upstream_port`` may be changed (a restarted server): new connections go there."""

    def __init__(
        self, upstream_port: int, down_delay: float = 0.0, record: bool = False, refuse_options: bool = False
    ) -> None:
        self.upstream_port = upstream_port
        self.down_delay = down_delay
        self.record = record
        self.refuse_options = refuse_options
        self.sent = bytearray()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.counted = {"up": 0, "down": 0}
        self.cut_at: dict[str, int | None] = {"up": None, "down": None}
        self.cuts = 0
        self.sockets: list[socket.socket] = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm_up(self, n: int) -> None:
        with self.lock:
            self.cut_at["up"] = self.counted["up"] + n

    def arm_down(self, n: int) -> None:
        with self.lock:
            self.cut_at["down"] = self.counted["down"] + n

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "down"), daemon=True).start()

    def _cut_all(self) -> None:
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.sockets = []

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        while True:
            try:
                data = src.recv(16384)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if direction == "up" and self.refuse_options and data.startswith(b"OPTIONS "):
                try:
                    src.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    return
                continue
            with self.lock:
                if direction == "up" and self.record:
                    self.sent += data
                self.counted[direction] += len(data)
                limit = self.cut_at[direction]
                if limit is not None and self.counted[direction] >= limit:
                    self.cut_at[direction] = None
                    self.cuts += 1
                    keep = len(data) - (self.counted[direction] - limit)
                    try:
                        dst.sendall(data[: max(keep, 0)])
                    except OSError:
                        pass
                    self._cut_all()
                    return
            if direction == "down" and self.down_delay:
                time.sleep(self.down_delay)
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.running = False
        self.listener.close()
        with self.lock:
            self._cut_all()


def client_for(url: str, username: str, state_dir: Path, **kwargs) -> ExchangeClient:
    options = {"chunk_size": CHUNK, "backoff_base": 0.05, "timeout": (5, 30)}
    options.update(kwargs)
    return ExchangeClient(
        url,
        Credentials(username=username, password=DEMO_PASSWORD),
        state_dir=state_dir,
        proxies={},
        allow_unencrypted=True,  # the test server is plain HTTP on loopback
        **options,
    )


# --------------------------------------------------------------------------------------------- packages


def dltb_layer(n: int = 6, seed: str = "", cell: float = 100.0) -> QgsVectorLayer:
    """A memory DLTB_BG layer (EPSG:4545) of ``n`` 水田 squares of ``cell`` metres side by side."""
    fields = ["BSM", "TBBH", "DLBM", "DLMC", "QSXZ", "ZLDWDM", "TBMJ"]
    spec = "&".join(f"field={f}:{'double' if f == 'TBMJ' else 'string'}" for f in fields)
    layer = QgsVectorLayer(f"Polygon?crs=EPSG:4545&{spec}", "DLTB_BG", "memory")
    calculator = EllipsoidalAreaCalculator(layer.crs())
    feats = []
    for i in range(n):
        geometry = QgsGeometry.fromRect(
            QgsRectangle(580000 + cell * i, 3800000, 580000 + cell * (i + 1), 3800000 + cell)
        )
        f = QgsFeature(layer.fields())
        f.setAttributes(
            [f"{seed}{i:06d}", str(i), "0101", "水田", "30", "6101020010010000000", calculator.area(geometry)]
        )
        f.setGeometry(geometry)
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    return layer


def make_package(tmp_path: Path, layer_name: str = "DLTB_BG", attachment_kb: int = 256, **kwargs) -> Path:
    attachment = tmp_path / f"photos-{uuid.uuid4().hex[:6]}.bin"
    attachment.write_bytes(os.urandom(attachment_kb * 1024))  # incompressible: several chunks
    args = dict(PACKAGE_ARGS, attachments=[attachment])
    args.update(kwargs)
    out = tmp_path / f"pkg-{uuid.uuid4().hex[:8]}.zip"
    return build_package(out, [LayerInput(dltb_layer(seed=uuid.uuid4().hex[:4]), layer_name)], **args).path
