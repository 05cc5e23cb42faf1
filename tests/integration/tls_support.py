"""TLS for tests: a certificate authority and a server certificate for 127.0.0.1 made with
cryptography's x509 builder, and the real exchange server served over TLS by uvicorn."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import sys
import time
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.server_support import REPO, Server


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path) -> dict[str, Path]:
    """``ca`` (the CA certificate, PEM), ``cert`` and ``key`` (the server's, for 127.0.0.1/localhost)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("huijiao test CA"))
        .issuer_name(_name("huijiao test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths["key"].chmod(0o600)
    return paths


# uvicorn with TLS around the server's own app (the same create_app that `serve` uses)
_TLS_SERVER = """
import socket, sys
from pathlib import Path
import uvicorn
from exchange_server.__main__ import GRACEFUL_SHUTDOWN_S, _config, build_parser
from exchange_server.app import create_app
from exchange_server.http_guard import guarded_protocol
from exchange_server.services import Exchange

data, cert, key, port_file = sys.argv[1:5]
args = build_parser().parse_args(["serve", "--data", data])
app = create_app(Exchange.open(_config(args)))
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(64)
Path(port_file).write_text(str(sock.getsockname()[1]))
config = uvicorn.Config(
    app, log_level="warning", ssl_certfile=cert, ssl_keyfile=key,
    http=guarded_protocol(args.header_timeout, args.body_idle_timeout),
    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
)
uvicorn.Server(config).run(sockets=[sock])
"""


class TlsServer(Server):
    """The real exchange server on https://127.0.0.1:<port> with the test certificate."""

    def __init__(self, data_dir: Path, certificates: dict[str, Path]) -> None:
        super().__init__(data_dir)
        self.certificates = certificates

    def start(self) -> None:
        port_file = self.data_dir.parent / "tls-port"
        log = (self.data_dir.parent / "tls-server.log").open("ab")
        cmd = [sys.executable, "-c", _TLS_SERVER, str(self.data_dir)]
        cmd += [str(self.certificates["cert"]), str(self.certificates["key"]), str(port_file)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data_dir.parent / "tls-server.log").read_text()[-3000:]
            if port_file.exists() and port_file.read_text():
                self.port = int(port_file.read_text())
                try:
                    requests.get(self.url + "/api/v1/health", timeout=2, verify=str(self.certificates["ca"]))
                    return
                except requests.ConnectionError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("TLS exchange server did not start")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"
