"""TLS and the pinned receipt key against the real server: over https (uvicorn with a certificate made
in the test) the client trusts the CA file of the settings or the QGIS authentication manager's CAs
and nothing else; over plain HTTP the key is not trusted on first use unless the 'unencrypted test
server' option is on; the key fingerprint from the settings, or the key pinned on first use, is
checked when the client connects, before anything is uploaded."""

from __future__ import annotations

import base64
import hashlib

import pytest
import requests

from huijiao_plugin.core.exchange.client import Credentials, ExchangeClient, ExchangeError
from huijiao_plugin.core.exchange.receipts import KeyMismatchError, KeyPinStore, ReceiptError
from tests.integration.server_support import DEMO_PASSWORD, demo_server_fixture, make_package
from tests.integration.tls_support import TlsServer, make_certificates

server = demo_server_fixture("pins")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    srv = TlsServer(root / "data", make_certificates(root / "certs"))
    srv.run_cli("demo-accounts", "--data", str(srv.data_dir), "--region", "610102")
    srv.run_cli(
        "admin", "--data", str(srv.data_dir), "set-release", "--dataset", "dltb_biangeng", "--year", "2025",
        "--date", "2025-03-01",
    )  # fmt: skip
    srv.start()
    yield srv
    srv.stop()


def _client(url: str, state_dir, **kwargs) -> ExchangeClient:
    options = {"proxies": {}, "backoff_base": 0.01, "chunk_size": 64 * 1024}
    options.update(kwargs)
    return ExchangeClient(
        url,
        Credentials(username="demo_zrzy_submitter", password=DEMO_PASSWORD),
        state_dir=state_dir,
        **options,
    )


def _fingerprint(url: str, **kwargs) -> str:
    """The server key's fingerprint computed here, from the raw key (not by the client)."""
    response = requests.get(url + "/api/v1/server-key", timeout=10, **kwargs)
    assert response.status_code == 200
    return "SHA256:" + hashlib.sha256(base64.b64decode(response.json()["public_key"])).hexdigest()


# ------------------------------------------------------------------------------------------------ https


def test_with_the_ca_file_the_server_is_verified_and_a_package_is_submitted(qgis_app, tls_server, tmp_path):
    ca = str(tls_server.certificates["ca"])
    client = _client(tls_server.url, tmp_path / "state", ca_file=ca)
    assert client._send("GET", "/health", auth=False).status_code == 200
    result = client.submit_package(make_package(tmp_path))
    assert result.accepted, result.reasons
    assert result.verified
    # first use over TLS pins the key the server really has
    assert client.pins.get(tls_server.url) is not None
    assert KeyPinStore(tmp_path / "state" / "server_keys.json")._load()[tls_server.url.lower()][
        "fingerprint"
    ] == _fingerprint(tls_server.url, verify=ca)


def test_without_the_ca_the_connection_fails_with_a_clear_message(qgis_app, tls_server, tmp_path):
    client = _client(tls_server.url, tmp_path / "state")
    with pytest.raises(ExchangeError) as caught:
        client.health()
    assert caught.value.code == "TLS_UNTRUSTED"
    assert client.retries == 0  # a certificate is not retried
    assert "not trusted" in str(caught.value) or "不受信任" in str(caught.value)
    assert tls_server.url in str(caught.value)


def test_the_qgis_authentication_manager_cas_are_trusted(qgis_app, tls_server, tmp_path):
    from qgis.core import QgsApplication
    from qgis.PyQt.QtNetwork import QSslCertificate

    manager = QgsApplication.authManager()
    [certificate] = QSslCertificate.fromData(tls_server.certificates["ca"].read_bytes())
    assert manager.storeCertAuthority(certificate)
    manager.rebuildCaCertsCache()
    manager.rebuildTrustedCaCertsCache()
    try:
        client = _client(tls_server.url, tmp_path / "state")
        assert client._send("GET", "/health", auth=False).status_code == 200
    finally:
        manager.removeCertAuthority(certificate)
        manager.rebuildCaCertsCache()
        manager.rebuildTrustedCaCertsCache()
    with pytest.raises(ExchangeError):  # removed again: no longer trusted
        _client(tls_server.url, tmp_path / "state2", max_retries=0).health()


def test_an_unreadable_ca_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ExchangeError) as caught:
        _client("https://127.0.0.1:9", tmp_path / "state", ca_file=str(tmp_path / "missing.pem"))
    assert caught.value.code == "CONFIG"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(ExchangeError) as caught:
        _client("https://127.0.0.1:9", tmp_path / "state", ca_file=str(not_pem))
    assert caught.value.code == "CONFIG"


# -------------------------------------------------------------------------------------- plain HTTP pins


def test_first_use_over_plain_http_is_refused_unless_the_test_server_option_is_on(qgis_app, server, tmp_path):
    package = make_package(tmp_path)
    client = _client(server.url, tmp_path / "state")
    with pytest.raises(ReceiptError) as caught:
        client.submit_package(package)
    assert not isinstance(caught.value, KeyMismatchError)
    assert _fingerprint(server.url) in str(caught.value)
    assert client.pins.get(server.url) is None
    assert client.uploads.pending() == []  # refused before any upload
    allowed = _client(server.url, tmp_path / "state", allow_unencrypted=True)
    assert allowed.submit_package(package).accepted


def test_the_fingerprint_from_the_settings_is_trusted_over_plain_http(qgis_app, server, tmp_path):
    client = _client(server.url, tmp_path / "state", pinned_fingerprint=_fingerprint(server.url))
    result = client.submit_package(make_package(tmp_path))
    assert result.accepted, result.reasons
    assert result.verified


def test_a_wrong_fingerprint_is_refused_before_the_upload(qgis_app, server, tmp_path):
    package = make_package(tmp_path)
    client = _client(server.url, tmp_path / "state", pinned_fingerprint="SHA256:" + "0" * 64)
    with pytest.raises(KeyMismatchError):
        client.submit_package(package)
    assert client.uploads.pending() == []
    checker = _client(server.url, tmp_path / "checker", allow_unencrypted=True)
    assert checker.find_submission(hashlib.sha256(package.read_bytes()).hexdigest()) is None


def test_a_key_changed_since_first_use_is_noticed_before_the_upload(qgis_app, server, tmp_path):
    package = make_package(tmp_path)
    other_key = base64.b64encode(bytes(range(32))).decode()
    KeyPinStore(tmp_path / "state" / "server_keys.json").pin(server.url, other_key)
    client = _client(server.url, tmp_path / "state", allow_unencrypted=True)
    with pytest.raises(KeyMismatchError):
        client.submit_package(package)
    assert client.uploads.pending() == []
    checker = _client(server.url, tmp_path / "checker", allow_unencrypted=True)
    assert checker.find_submission(hashlib.sha256(package.read_bytes()).hexdigest()) is None
