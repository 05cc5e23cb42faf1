"""Transient faults on the client: a 503 with Retry-After and a dropped connection are retried with a
bounded back-off and never reported as a rejection (a small http.server on 127.0.0.1, as the
conventions allow for transport-level tests; the real server's 503 contract is tested in integration)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from huijiao_plugin.core.exchange.client import ExchangeClient, ExchangeError
from huijiao_plugin.core.exchange.transport import parse_retry_after

BUSY = {"error": {"code": "SERVER_BUSY", "message": "busy", "message_zh": "服务器繁忙"}}


class Script:
    """What the fake server answers, request by request, and what it saw."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str, float]] = []
        self.received = bytearray()


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.seen.append((self.command, self.path, time.monotonic()))
            if self.path.startswith("/api/v1/uploads") and self.command in ("POST", "HEAD", "OPTIONS"):
                return self._tus()
            kind = script.answers.pop(0) if script.answers else "ok"
            if kind == "drop":  # the connection ends without an answer
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            if kind.startswith("503"):
                data = json.dumps(BUSY).encode()
                self.send_response(503)
                self.send_header("Retry-After", kind.split(":")[1])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            if self.command == "PATCH":
                script.received += body
                self.send_response(204)
                self.send_header("Upload-Offset", str(len(script.received)))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            data = json.dumps({"status": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None

        def _tus(self) -> None:
            self.send_response(201 if self.command == "POST" else 200)
            if self.command == "POST":
                self.send_header("Location", "/api/v1/uploads/u1")
            self.send_header("Upload-Offset", str(len(script.received)))
            self.send_header("Tus-Resumable", "1.0.0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PATCH = do_HEAD = do_OPTIONS = _answer  # noqa: N815

    return Handler


@pytest.fixture
def fake_server():
    servers = []

    def start(answers: list[str]) -> tuple[str, Script]:
        script = Script(answers)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", script

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _client(url: str, tmp_path, **kwargs) -> ExchangeClient:
    return ExchangeClient(url, state_dir=tmp_path, proxies={}, backoff_base=0.01, **kwargs)


def test_503_with_retry_after_is_waited_for_then_succeeds(fake_server, tmp_path):
    url, script = fake_server(["503:1", "503:1"])
    client = _client(url, tmp_path)
    assert client.get_json("/health") == {"status": "ok"}
    gets = [t for method, _path, t in script.seen if method == "GET"]
    assert len(gets) == 3
    assert client.retries == 2
    # Retry-After (1 s) was honoured, not the 0.01 s back-off
    assert gets[1] - gets[0] >= 0.95
    assert gets[2] - gets[1] >= 0.95


def test_dropped_connection_is_retried(fake_server, tmp_path):
    url, script = fake_server(["drop"])
    client = _client(url, tmp_path)
    assert client.get_json("/health") == {"status": "ok"}
    assert [m for m, _p, _t in script.seen] == ["GET", "GET"]


def test_503_retries_are_bounded_and_end_as_a_transient_error_not_a_rejection(fake_server, tmp_path):
    url, script = fake_server(["503:0"] * 10)
    client = _client(url, tmp_path, max_retries=3)
    with pytest.raises(ExchangeError) as caught:
        client.get_json("/health")
    assert len(script.seen) == 4  # the first try and 3 retries
    error = caught.value
    assert error.status == 503
    assert error.transient
    assert error.code == "SERVER_BUSY"
    assert "服务器繁忙" in str(error)
    assert "nothing was rejected" in str(error) or "未被拒收" in str(error)


def test_retry_after_is_capped(fake_server, tmp_path):
    url, script = fake_server(["503:3600"])
    client = _client(url, tmp_path, retry_after_max=0.2)
    start = time.monotonic()
    assert client.get_json("/health") == {"status": "ok"}
    assert time.monotonic() - start < 5


def test_patch_answered_503_resumes_from_the_server_offset(fake_server, tmp_path):
    url, script = fake_server(["ok", "503:1", "ok"])  # chunk 1 ok, chunk 2 busy once, then ok
    data = bytes(range(256)) * 40  # 10,240 bytes: 3 chunks of 4096
    package = tmp_path / "p.zip"
    package.write_bytes(data)
    client = _client(url, tmp_path / "state", chunk_size=4096)
    upload_url, resumed_from = client.upload(package, sha256="ab" * 32)
    assert upload_url == "/api/v1/uploads/u1"
    assert resumed_from == 0
    assert bytes(script.received) == data
    patches = [t for method, _p, t in script.seen if method == "PATCH"]
    assert len(patches) == 4
    assert patches[2] - patches[1] >= 0.95


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("", None), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected
