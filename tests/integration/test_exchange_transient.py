"""Transient faults during a real submission: a fault injector on 127.0.0.1 forwards every request to
the real server but answers the first commit (POST /submissions) itself with 503 and Retry-After, as a
server with a full disk or a locked database does. The client waits, commits again and gets the real
server's verdict: an accepted package is accepted, a bad one gets its signed rejection, which is final
(no further commit), and a 503 is never reported as a rejection."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from huijiao_plugin.core.exchange.client import ExchangeError
from tests.integration.server_support import client_for, demo_server_fixture, make_package

server = demo_server_fixture("transient")
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FaultInjector:
    """Forwards to ``upstream``; the first ``busy_commits`` POST /submissions get 503 + Retry-After."""

    def __init__(self, upstream: str, busy_commits: int, retry_after: int = 1) -> None:
        self.commits: list[tuple[int, float]] = []  # (status answered, time)
        injector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                commit = self.command == "POST" and self.path.rstrip("/").endswith("/api/v1/submissions")
                if commit and len(injector.commits) < busy_commits:
                    injector.commits.append((503, time.monotonic()))
                    data = json.dumps({"error": {"code": "SERVER_BUSY", "message": "busy"}}).encode()
                    self.send_response(503)
                    self.send_header("Retry-After", str(retry_after))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                answer = requests.request(
                    self.command, upstream + self.path, data=body, headers=headers, timeout=120,
                    allow_redirects=False,
                )  # fmt: skip
                if commit:
                    injector.commits.append((answer.status_code, time.monotonic()))
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP | {"content-encoding"}:
                        self.send_header(key, value)
                content = b"" if self.command == "HEAD" else answer.content
                self.send_header("Content-Length", str(len(content)) if self.command != "HEAD" else "0")
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_HEAD = do_OPTIONS = do_DELETE = handle_one  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def injector(server):
    made = []

    def make(busy_commits: int) -> FaultInjector:
        made.append(FaultInjector(server.url, busy_commits))
        return made[-1]

    yield make
    for item in made:
        item.close()


def test_a_503_on_commit_is_waited_out_and_the_package_accepted(qgis_app, injector, tmp_path):
    proxy = injector(busy_commits=2)
    client = client_for(proxy.url, "demo_zrzy_submitter", tmp_path / "state", backoff_base=0.01)
    result = client.submit_package(make_package(tmp_path, attachment_kb=64))
    assert result.accepted, result.reasons
    assert [status for status, _ in proxy.commits] == [503, 503, 201]
    # Retry-After: 1 was honoured (not the 0.01 s back-off)
    assert proxy.commits[1][1] - proxy.commits[0][1] >= 0.95
    assert client.uploads.pending() == []


def test_a_signed_rejection_after_a_503_is_final(qgis_app, injector, tmp_path):
    proxy = injector(busy_commits=1)
    client = client_for(proxy.url, "demo_zrzy_submitter", tmp_path / "state", backoff_base=0.01)
    package = make_package(tmp_path, layer_name="WRONG_NAME", attachment_kb=8)
    result = client.submit_package(package)
    assert not result.accepted
    assert result.receipt["status"] == "rejected"
    assert result.verified
    assert [status for status, _ in proxy.commits] == [503, 201]  # no commit after the verdict
    again = client.submit_package(package)  # the same package: the stored verdict, no new upload
    assert again.duplicate and again.submission_id == result.submission_id
    assert [status for status, _ in proxy.commits] == [503, 201]


def test_a_server_that_stays_unavailable_is_not_a_rejection(qgis_app, injector, tmp_path):
    proxy = injector(busy_commits=100)
    client = client_for(
        proxy.url, "demo_zrzy_submitter", tmp_path / "state", backoff_base=0.01, max_retries=2
    )
    package = make_package(tmp_path, attachment_kb=8)
    with pytest.raises(ExchangeError) as caught:
        client.submit_package(package)
    assert caught.value.status == 503 and caught.value.transient
    assert len(proxy.commits) == 3
    assert client.receipts.all() == []  # nothing recorded as a verdict
    assert len(client.uploads.pending()) == 1  # the upload stays, to be committed later
