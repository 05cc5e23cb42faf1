"""Request limits are decided before the body is read: a 50 MB body costs the server no memory, with or
without a token, declared by Content-Length or streamed chunked (the server's own RSS, read from /proc)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.server.conftest import start_server
from tests.server.helpers import API, login

MB = 1024 * 1024
BIG = 50 * MB


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory, catalog_dir, db_factory):
    """A server of its own: its peak RSS (VmHWM) is not raised by other tests' uploads."""
    srv = start_server(tmp_path_factory, catalog_dir, db_factory)
    yield srv
    srv.stop()


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def raw_request(port: int, path: str, headers: dict[str, str], chunked: bool, size: int) -> tuple[int, str]:
    """Send a request whose body is ``size`` bytes of a JSON string, as much of it as the server takes, and
    return the status line's code and the whole answer (the server may answer and close before the end)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("ascii"))
        block = b'"' + b"x" * (MB - 2) + b'"'
        sent = 0
        try:
            while sent < size:
                part = block[: min(MB, size - sent)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                sent += len(part)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    finally:
        sock.close()
    text = answer.decode("utf-8", "replace")
    assert text.startswith("HTTP/1.1 "), text[:200]
    return int(text.split()[1]), text


def test_big_bodies_refused_before_reading(fresh_server):
    srv = fresh_server
    token = login(srv.url, "admin", "admin-pass-123").token
    auth = {"Authorization": "Bearer " + token}
    before = memory_kib(srv.proc.pid)
    cases = [
        ("/auth/token", {}, False, 413),
        ("/auth/token", {}, True, 413),
        ("/submissions", auth, False, 413),
        ("/submissions", auth, True, 413),
        ("/submissions", {}, True, 401),
        ("/submissions/offline", {"Authorization": "Bearer wrong"}, True, 401),
        ("/admin/accounts", auth, True, 413),
    ]
    for path, headers, chunked, expected in cases:
        status, text = raw_request(srv.port, API + path, headers, chunked, BIG)
        assert status == expected, (path, chunked, text[:300])
        code = "BODY_TOO_LARGE" if expected == 413 else ("AUTH_REQUIRED" if not headers else "TOKEN_INVALID")
        assert f'"code":"{code}"' in text, text[:300]
    after = memory_kib(srv.proc.pid)
    # seven 50 MB bodies: the peak and the resident size grow by a few MB at most
    assert after["VmHWM"] - before["VmHWM"] < 8 * 1024, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < 8 * 1024, (before, after)


def test_small_bodies_still_served(fresh_server):
    """The limit is a limit: a normal login and a JSON body just under 1 MiB are answered as before."""
    srv = fresh_server
    client = login(srv.url, "admin", "admin-pass-123")
    assert client.get("/auth/me").status_code == 200
    r = client.post("/admin/tokens/revoke", json={"username": "nobody", "pad": "x" * (MB - 100)})
    assert r.status_code == 404, r.text
    r = client.post("/admin/tokens/revoke", json={"username": "nobody", "pad": "x" * (MB + 100)})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "BODY_TOO_LARGE"


def test_get_with_a_body_refused(fresh_server):
    client = login(fresh_server.url, "admin", "admin-pass-123")
    r = client.s.get(fresh_server.url + API + "/auth/me", data=b"x" * 10, headers=client.headers())
    assert r.status_code == 413, r.text


def test_refused_commits_leave_no_lock_behind(fresh_server):
    """1,000 commits of upload ids nobody owns, by a reader: the server does not keep a lock (or anything
    else) per id. Ids of 64 KiB would have cost 64 MB if a lock stayed per id; the valid-length ones pass
    through the lock and must leave it too."""
    srv = fresh_server
    admin = login(srv.url, "admin", "admin-pass-123")
    body = {"password": "secret-pass-123", "department": "nync", "region_code": "610102", "role": "reader"}
    assert admin.post("/admin/accounts", json={"username": "lock_reader", **body}).status_code == 201
    reader = login(srv.url, "lock_reader", "secret-pass-123")
    manifest = {"dataset_id": "gbznt"}
    before = memory_kib(srv.proc.pid)
    for i in range(1000):
        long_id = f"{i:06d}" + "u" * (64 * 1024)
        r = reader.post(
            "/submissions", json={"upload_id": long_id, "package_sha256": "0" * 64, "manifest": manifest}
        )
        assert r.status_code == 422, r.text
        short_id = f"{i:032x}"
        r = reader.post(
            "/submissions", json={"upload_id": short_id, "package_sha256": "0" * 64, "manifest": manifest}
        )
        assert r.status_code in (400, 403), r.text  # refused: manifest invalid / role
    after = memory_kib(srv.proc.pid)
    assert after["VmRSS"] - before["VmRSS"] < 16 * 1024, (before, after)


def test_refused_bodies_are_answered_not_reset(fresh_server):
    """A body refused before it is parsed (too large, or a bad token) is read and dropped first when it is
    small enough: a client still sending it reads the 413 / 401, never a connection reset."""
    token = login(fresh_server.url, "admin", "admin-pass-123").token
    host, port = fresh_server.url.split("//")[1].split(":")
    for auth, size, status in ((token, MB + 100, b"413"), ("not-a-token", MB - 100, b"401")):
        head = (
            f"POST {API}/admin/tokens/revoke HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(head.encode("ascii"))
            body = b"x" * size
            for k in range(0, size, 64 * 1024):  # a client on a slow line: the answer comes before the end
                sock.sendall(body[k : k + 64 * 1024])
                time.sleep(0.01)
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
