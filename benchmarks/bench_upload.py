"""Upload throughput of the exchange server: a tus upload of a large file on 127.0.0.1 compared with a
plain copy of the same file (both fsync'ed; the reference is the best of three copies). File size:
``--upload-mib`` when run alone, else the environment variable HUIJIAO_BENCH_UPLOAD_MIB (default 1024 =
1 GiB).
Target ratio ≥ 0.5."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

DEFAULT_MIB = 1024
CHUNK = 64 * 1024 * 1024
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


def _upload(url: str, token: str, path: Path, checksum: bool) -> float:
    """tus upload in 64 MiB chunks; the client reads and hashes chunk n+1 while chunk n is on the wire.

    The timer covers the tus creation (POST) and every PATCH, not the server start nor a commit. Chunks are
    read into two reused buffers and sent as a memoryview (one ``sendall`` per chunk): a fresh 64 MiB
    ``bytes`` per chunk costs page faults on every read, which showed up as client time."""
    from concurrent.futures import ThreadPoolExecutor

    size = path.stat().st_size
    h = {"Authorization": "Bearer " + token, "Tus-Resumable": "1.0.0"}
    s = requests.Session()
    buffers = [bytearray(min(CHUNK, size)) for _ in range(2)]
    started = time.perf_counter()
    r = s.post(url + "/api/v1/uploads", headers={**h, "Upload-Length": str(size)}, timeout=60)
    r.raise_for_status()
    location = url + r.headers["Location"]
    offset = 0

    def read_and_hash(fh, buffer: bytearray) -> tuple[memoryview, bytes | None]:
        chunk = memoryview(buffer)[: fh.readinto(buffer)]
        return chunk, (hashlib.sha256(chunk).digest() if checksum and chunk else None)

    with path.open("rb", buffering=0) as fh, ThreadPoolExecutor(1) as pool:
        n = 0
        nxt = pool.submit(read_and_hash, fh, buffers[0])
        while offset < size:
            chunk, digest = nxt.result()
            n += 1
            # the other buffer is free: its PATCH has been answered
            nxt = pool.submit(read_and_hash, fh, buffers[n % 2])
            ph = {**h, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
            if digest is not None:
                ph["Upload-Checksum"] = "sha256 " + base64.b64encode(digest).decode()
            r = s.patch(location, headers=ph, data=chunk, timeout=600)
            if r.status_code != 204:
                raise RuntimeError(f"PATCH failed: {r.status_code} {r.text[:200]}")
            offset = int(r.headers["Upload-Offset"])
        nxt.result()
    return time.perf_counter() - started


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
            for checksum in (True, False):
                up_s = _upload(url, token, src, checksum)
                label = "tus upload, sha256 per 64 MiB chunk" if checksum else "tus upload, no chunk checksum"
                rows.append({"metric": label, "value": mib / up_s, "unit": "MiB/s"})
                rows.append(
                    {
                        "metric": label + ": ratio to best plain copy (target ≥ 0.5)",
                        "value": copy_s / up_s,
                        "unit": "ratio",
                    }
                )
                for part in (tmpdir / "data" / "uploads").glob("*.part"):
                    part.unlink()
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
