"""Linux-only calls are guarded (huijiao_plugin.compat, exchange_server.platform): with each call made
missing, as on Windows or macOS, the guard does the plain thing, notes it in the log, and the product
still gives the same results."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from pathlib import Path

import pytest
from compare_support import build_county, release

from exchange_server import platform
from exchange_server.api.part_writer import PartWriter
from huijiao_plugin import compat
from huijiao_plugin.core.compare.engine import CountyOverlay
from huijiao_plugin.core.compare.presets import run_preset
from tests.server.helpers import ServerProcess, build_package, login, write_catalog

PASSWORD = "guard-pass-123"


def _no_c_library(*args, **kwargs):
    raise OSError("simulated: no such C library")


def _windows_cdll(name, *args, **kwargs):
    if name is None:  # Windows has no "the process itself" handle
        raise TypeError("expected str, bytes or os.PathLike object, not NoneType")
    raise OSError(f"simulated: cannot load {name}")


class _LibcWithout:
    """A C library without the glibc extensions (as musl or macOS's libc)."""

    def __init__(self, *args, **kwargs):
        pass


@pytest.fixture
def fresh_notes(monkeypatch):
    # each missing call is noted once per process: start from no notes
    monkeypatch.setattr(compat, "_noted_missing", set())
    monkeypatch.setattr(platform, "_noted", set())


@pytest.mark.parametrize(
    "cdll", [_no_c_library, _windows_cdll, _LibcWithout], ids=["no-libc", "windows", "no-malloc_trim"]
)
def test_plugin_release_freed_memory_without_malloc_trim(monkeypatch, caplog, fresh_notes, cdll):
    monkeypatch.setattr(ctypes, "CDLL", cdll)
    with caplog.at_level(logging.INFO, logger="huijiao_plugin.compat"):
        compat.release_freed_memory()
        compat.release_freed_memory()
    notes = [r.getMessage() for r in caplog.records if "malloc_trim" in r.getMessage()]
    assert len(notes) == 1 and "not available" in notes[0]


def test_plugin_release_freed_memory_on_glibc(caplog, fresh_notes):
    with caplog.at_level(logging.INFO, logger="huijiao_plugin.compat"):
        compat.release_freed_memory()
    assert not [r for r in caplog.records if "malloc_trim" in r.getMessage()]


def test_comparison_runs_without_malloc_trim(monkeypatch, qgis_app, tmp_path, fresh_notes):
    """A preset ends with release_freed_memory(): without the call the comparison gives the same pieces
    (the hand-made county of compare_support: HSF x 250–550, y 100–300 on farmland minus PBF)."""
    layers = build_county(tmp_path / "county.gpkg")
    try:
        monkeypatch.setattr(ctypes, "CDLL", _no_c_library)
        result = run_preset("hsfnotinpbf", CountyOverlay(dict(layers)))
        assert sorted(round(p.geom.area(), 2) for p in result.pieces) == [
            4600.0,
            5000.0,
            5000.0,
            10000.0,
            10000.0,
        ]
    finally:
        release(layers)


def test_server_keep_freed_memory_without_mallopt(monkeypatch, caplog, fresh_notes):
    monkeypatch.setattr(ctypes, "CDLL", _no_c_library)
    with caplog.at_level(logging.INFO, logger="exchange_server.platform"):
        platform.keep_freed_memory()
    assert any("mallopt is not available" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(ctypes, "CDLL", _LibcWithout)
    platform.keep_freed_memory()  # a C library without mallopt: nothing to do, no error


def test_open_direct_without_o_direct(monkeypatch, tmp_path, caplog, fresh_notes):
    path = tmp_path / "a.part"
    path.write_bytes(b"")
    monkeypatch.delattr(os, "O_DIRECT", raising=False)
    with caplog.at_level(logging.INFO, logger="exchange_server.platform"):
        assert platform.open_direct(path) == -1
    assert any("O_DIRECT is not available" in r.getMessage() for r in caplog.records)


def test_pwrite_without_os_pwrite(monkeypatch, tmp_path, fresh_notes):
    path = tmp_path / "b.bin"
    monkeypatch.delattr(os, "pwrite")
    fd = platform.open_fd(path, os.O_RDWR | os.O_CREAT)
    try:
        platform.pwrite(fd, b"\n\r\n" * 3, 4)
        platform.pwrite(fd, memoryview(b"abcd"), 0)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"abcd" + b"\n\r\n" * 3


def test_open_fd_asks_for_binary_mode_where_the_os_has_it(monkeypatch, tmp_path):
    """Windows (os.O_BINARY) would otherwise write each \\n of an upload as \\r\\n."""
    seen = []
    real_open = os.open
    binary = 0x40000000  # not a flag Linux uses: removed again before the real open

    def recording_open(path, flags, mode=0o777):
        seen.append(flags)
        return real_open(path, flags & ~binary, mode)

    monkeypatch.setattr(os, "O_BINARY", binary, raising=False)
    monkeypatch.setattr(os, "open", recording_open)
    os.close(platform.open_fd(tmp_path / "c.bin", os.O_WRONLY | os.O_CREAT))
    assert seen == [os.O_WRONLY | os.O_CREAT | binary]


def test_part_writer_without_o_direct_and_pwrite(monkeypatch, tmp_path, fresh_notes):
    """The upload writer's plain path: staged blocks written with seek + write give the same file."""
    monkeypatch.delattr(os, "O_DIRECT", raising=False)
    monkeypatch.delattr(os, "pwrite")
    data = os.urandom(3 * 1024 * 1024 + 4321) + b"\n" * 5000
    path = tmp_path / "u.part"
    writer = PartWriter(path, 0, [], direct=True)
    assert writer.dfd == -1
    try:
        for start in range(0, len(data), 100_003):
            for batch in writer.append(data[start : start + 100_003]):
                writer.write(batch)
                writer.release(batch)
        last = writer.take()
        if last is not None:
            writer.write(last)
            writer.release(last)
    finally:
        writer.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


_SIMULATE_MISSING = """
import ctypes, os
for name in ("O_DIRECT", "pwrite"):
    if hasattr(os, name):
        delattr(os, name)
def _no_c_library(*args, **kwargs):
    raise OSError("simulated: no such C library")
ctypes.CDLL = _no_c_library
"""


def test_server_runs_without_linux_calls(tmp_path, monkeypatch):
    """The real server in a process where O_DIRECT, os.pwrite and the C library are missing (set up by a
    sitecustomize before the server starts), data in a directory with Chinese characters and a space:
    an upload and a submission are accepted with the right hash."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SIMULATE_MISSING, encoding="utf-8")
    repo = str(ServerProcess.__init__.__globals__["REPO"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), repo]))
    monkeypatch.setenv("HJ_LOG", "info")
    base = tmp_path / "服务器 数据"
    base.mkdir()
    srv = ServerProcess(base / "srv", write_catalog(base / "目录 catalog"))
    srv.cli("create-account", "--username", "sub", "--password", PASSWORD, "--department", "zrzy",
            "--region", "610102", "--role", "submitter")  # fmt: skip
    srv.start()
    try:
        c = login(srv.url, "sub", PASSWORD)
        data, manifest = build_package("dltb_biangeng", "610102", count=200)
        sha = hashlib.sha256(data).hexdigest()
        upload_id = c.upload(data, chunk=100_000)
        assert c.get("/uploads/" + upload_id).json()["sha256"] == sha
        r = c.post("/submissions", json={"upload_id": upload_id, "package_sha256": sha, "manifest": manifest})
        assert r.status_code == 201, r.text
        assert r.json()["receipt"]["status"] == "accepted", r.json()
        assert r.json()["receipt"]["package_sha256"] == sha
        stored = srv.data_dir / "packages" / sha[:2] / f"{sha}.zip"
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
        # the upload was moved into the store: no descriptor of the server still points at it or at any
        # upload or temporary file (Windows refuses to move or delete an open file)
        fds = Path(f"/proc/{srv.proc.pid}/fd")
        if fds.is_dir():
            held = {os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()}
            inside = [
                Path(t).relative_to(srv.data_dir) for t in held if t.startswith(f"{srv.data_dir}{os.sep}")
            ]
            assert any(p.name == "exchange.sqlite3" for p in inside)  # the scan does see the server's files
            assert {p.parts[0] for p in inside} & {"uploads", "packages", "tmp"} == set(), inside
    finally:
        srv.stop()
    log = srv.log_path.read_text(encoding="utf-8", errors="replace")
    assert "O_DIRECT is not available" in log and "mallopt is not available" in log, log[-2000:]
    assert "os.pwrite is not available" in log, log[-2000:]
