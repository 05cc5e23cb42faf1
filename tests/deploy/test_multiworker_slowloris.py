"""The server's own read time-outs under several worker processes: ``python -m exchange_server.asgi
--workers 2`` gives every worker the guarded HTTP protocol, so connections that send part of their headers,
or stall in their body, are closed after the time-outs set in HUIJIAO_SERVER_OPTIONS while a normal client
is served."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from tests.deploy.nginx_support import free_port
from tests.integration.server_support import REPO
from tests.server.conftest import PG_SKIP, PgSchema, pg_url
from tests.server.test_slowloris import closed_by_server


@pytest.fixture()
def two_guarded_workers(tmp_path):
    if not pg_url():
        pytest.skip(PG_SKIP)
    schema = PgSchema(pg_url())
    env = dict(os.environ, HUIJIAO_SERVER_DATA=str(tmp_path / "data"), HUIJIAO_SERVER_DB=schema.url)
    env["HUIJIAO_SERVER_OPTIONS"] = "--header-timeout 2 --body-idle-timeout 2"
    port = free_port()
    log_path = tmp_path / "workers.log"
    command = [sys.executable, "-m", "exchange_server.asgi", "--workers", "2", "--port", str(port)]
    command += ["--log-level", "info"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the workers did not start"
            try:
                if requests.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield port, log_path
    finally:
        proc.terminate()
        proc.wait(30)
        schema.drop()


def test_slow_connections_closed_by_both_workers(two_guarded_workers):
    import socket

    port, log_path = two_guarded_workers
    socks = []
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        stall = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = "POST /api/v1/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        stall.sendall((head + "Content-Length: 100\r\n\r\n{").encode())
        socks.append(stall)
        t0 = time.monotonic()
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).status_code == 200
        assert time.monotonic() - t0 < 3
        deadline = time.monotonic() + 8  # time-outs of 2 s, checked every second
        still_open = [s for s in socks if not closed_by_server(s, deadline)]
        assert not still_open, f"{len(still_open)} of {len(socks)} connections still open"
    finally:
        for s in socks:
            s.close()
    # both workers served (each logs its start): the connections were spread by the kernel over both
    assert log_path.read_text().count("Application startup complete") == 2
