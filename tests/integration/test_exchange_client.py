"""The exchange client against the real exchange server (``python -m exchange_server serve`` on 127.0.0.1).

Connection cuts are made by a small TCP relay on 127.0.0.1 (tests/integration/server_support.py) that closes
every connection after N bytes; the server itself is never mocked.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import uuid

import pytest
import requests
from qgis.core import QgsFeature, QgsGeometry, QgsRectangle, QgsVectorLayer

from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator
from huijiao_plugin.core.exchange.client import (
    Credentials,
    ExchangeClient,
    ExchangeError,
    TransferControl,
    TransferPausedError,
    proxies_from_qgis,
)
from huijiao_plugin.core.exchange.offline import ImportRegistry, import_package, open_package
from huijiao_plugin.core.exchange.receipts import KeyMismatchError, ReceiptError, ReceiptStore
from huijiao_plugin.core.package import LayerInput, build_package
from tests.integration.server_support import (
    CHUNK,
    DEMO_PASSWORD,
    PACKAGE_ARGS,
    REPO,
    CuttingRelay,
    client_for,
    demo_server_fixture,
    make_package,
)

server = demo_server_fixture("exchange")


@pytest.fixture()
def relay(server):
    r = CuttingRelay(server.port)
    yield r
    r.close()


# ------------------------------------------------------------------------------------------------ tests


def test_submit_with_connection_cut_is_resumed(qgis_app, server, relay, tmp_path):
    package = make_package(tmp_path)
    client = client_for(relay.url, "demo_zrzy_submitter", tmp_path / "state")
    client.pinned_key()  # first contact
    seen = []
    relay.arm_up(CHUNK + CHUNK // 2)  # in the middle of the second chunk
    result = client.submit_package(package, progress=lambda done, total: seen.append((done, total)))
    assert relay.cuts == 1
    assert result.retries >= 1
    assert result.accepted, result.reasons
    assert result.verified and not result.duplicate
    size = package.stat().st_size
    assert seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # the receipt is in the local history and re-verifies
    stored = client.receipts.get(relay.url, result.submission_id)
    assert stored is not None and stored.accepted
    assert client.reverify(stored)
    assert client.uploads.pending() == []
    # the other department sees the new version (shared dataset) in its feed
    reader = client_for(server.url, "demo_nync_reader", tmp_path / "nync")
    items = reader.poll_feed()
    assert any(i["submission_id"] == result.submission_id for i in items)
    assert "新的" in items[-1]["message_zh"]
    assert reader.poll_feed() == []  # the cursor is kept


def submit_and_pause(package, client, chunks=2):
    """Start submitting ``package`` and pause after ``chunks`` chunks, as when QGIS is closed mid-upload."""
    control = TransferControl()

    def pause(done, total):
        if done >= chunks * CHUNK:
            control.pause()

    with pytest.raises(TransferPausedError):
        client.submit_package(package, progress=pause, control=control)


def test_restart_mid_upload_resumes_from_disk_state(qgis_app, server, tmp_path):
    package = make_package(tmp_path)
    state = tmp_path / "profile"
    first = client_for(server.url, "demo_zrzy_submitter", state)
    submit_and_pause(package, first)
    [pending] = first.uploads.pending()
    assert pending["offset"] >= 2 * CHUNK
    del first  # QGIS closed

    second = client_for(server.url, "demo_zrzy_submitter", state)  # QGIS started again
    result = second.submit_package(package)
    assert result.accepted, result.reasons
    assert result.resumed_from >= 2 * CHUNK
    assert result.uploaded_bytes == package.stat().st_size - result.resumed_from
    assert second.uploads.pending() == []


def test_rejected_package_shows_server_reasons(qgis_app, server, tmp_path):
    package = make_package(tmp_path, layer_name="WRONG_NAME", attachment_kb=8)
    client = client_for(server.url, "demo_zrzy_submitter", tmp_path / "state")
    result = client.submit_package(package)
    assert not result.accepted
    assert result.receipt["status"] == "rejected"
    assert result.verified
    assert any("LAYER_NAME_UNKNOWN" in r and "图层名称" in r for r in result.reasons)
    stored = client.receipts.get(server.url, result.submission_id)
    assert stored.status == "rejected"
    assert any("LAYER_NAME_UNKNOWN" in r for r in stored.reasons)


def test_forbidden_department_gives_a_chinese_message(qgis_app, server, tmp_path):
    package = make_package(tmp_path, attachment_kb=8)
    client = client_for(server.url, "demo_nync_submitter", tmp_path / "state")
    with pytest.raises(ExchangeError) as error:
        client.submit_package(package)
    assert error.value.code == "FORBIDDEN_DEPARTMENT"
    assert "本部门无权提交" in str(error.value)


def test_duplicate_submit_answers_with_first_receipt(qgis_app, server, tmp_path):
    package = make_package(tmp_path, attachment_kb=8)
    client = client_for(server.url, "demo_zrzy_submitter", tmp_path / "state")
    first = client.submit_package(package)
    assert first.accepted and not first.duplicate
    again = client_for(server.url, "demo_zrzy_submitter", tmp_path / "other-machine").submit_package(package)
    assert again.duplicate
    assert again.submission_id == first.submission_id
    assert again.receipt == first.receipt
    assert again.signature == first.signature


def test_tampered_receipt_is_detected(qgis_app, server, tmp_path):
    package = make_package(tmp_path, attachment_kb=8)
    client = client_for(server.url, "demo_zrzy_submitter", tmp_path / "state")
    result = client.submit_package(package)
    envelope = {"receipt": dict(result.receipt), "signature": result.signature}
    assert client.verify_envelope(envelope)
    with pytest.raises(ReceiptError):  # signed, but naming another key than the pinned one
        client.verify_envelope({**envelope, "key_fingerprint": "SHA256:" + "0" * 64})
    with pytest.raises(ReceiptError):  # a genuine receipt presented for another package
        client.verify_envelope(envelope, "f" * 64)
    envelope["receipt"]["status"] = "accepted" if result.receipt["status"] == "rejected" else "rejected"
    with pytest.raises(ReceiptError):
        client.verify_envelope(envelope)
    # a receipt edited inside the local history no longer verifies
    con = sqlite3.connect(tmp_path / "state" / "receipts.sqlite")
    with con:
        receipt = json.loads(con.execute("SELECT receipt FROM receipts").fetchone()[0])
        receipt["package_sha256"] = "0" * 64
        con.execute("UPDATE receipts SET receipt = ?", (json.dumps(receipt),))
    con.close()
    store = ReceiptStore(tmp_path / "state" / "receipts.sqlite")
    [stored] = store.all()
    assert not store.verify(stored, client.pins)


def test_changed_server_key_is_refused(qgis_app, server, tmp_path):
    client = client_for(server.url, "demo_zrzy_submitter", tmp_path / "state")
    key = client.server_key()
    assert client.pins.get(server.url) == key
    other = "A" * 43 + "="
    client.pins.forget(server.url)
    client.pins.pin(server.url, other)
    with pytest.raises(KeyMismatchError):
        client.server_key()


def test_offline_package_registered_with_server(qgis_app, server, tmp_path):
    package = make_package(tmp_path, attachment_kb=8)
    client = client_for(server.url, "demo_zrzy_submitter", tmp_path / "state")
    result = client.register_offline(package)
    assert result.receipt["offline"] is True
    assert result.accepted
    assert any("OFFLINE_REGISTERED" in r for r in result.reasons)
    assert client.register_offline(package).submission_id == result.submission_id


def test_download_resumed_after_cut_and_pause(qgis_app, server, relay, tmp_path):
    package = make_package(tmp_path, attachment_kb=512)
    submitted = client_for(server.url, "demo_zrzy_submitter", tmp_path / "zrzy").submit_package(package)
    assert submitted.accepted
    reader = client_for(relay.url, "demo_nync_reader", tmp_path / "nync")
    [version] = [
        v
        for v in reader.versions(dataset_id="dltb_biangeng")
        if v["submission_id"] == submitted.submission_id
    ]
    relay.arm_down(200 * 1024)
    result = reader.download(version)
    assert relay.cuts == 1
    assert reader.retries >= 1
    assert result.sha256 == submitted.receipt["package_sha256"]
    assert result.path.read_bytes() == package.read_bytes()
    assert reader.download(version).from_cache

    # paused half-way (QGIS closed), then resumed by a new client with Range
    other = client_for(server.url, "demo_nync_reader", tmp_path / "nync2")
    control = TransferControl()

    def pause_half(done, total):
        if done >= total // 2:
            control.pause()

    with pytest.raises(TransferPausedError):
        other.download(version, progress=pause_half, control=control)
    partial = other.cached_path(version["package_sha256"]).with_suffix(".zip.part")
    partial_size = partial.stat().st_size
    assert 0 < partial_size < version["size"]
    again = client_for(server.url, "demo_nync_reader", tmp_path / "nync2").download(version)
    assert again.resumed_from == partial_size
    assert not partial.exists()
    assert not again.from_cache
    assert again.path.read_bytes() == package.read_bytes()


def test_deadlines_show_what_the_unit_owes(qgis_app, server, tmp_path):
    client = client_for(server.url, "demo_zrzy_submitter", tmp_path / "state")
    body = client.deadlines(2025, as_of="2025-12-31")
    items = [i for i in body["items"] if i["dataset_id"] == "dltb_biangeng" and i["department"] == "zrzy"]
    assert items and items[0]["due_date"] == "2025-03-31"
    assert items[0]["status"] in ("met", "late")  # submitted during this test run


def test_unreachable_server_message(qgis_app, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ExchangeClient(
        f"http://127.0.0.1:{port}", Credentials(token="x"), state_dir=tmp_path, proxies={}, max_retries=1,
        backoff_base=0.01,
    )  # fmt: skip
    with pytest.raises(ExchangeError) as error:
        client.health()
    assert error.value.code == "NETWORK"
    assert f"127.0.0.1:{port}" in str(error.value)


def test_proxy_taken_from_qgis(qgis_app):
    from qgis.core import QgsNetworkAccessManager
    from qgis.PyQt.QtNetwork import QNetworkProxy

    nam = QgsNetworkAccessManager.instance()
    old = nam.fallbackProxy()
    try:
        nam.setFallbackProxyAndExcludes(
            QNetworkProxy(QNetworkProxy.ProxyType.HttpProxy, "proxy.example", 3128, "u", "p w"),
            ["localhost"],
            [],
        )
        assert proxies_from_qgis() == {
            "http": "http://u:p%20w@proxy.example:3128",
            "https": "http://u:p%20w@proxy.example:3128",
            "no_proxy": "localhost",
        }
        nam.setFallbackProxyAndExcludes(QNetworkProxy(QNetworkProxy.ProxyType.NoProxy), [], [])
        assert proxies_from_qgis() == {}
    finally:
        nam.setFallbackProxyAndExcludes(old, [], [])


AUTH_SCRIPT = r"""
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from qgis.core import QgsApplication, QgsAuthMethodConfig
app = QgsApplication([], False, sys.argv[1])  # a profile folder of its own: the test auth database
app.initQgis()
from huijiao_plugin.core.exchange.client import ExchangeError, credentials_from_authcfg
manager = QgsApplication.authManager()
assert manager.setMasterPassword("master-for-test", True)
out = {}
for name, method, config in [
    ("basic", "Basic", {"username": "demo_zrzy_submitter", "password": "s3cret"}),
    ("token", "Basic", {"username": "", "password": "hj_token"}),
    ("esri", "EsriToken", {"token": "hj_esri"}),
]:
    cfg = QgsAuthMethodConfig()
    cfg.setName(name)
    cfg.setMethod(method)
    for key, value in config.items():
        cfg.setConfig(key, value)
    assert manager.storeAuthenticationConfig(cfg)[0]
    c = credentials_from_authcfg(cfg.id())
    out[name] = [c.username, c.password, c.token, repr(c)]
for bad in ("", "nosuch1"):
    try:
        credentials_from_authcfg(bad)
    except ExchangeError as error:
        out["error_" + (bad or "empty")] = error.code
print(json.dumps(out))
"""


def isolated_qgis_env(profile):
    """The environment of a child QGIS of its own: no QGIS_* variable of this session (pytest-qgis sets
    QGIS_CUSTOM_CONFIG_PATH), and its auth database in ``profile``. Otherwise the child may open the session's
    auth database, whose master password another test may have set, and fail only in a full run."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QGIS_")}
    profile.mkdir(parents=True, exist_ok=True)
    return dict(env, PYTHONPATH=str(REPO), QGIS_AUTH_DB_DIR_PATH=str(profile))


def test_credentials_from_qgis_auth_manager(tmp_path):
    script = tmp_path / "auth_check.py"
    script.write_text(AUTH_SCRIPT, encoding="utf-8")
    env = isolated_qgis_env(tmp_path / "profile")
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "profile")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["basic"][:3] == ["demo_zrzy_submitter", "s3cret", ""]
    assert "s3cret" not in out["basic"][3]  # never shown in a repr or a log line
    assert out["token"][:3] == ["", "", "hj_token"]
    assert "hj_token" not in out["token"][3]
    assert out["esri"][2] == "hj_esri"
    assert out["error_empty"] == "AUTH_REQUIRED"
    assert out["error_nosuch1"] == "AUTH_REQUIRED"


SCRIPTED_SUBMIT = r"""
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.append("/usr/share/qgis/python/plugins")
from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsVectorLayer
app = QgsApplication([], False, sys.argv[1])
app.initQgis()
from qgis.core import QgsSettings
QgsSettings().setValue("huijiao/server/allow_unencrypted", True)  # the test server is plain HTTP
from processing.core.Processing import Processing
import processing
from huijiao_plugin.processing.provider import HuijiaoProvider
Processing.initialize()
provider = HuijiaoProvider()  # keep a reference: the registry does not own the Python object
assert QgsApplication.processingRegistry().addProvider(provider)
manager = QgsApplication.authManager()
assert manager.setMasterPassword("master-for-test", True)
cfg = QgsAuthMethodConfig()
cfg.setName("exchange")
cfg.setMethod("Basic")
cfg.setConfig("username", "demo_zrzy_submitter")
cfg.setConfig("password", sys.argv[3])
assert manager.storeAuthenticationConfig(cfg)[0]
params = {"INPUT": sys.argv[4], "SERVER_URL": sys.argv[2], "AUTHCFG": cfg.id(), "STATE_DIR": sys.argv[5]}
first = processing.run("huijiao:submitpackage", params)
again = processing.run("huijiao:submitpackage", params)
print(json.dumps({"first": first, "again": again}))
"""


def test_submit_algorithm_scripted(qgis_app, server, tmp_path):
    package = make_package(tmp_path, attachment_kb=64)
    script = tmp_path / "submit.py"
    script.write_text(SCRIPTED_SUBMIT, encoding="utf-8")
    args = [str(tmp_path / "profile"), server.url, DEMO_PASSWORD, str(package), str(tmp_path / "state")]
    run = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=isolated_qgis_env(tmp_path / "profile"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["first"]["STATUS"] == "accepted"
    assert out["first"]["VERIFIED"] is True
    assert out["first"]["DUPLICATE"] is False
    assert out["again"]["DUPLICATE"] is True
    assert out["again"]["SUBMISSION_ID"] == out["first"]["SUBMISSION_ID"]
    assert DEMO_PASSWORD not in run.stdout + run.stderr
    history = ReceiptStore(tmp_path / "state" / "receipts.sqlite").all()
    assert [r.submission_id for r in history] == [out["first"]["SUBMISSION_ID"]]


def test_change_patches_submitted_and_shared(qgis_app, server, tmp_path):
    from huijiao_plugin.core.preflight import run_preflight

    layer = QgsVectorLayer(
        "Polygon?crs=EPSG:4545&field=uuid:string&field=number:string&field=patch_type:string"
        "&field=county_code:string&field=area_m2:double&field=status:string",
        "变化图斑",
        "memory",
    )
    calculator = EllipsoidalAreaCalculator(layer.crs())
    feats = []
    for i in range(3):
        geometry = QgsGeometry.fromRect(QgsRectangle(580000 + 200 * i, 3800000, 580100 + 200 * i, 3800100))
        f = QgsFeature(layer.fields())
        f.setAttributes(
            [str(uuid.uuid4()), f"BG{i:03d}", "nonagri", "610102", calculator.area(geometry), "verified"]
        )
        f.setGeometry(geometry)
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    report = run_preflight([("BGHTB", layer)], "bghtb", "610102")
    assert report.ok, [f.message for f in report.findings]
    package = build_package(
        tmp_path / "bghtb.zip",
        [LayerInput(layer, "BGHTB")],
        **dict(PACKAGE_ARGS, dataset_id="bghtb", period="2025Q3"),
        validation=report.to_validation(),
        sources=[{"dataset_id": "dltb_biangeng", "version": "1"}, {"dataset_id": "gbznt", "version": "1"}],
    ).path
    result = client_for(server.url, "demo_zrzy_submitter", tmp_path / "zrzy").submit_package(package)
    assert result.accepted, result.reasons
    reader = client_for(server.url, "demo_nync_reader", tmp_path / "nync")
    [version] = [v for v in reader.versions(dataset_id="bghtb") if v["submission_id"] == result.submission_id]
    downloaded = reader.download(version)
    imported = import_package(downloaded.path, tmp_path / "imported", ImportRegistry(tmp_path / "reg.json"))
    [(name, uri)] = imported.layer_uris
    assert name == "BGHTB"
    assert QgsVectorLayer(uri, name, "ogr").featureCount() == 3
    assert imported.manifest["sources"][1]["dataset_id"] == "gbznt"
    # shared data is opened (verified, extracted once) without the offline double-import guard
    opened = open_package(downloaded.path, tmp_path / "shared")
    again = open_package(downloaded.path, tmp_path / "shared")
    assert opened.directory == again.directory and (opened.directory / ".complete").exists()
    assert QgsVectorLayer(again.layer_uris[0][1], "x", "ogr").featureCount() == 3


def test_cancel_terminates_the_upload(qgis_app, server, tmp_path):
    from huijiao_plugin.core.exchange.client import TransferCanceledError

    package = make_package(tmp_path, attachment_kb=128)
    client = client_for(server.url, "demo_zrzy_submitter", tmp_path / "state")
    control = TransferControl()
    urls = []

    def cancel_after_first_chunk(done, total):
        if done >= CHUNK:
            urls.extend(s["upload_url"] for s in client.uploads.pending())
            control.cancel()

    with pytest.raises(TransferCanceledError):
        client.submit_package(package, progress=cancel_after_first_chunk, control=control)
    assert client.uploads.pending() == []
    [url] = set(urls)
    token = client._token
    gone = requests.head(
        server.url + url, headers={"Tus-Resumable": "1.0.0", "Authorization": "Bearer " + token}
    )
    assert gone.status_code == 404


# -------------------------------------------------------------------------- checksums of the upload
def _patch_requests(sent: bytes) -> list[bytes]:
    """The header blocks of the PATCH requests in the recorded client → server bytes."""
    heads = []
    start = sent.find(b"PATCH ")
    while start >= 0:
        heads.append(sent[start : sent.index(b"\r\n\r\n", start)])
        start = sent.find(b"PATCH ", start + 1)
    return heads


def test_prefix_checksum_used_when_the_server_offers_it_and_after_a_restart(qgis_app, server, tmp_path):
    package = make_package(tmp_path)
    state = tmp_path / "profile"
    relay = CuttingRelay(server.port, record=True)
    try:
        first = client_for(relay.url, "demo_zrzy_submitter", state)
        assert "checksum-prefix" in first.tus_extensions()
        submit_and_pause(package, first)
        del first  # QGIS closed: the running hash is gone with the process
        second = client_for(relay.url, "demo_zrzy_submitter", state)
        result = second.submit_package(package)
        assert result.accepted, result.reasons
        assert result.resumed_from >= 2 * CHUNK
    finally:
        relay.close()
    heads = _patch_requests(bytes(relay.sent))
    assert len(heads) >= package.stat().st_size // CHUNK
    assert all(b"\r\nUpload-Prefix-Checksum: sha256 " in h for h in heads)
    assert not any(b"\r\nUpload-Checksum:" in h for h in heads)


def test_standard_chunk_checksum_when_options_is_refused(qgis_app, server, tmp_path):
    package = make_package(tmp_path)
    relay = CuttingRelay(server.port, record=True, refuse_options=True)
    try:
        client = client_for(relay.url, "demo_zrzy_submitter", tmp_path / "state")
        assert client.tus_extensions() == set()
        result = client.submit_package(package)
        assert result.accepted, result.reasons
    finally:
        relay.close()
    heads = _patch_requests(bytes(relay.sent))
    assert len(heads) >= package.stat().st_size // CHUNK
    assert all(b"\r\nUpload-Checksum: sha256 " in h for h in heads)
    assert not any(b"Upload-Prefix-Checksum" in h for h in heads)


def test_upload_damaged_on_the_server_disk_starts_again(qgis_app, tmp_path):
    from tests.integration.server_support import demo_server

    srv = demo_server(tmp_path / "srv")
    relay = CuttingRelay(srv.port)
    try:
        package = make_package(tmp_path)
        state = tmp_path / "profile"
        first = client_for(relay.url, "demo_zrzy_submitter", state)
        submit_and_pause(package, first)
        [pending] = first.uploads.pending()
        old_url = pending["upload_url"]
        srv.stop()
        # one stored byte flips on the server's disk while it is down
        part = srv.data_dir / "uploads" / (old_url.rsplit("/", 1)[1] + ".part")
        data = bytearray(part.read_bytes())
        data[100] ^= 0x01
        part.write_bytes(bytes(data))
        srv.start()  # rebuilds its running hash from the damaged bytes: every prefix checksum fails
        relay.upstream_port = srv.port
        second = client_for(relay.url, "demo_zrzy_submitter", state)
        result = second.submit_package(package)
        assert result.accepted, result.reasons
        assert result.resumed_from == 0  # started again: the damaged upload was not committed
        assert result.retries >= 1
        assert not part.exists()  # the damaged upload was terminated on the server
    finally:
        relay.close()
        srv.stop()
