"""Upload throughput of the exchange server: a tus upload of a large file on 127.0.0.1 compared with a
plain copy of the same file (both fsync'ed; the reference is the best of three copies). File size:
``--upload-mib`` when run alone, else the environment variable HUIJIAO_BENCH_UPLOAD_MIB (default 1024 =
1 GiB). Target ratio ≥ 0.5 for the default client.

Three uploads of the same file, each timed from the tus creation (POST) to the answer of the last PATCH,
every PATCH verified by the server before it answers:

* sha256 prefix checksum (the huijiao ``checksum-prefix`` extension, what the plugin uses when the server
  offers it): each PATCH carries the sha256 of the file from byte 0 to the end of the PATCH; client and
  server each hash every byte once (the server's running hash is also the package hash for the commit);
* standard tus ``Upload-Checksum`` (sha256 of each chunk): the server hashes every byte twice (the chunk
  and the running package hash);
* no checksum (the server still keeps its running package hash).

The client memory-maps the file, hashes it in place and sends each body with ``socket.sendfile``; PATCHes
are 8 MiB, then doubling up to 256 MiB (each is all or nothing: a cut line costs at most one chunk, the
upload resumes from the last answered PATCH). Each mode runs three times, interleaved; the rows give the
best and the median, over the best plain copy.

On the 2-core benchmark VM sha256 runs at ~1.9 GB/s per core (SHA-NI), so one hash pass over 1 GiB is
~0.55 CPU-s and the plain copy ~0.5 s: the prefix checksum keeps the two hash passes (client, server) on
two cores, in parallel with the transfer. The upload needs both cores and the copy one: any other load on
the machine lowers the ratio (run it on a quiet machine)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

DEFAULT_MIB = 1024
CHUNK = 256 * 1024 * 1024  # largest PATCH
FIRST_CHUNK = 8 * 1024 * 1024
COPIES = 3
ROOT = Path(__file__).resolve().parent.parent


def _make_file(path: Path, size: int, seed: int) -> None:
    block = hashlib.sha256(str(seed).encode()).digest() * 1
    rnd = bytearray()
    while len(rnd) < 8 * 1024 * 1024:
        block = hashlib.sha256(block).digest()
        rnd += block * 64
    with path.open("wb") as fh:
        left = size
        i = 0
        while left > 0:
            piece = bytes(rnd[i % 1024 :]) + bytes(rnd[: i % 1024])
            fh.write(piece[: min(left, len(piece))])
            left -= min(left, len(piece))
            i += 1


def _copy(src: Path, dst: Path) -> float:
    started = time.perf_counter()
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - started


def _start_server(data: Path) -> tuple[subprocess.Popen, str, str]:
    py = sys.executable
    base = [py, "-m", "exchange_server"]
    subprocess.run(
        [
            *base,
            "admin",
            "--data",
            str(data),
            "create-account",
            "--username",
            "bench",
            "--password",
            "bench-pass-123",
            "--department",
            "zrzy",
            "--region",
            "61",
            "--role",
            "admin",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    port_file = data.parent / "port"
    proc = subprocess.Popen(
        [
            *base,
            "serve",
            "--data",
            str(data),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--log-level",
            "warning",
            "--max-upload-size",
            str(64 * 1024**3),
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port_file.read_text()}"
    for _ in range(100):
        try:
            requests.get(url + "/api/v1/health", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    r = requests.post(
        url + "/api/v1/auth/token", json={"username": "bench", "password": "bench-pass-123"}, timeout=10
    )
    return proc, url, r.json()["access_token"]


MODES = {
    "prefix": "tus upload, sha256 prefix checksum (default client)",
    "chunk": "tus upload, standard tus sha256 per chunk",
    "none": "tus upload, no checksum",
}
UPLOADS = 3  # runs of each mode, like the three copies of the reference


def _chunks(size: int, first: int, largest: int) -> list[tuple[int, int]]:
    """(start, end) of each PATCH: ``first`` bytes, then doubling up to ``largest``. A small first chunk
    starts the line early (its checksum must be computed before its first byte is sent); large later
    chunks make few PATCHes (each costs an fsync and a database update on the server)."""
    spans = []
    pos, step = 0, first
    while pos < size:
        spans.append((pos, min(size, pos + step)))
        pos += step
        step = min(largest, step * 2)
    return spans


def _upload(url: str, token: str, path: Path, mode: str) -> float:
    """tus upload of ``path``; the client hashes chunk n+1 while chunk n is on the wire.

    ``mode``: "prefix" sends ``Upload-Prefix-Checksum`` (the running sha256 of the file up to the end of
    the chunk: one hash pass over the file on each side), "chunk" the standard tus ``Upload-Checksum`` of
    the chunk (the server then hashes every byte twice: the chunk and the whole file), "none" no checksum.

    The timer covers the tus creation (POST) and every PATCH, not the server start nor a commit. The client
    is what a fast uploader does: the file is memory-mapped and hashed in place (no read copy), each body is
    sent with ``socket.sendfile`` (no copy through user space), over one keep-alive connection."""
    import http.client
    import mmap
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    size = path.stat().st_size
    parts = urlsplit(url)
    h = {"Authorization": "Bearer " + token, "Tus-Resumable": "1.0.0"}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    conn.connect()
    # no Nagle: the small header packet and the response must not wait for a delayed ACK (urllib3 does this)
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    running = hashlib.sha256()
    spans = _chunks(size, FIRST_CHUNK, CHUNK)
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)

        def checksum(start: int, end: int) -> dict[str, str]:
            if mode == "prefix":
                running.update(view[start:end])
                return {"Upload-Prefix-Checksum": "sha256 " + base64.b64encode(running.digest()).decode()}
            if mode == "chunk":
                digest = hashlib.sha256(view[start:end]).digest()
                return {"Upload-Checksum": "sha256 " + base64.b64encode(digest).decode()}
            return {}

        try:
            with ThreadPoolExecutor(1) as pool:
                started = time.perf_counter()
                nxt = pool.submit(checksum, *spans[0])
                conn.request("POST", "/api/v1/uploads", headers={**h, "Upload-Length": str(size)})
                r = conn.getresponse()
                r.read()
                if r.status != 201:
                    raise RuntimeError(f"POST failed: {r.status}")
                location = r.getheader("Location")
                offset = 0
                for i, (start, end) in enumerate(spans):
                    headers = nxt.result()
                    if i + 1 < len(spans):
                        nxt = pool.submit(checksum, *spans[i + 1])
                    conn.putrequest("PATCH", location, skip_accept_encoding=True)
                    for name, value in {
                        **h,
                        **headers,
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset),
                        "Content-Length": str(end - start),
                    }.items():
                        conn.putheader(name, value)
                    conn.endheaders()
                    conn.sock.sendfile(fh, start, end - start)
                    r = conn.getresponse()
                    body = r.read()
                    if r.status != 204:
                        raise RuntimeError(f"PATCH failed: {r.status} {body[:200]!r}")
                    offset = int(r.getheader("Upload-Offset"))
                elapsed = time.perf_counter() - started
        finally:
            conn.close()
            view.release()
    if offset != size:
        raise RuntimeError(f"upload ended at {offset} of {size}")
    return elapsed


def run(args) -> list[dict]:
    # --size of the shared runner means "features" for the other benchmarks: the upload size has its own knob
    mib = getattr(args, "upload_mib", None) or int(os.environ.get("HUIJIAO_BENCH_UPLOAD_MIB", DEFAULT_MIB))
    size = mib * 1024 * 1024
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="huijiao_bench_upload_") as tmp:
        tmpdir = Path(tmp)
        src = tmpdir / "package.bin"
        _make_file(src, size, getattr(args, "seed", 1))
        # The first copy writes into page-cache pages the VM has not touched for a while, which can cost 4x
        # (seen: 420 MiB/s first, 2 GB/s after); the reference is the best of three copies.
        copies = []
        for _ in range(COPIES):
            copies.append(_copy(src, tmpdir / "copy.bin"))
            (tmpdir / "copy.bin").unlink()
        copy_s = min(copies)
        rows.append({"metric": "file size", "value": float(mib), "unit": "MiB"})
        for name, seconds in (("first", copies[0]), ("best", copy_s)):
            metric = f"plain copy + fsync, {name} of {COPIES}"
            rows.append({"metric": metric, "value": mib / seconds, "unit": "MiB/s"})
        proc, url, token = _start_server(tmpdir / "data")
        try:
            times: dict[str, list[float]] = {mode: [] for mode in MODES}
            for _ in range(UPLOADS):  # interleaved: a burst of load elsewhere does not hit one mode only
                for mode in MODES:
                    times[mode].append(_upload(url, token, src, mode))
                    for part in (tmpdir / "data" / "uploads").glob("*.part"):
                        part.unlink()
            for mode, label in MODES.items():
                best, median = min(times[mode]), statistics.median(times[mode])
                rows.append({"metric": f"{label}, best of {UPLOADS}", "value": mib / best, "unit": "MiB/s"})
                rows.append(
                    {
                        "metric": f"{label}: best / best plain copy (target ≥ 0.5)",
                        "value": copy_s / best,
                        "unit": "ratio",
                    }
                )
                rows.append(
                    {
                        "metric": f"{label}: median / best plain copy",
                        "value": copy_s / median,
                        "unit": "ratio",
                    }
                )
        finally:
            proc.terminate()
            proc.wait(20)
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--upload-mib", type=int, default=None, help="file size in MiB (default 1024)")
    parser.add_argument("--seed", type=int, default=1)
    for row in run(parser.parse_args()):
        print("{:<70} {:>10.2f} {}".format(row["metric"], row["value"], row["unit"]))
