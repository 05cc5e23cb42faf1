"""The protocol document stays in step with the server: every error and finding code and every API path."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from exchange_server.errors import ERRORS, FINDINGS
from tests.server.helpers import API

DOC = Path(__file__).resolve().parents[2] / "exchange_server" / "docs" / "exchange-protocol.md"


def test_every_code_documented_with_its_chinese_message():
    text = DOC.read_text(encoding="utf-8")
    for code, (status, zh, _en) in ERRORS.items():
        assert f"| `{code}` | {status} | {zh} |" in text, code
    for code, (severity, zh) in FINDINGS.items():
        assert f"| `{code}` | {severity} | {zh} |" in text, code


def test_every_served_path_documented(server):
    text = DOC.read_text(encoding="utf-8")
    paths = requests.get(server.url + API + "/openapi.json", timeout=10).json()["paths"]
    assert len(paths) > 20
    for path in paths:
        documented = re.sub(r"\{[a-z_]+\}", "<X>", path)
        pattern = re.escape(documented).replace("<X>", "<[a-z_]+>")
        assert re.search(pattern + r"(?![a-z/])", text) or path.endswith("/docs"), path
