"""nginx (the Debian package) started on loopback with the deployment's site file
(exchange_server/deploy/nginx-huijiao.conf): only its ports, certificate paths and upstream are
replaced; every other directive is the one shipped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

from tests.integration.server_support import REPO

SITE = REPO / "exchange_server" / "deploy" / "nginx-huijiao.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_for_test(upstream_port: int, https_port: int, http_port: int, cert: Path, key: Path) -> str:
    text = SITE.read_text(encoding="utf-8")
    replacements = {
        "server 127.0.0.1:8765;": f"server 127.0.0.1:{upstream_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "/etc/ssl/huijiao/fullchain.pem": str(cert),
        "/etc/ssl/huijiao/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"the deployment site file no longer has {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, root: Path, upstream_port: int, certificates: dict[str, Path]) -> None:
        self.root = root
        self.https_port = free_port()
        self.http_port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        site = root / "site.conf"
        site.write_text(
            site_for_test(
                upstream_port, self.https_port, self.http_port, certificates["cert"], certificates["key"]
            ),
            encoding="utf-8",
        )
        temp = "\n".join(
            f"  {kind}_temp_path {root / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (root / "nginx.conf").write_text(
            f"""user root;
worker_processes 1;
daemon off;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
{temp}
  include {site};
}}
""",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def start(self, ca: Path) -> None:
        conf = str(self.root / "nginx.conf")
        command = [NGINX, "-c", conf, "-p", str(self.root)]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "error.log").read_text()[-2000:]
            try:
                requests.get(self.url + "/api/v1/health", timeout=2, verify=str(ca))
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
