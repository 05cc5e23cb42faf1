"""Slowloris: 300 connections that send part of their headers (and one whose body stalls) do not keep a
normal client out, and the server closes them after its header / body read time-outs."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.server.conftest import start_server
from tests.server.helpers import API


@pytest.fixture(scope="module")
def timed_server(tmp_path_factory, catalog_dir, db_factory):
    extra = ["--header-timeout", "2", "--body-idle-timeout", "2"]
    srv = start_server(tmp_path_factory, catalog_dir, db_factory, extra)
    yield srv
    srv.stop()


def closed_by_server(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(max(0.05, deadline - time.monotonic()))
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_half_open_connections_time_out(timed_server):
    srv = timed_server
    socks = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(f"GET {API}/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
            socks.append(s)
        stall = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        head = f"POST {API}/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        stall.sendall((head + "Content-Length: 100\r\n\r\n{").encode())
        socks.append(stall)
        t0 = time.monotonic()
        r = requests.get(srv.url + API + "/health", timeout=5)
        assert r.status_code == 200
        assert time.monotonic() - t0 < 3
        deadline = time.monotonic() + 8  # time-outs of 2 s, checked every second
        still_open = [s for s in socks if not closed_by_server(s, deadline)]
        assert not still_open, f"{len(still_open)} of {len(socks)} connections still open"
        # a request that takes its time but keeps within the time-outs is served
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(f"GET {API}/health HTTP/1.1\r\n".encode())
        time.sleep(1)
        s.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        s.close()
    finally:
        for s in socks:
            s.close()
