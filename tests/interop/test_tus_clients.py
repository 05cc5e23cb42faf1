"""Standard tus clients against the real server: tuspy (Python) and tus-js-client (node) upload a
package, are interrupted, resume from the server's offset and the upload is then committed; the
receipt's Ed25519 signature is checked here with the server's public key (cryptography, not the
plugin's code) and the server holds exactly the bytes that were sent."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

from tests.integration.server_support import DEMO_PASSWORD, demo_server_fixture, make_package

HERE = Path(__file__).resolve().parent
TUS_JS = HERE / "node_modules" / "tus-js-client"
CHUNK = 64 * 1024

server = demo_server_fixture("interop")


@pytest.fixture(scope="module")
def token(server) -> str:
    response = requests.post(
        server.url + "/api/v1/auth/token",
        json={"username": "demo_zrzy_submitter", "password": DEMO_PASSWORD},
        timeout=30,
    )
    assert response.status_code == 200
    return response.json()["access_token"]


def _package(tmp_path: Path) -> tuple[Path, str, dict]:
    path = make_package(tmp_path, attachment_kb=512)  # 8+ chunks of 64 KiB
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), manifest


def _commit_and_verify(server, token: str, upload_url: str, sha256: str, manifest: dict) -> None:
    upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
    response = requests.post(
        server.url + "/api/v1/submissions",
        json={"upload_id": upload_id, "package_sha256": sha256, "manifest": manifest},
        headers={"Authorization": "Bearer " + token},
        timeout=120,
    )
    assert response.status_code == 201, response.text
    envelope = response.json()
    receipt = envelope["receipt"]
    assert receipt["package_sha256"] == sha256
    assert receipt["status"] == "accepted", receipt["findings"]
    key = requests.get(server.url + "/api/v1/server-key", timeout=30).json()["public_key"]
    signed = json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # raises InvalidSignature when the receipt was not signed by the server's key
    Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(
        base64.b64decode(envelope["signature"]), signed
    )


class Sha256Uploader(Uploader):
    """tuspy with a sha256 Upload-Checksum (its default algorithm is sha1)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def _tuspy(server, token, tmp_path, uploader_class, checksum: bool) -> None:
    path, sha256, manifest = _package(tmp_path)
    size = path.stat().st_size
    tus = tus_client.TusClient(server.url + "/api/v1/uploads", headers={"Authorization": "Bearer " + token})
    storage = FileStorage(str(tmp_path / "tuspy-urls.json"))
    options = dict(
        file_path=str(path), chunk_size=CHUNK, metadata={"filename": path.name, "package_sha256": sha256},
        store_url=True, url_storage=storage, upload_checksum=checksum, retries=0,
    )  # fmt: skip
    first = uploader_class(client=tus, **options)
    first.upload(stop_at=3 * CHUNK)  # then the program "crashes": a new uploader resumes from the storage
    assert first.offset == 3 * CHUNK
    second = uploader_class(client=tus, **options)
    assert second.url == first.url
    assert second.offset == 3 * CHUNK  # asked from the server (HEAD)
    second.upload()
    assert second.offset == size
    _commit_and_verify(server, token, second.url, sha256, manifest)


def test_tuspy_without_checksum_resumes_and_commits(server, token, tmp_path):
    _tuspy(server, token, tmp_path, Uploader, checksum=False)


def test_tuspy_with_sha256_checksum_resumes_and_commits(server, token, tmp_path):
    _tuspy(server, token, tmp_path, Sha256Uploader, checksum=True)


def test_tuspy_with_its_default_sha1_checksum_resumes_and_commits(server, token, tmp_path):
    _tuspy(server, token, tmp_path, Uploader, checksum=True)


def _node(*args: str) -> dict:
    node = shutil.which("node")
    assert node, "node is required (Debian nodejs)"
    assert TUS_JS.exists(), "tus-js-client is required: make test installs it into tests/interop/node_modules"
    done = subprocess.run(
        [node, str(HERE / "tus_js_upload.mjs"), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tus_js_client_is_interrupted_resumes_and_commits(server, token, tmp_path):
    path, sha256, manifest = _package(tmp_path)
    endpoint = server.url + "/api/v1/uploads"
    first = _node(endpoint, token, str(path), sha256, str(3 * CHUNK))
    assert not first["done"]
    head = requests.head(
        server.url + first["url"] if first["url"].startswith("/") else first["url"],
        headers={"Authorization": "Bearer " + token, "Tus-Resumable": "1.0.0"},
        timeout=30,
    )
    assert head.status_code == 200
    offset = int(head.headers["Upload-Offset"])
    assert 3 * CHUNK <= offset < path.stat().st_size
    second = _node(endpoint, token, str(path), sha256, "0", first["url"])
    assert second["done"] and second["url"] == first["url"]
    _commit_and_verify(server, token, second["url"], sha256, manifest)
