"""The deployment's nginx site in front of the real exchange server, on loopback with a test
certificate: the plugin's client uploads a package through it (tus PATCHes streamed) and gets a
verified receipt, downloads the version with the same sha256, and the limits of the site hold."""

from __future__ import annotations

import hashlib

import pytest
import requests

from huijiao_plugin.core.exchange.client import Credentials, ExchangeClient
from tests.deploy.nginx_support import NGINX, Nginx
from tests.integration.server_support import DEMO_PASSWORD, demo_server, make_package
from tests.integration.tls_support import make_certificates


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    assert NGINX, "nginx (Debian package) is required: make setup installs it"
    root = tmp_path_factory.mktemp("nginx")
    certificates = make_certificates(root / "certs")
    server = demo_server(root / "server")
    nginx = Nginx(root / "nginx", server.port, certificates)
    try:
        nginx.start(certificates["ca"])
        yield nginx, certificates
    finally:
        nginx.stop()
        server.stop()


def _client(nginx: Nginx, ca, state_dir, username: str = "demo_zrzy_submitter") -> ExchangeClient:
    return ExchangeClient(
        nginx.url,
        Credentials(username=username, password=DEMO_PASSWORD),
        state_dir=state_dir,
        proxies={},
        ca_file=str(ca),
        chunk_size=1024 * 1024,
        backoff_base=0.05,
    )


def test_upload_through_nginx_gives_a_verified_receipt(qgis_app, proxied, tmp_path):
    nginx, certificates = proxied
    package = make_package(tmp_path, attachment_kb=3 * 1024)  # several 1 MiB chunks
    client = _client(nginx, certificates["ca"], tmp_path / "zrzy")
    result = client.submit_package(package)
    assert result.accepted, result.reasons
    assert result.verified and not result.duplicate
    assert result.receipt["package_sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    assert client.reverify(client.receipts.get(nginx.url, result.submission_id))

    reader = _client(nginx, certificates["ca"], tmp_path / "nync", "demo_nync_reader")
    [version] = [
        v for v in reader.versions(dataset_id="dltb_biangeng") if v["submission_id"] == result.submission_id
    ]
    downloaded = reader.download(version)
    assert hashlib.sha256(downloaded.path.read_bytes()).hexdigest() == result.receipt["package_sha256"]


def test_plain_http_redirects_to_https(proxied):
    nginx, _certificates = proxied
    response = requests.get(
        f"http://127.0.0.1:{nginx.http_port}/api/v1/health", allow_redirects=False, timeout=10
    )
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://")


def test_a_big_json_body_is_refused_by_nginx(proxied):
    nginx, certificates = proxied
    response = requests.post(
        nginx.url + "/api/v1/auth/token",
        data=b"x" * (3 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
        verify=str(certificates["ca"]),
        timeout=30,
    )
    assert response.status_code == 413


def test_only_the_api_is_exposed(proxied):
    nginx, certificates = proxied
    response = requests.get(nginx.url + "/", verify=str(certificates["ca"]), timeout=10)
    assert response.status_code == 404
    ok = requests.get(nginx.url + "/api/v1/health", verify=str(certificates["ca"]), timeout=10)
    assert ok.status_code == 200


def test_the_systemd_unit_runs_the_server_command_line():
    import configparser
    import shlex

    from exchange_server.__main__ import build_parser
    from tests.integration.server_support import REPO

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(REPO / "exchange_server" / "deploy" / "huijiao-exchange.service", encoding="utf-8")
    service = unit["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[1:3] == ["-m", "exchange_server"]
    args = build_parser().parse_args(command[3:])  # every option is one the server knows
    assert (args.command, args.host, args.port) == ("serve", "127.0.0.1", 8765)
    assert args.db is None  # the database URL (with its password) comes from the environment file
    assert service["EnvironmentFile"] == "/etc/huijiao/exchange.env"
    assert service["UMask"] == "0077"
    assert "/var/lib/huijiao" in service["ReadWritePaths"]
    # the several-workers variant, commented out, runs the launcher that keeps the read time-outs
    text = (REPO / "exchange_server" / "deploy" / "huijiao-exchange.service").read_text(encoding="utf-8")
    workers = shlex.split(text.split("#WorkersExecStart=")[1].splitlines()[0])
    assert workers[1:3] == ["-m", "exchange_server.asgi"]
    assert workers[3:] == ["--workers", "4", "--host", "127.0.0.1", "--port", "8765"]
