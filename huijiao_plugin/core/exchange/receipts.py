"""Signed receipts (回执): Ed25519 verification, the pinned server keys and the local receipt history.

The exchange server signs ``canonical_json(receipt)`` (keys sorted, no whitespace, UTF-8) with its
Ed25519 key. The client pins the server's public key on first contact (per server URL) and verifies
every receipt against the pinned key; a later key change is refused until the user removes the pin.
The history is an SQLite file in the profile directory; every stored receipt can be re-verified.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)


class ReceiptError(Exception):
    """A receipt or a server key cannot be trusted; ``str(e)`` is a user message."""


class KeyMismatchError(ReceiptError):
    """The server presents another public key than the one pinned on first contact."""


def canonical_json(obj: Any) -> bytes:
    """The signed form of a receipt (same rule as the server)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_fingerprint(public_key_b64: str) -> str:
    return "SHA256:" + hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()


def verify_signature(receipt: dict[str, Any], signature_b64: str, public_key_b64: str) -> bool:
    """True when ``signature_b64`` is a valid Ed25519 signature of ``receipt`` by ``public_key_b64``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), canonical_json(receipt))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def normalize_server_url(url: str) -> str:
    return (url or "").strip().rstrip("/").lower()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


class KeyPinStore:
    """Pinned server public keys (JSON file): ``{server_url: {public_key, fingerprint, pinned_at}}``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("pinned key file %s is unreadable", self.path)
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def get(self, server_url: str) -> str | None:
        entry = self._load().get(normalize_server_url(server_url))
        return entry.get("public_key") if entry else None

    def pin(self, server_url: str, public_key_b64: str) -> str:
        """Pin ``public_key_b64`` on first contact; afterwards it must be the same key."""
        with self._lock:
            data = self._load()
            key = normalize_server_url(server_url)
            entry = data.get(key)
            if entry is None:
                data[key] = {
                    "public_key": public_key_b64,
                    "fingerprint": key_fingerprint(public_key_b64),
                    "pinned_at": _now(),
                }
                self._save(data)
                log.info("Pinned receipt key %s for %s", data[key]["fingerprint"], key)
                return public_key_b64
            if entry.get("public_key") != public_key_b64:
                raise KeyMismatchError(
                    tr(
                        "The exchange server presents another signing key than the one recorded on first "
                        "contact ({pinned}). Receipts cannot be trusted: ask the server administrator "
                        "whether the key was changed, then remove the recorded key in the settings."
                    ).format(pinned=entry.get("fingerprint", "?"))
                )
            return public_key_b64

    def forget(self, server_url: str) -> None:
        with self._lock:
            data = self._load()
            data.pop(normalize_server_url(server_url), None)
            self._save(data)


@dataclass
class StoredReceipt:
    submission_id: str
    server_url: str
    received_at: str
    package_sha256: str
    status: str
    dataset_id: str
    region_code: str
    period: str
    reasons: list[str]
    receipt: dict[str, Any]
    signature: str
    public_key: str

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def receipt_status(receipt: dict[str, Any]) -> str:
    status = receipt.get("status")
    if isinstance(status, str) and status:
        return status
    accepted = receipt.get("accepted")
    if isinstance(accepted, bool):
        return "accepted" if accepted else "rejected"
    return "unknown"


def receipt_reasons(receipt: dict[str, Any]) -> list[str]:
    """The Chinese messages of every finding of a receipt (errors first)."""
    findings = receipt.get("findings") or receipt.get("reasons") or []
    out: list[tuple[int, str]] = []
    for item in findings:
        if isinstance(item, dict):
            severity = str(item.get("severity", ""))
            text = str(item.get("message_zh") or item.get("message") or item.get("code") or "")
            rank = 0 if severity == "error" else 1
            out.append(
                (rank, "[{}] {}".format(item.get("code", severity), text) if item.get("code") else text)
            )
        else:
            out.append((0, str(item)))
    return [text for _, text in sorted(out, key=lambda x: x[0])]


class ReceiptStore:
    """Local receipt history (SQLite in the profile directory)."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS receipts (
        submission_id TEXT NOT NULL,
        server_url TEXT NOT NULL,
        received_at TEXT NOT NULL,
        package_sha256 TEXT NOT NULL,
        status TEXT NOT NULL,
        dataset_id TEXT,
        region_code TEXT,
        period TEXT,
        reasons TEXT NOT NULL,
        receipt TEXT NOT NULL,
        signature TEXT NOT NULL,
        public_key TEXT NOT NULL,
        PRIMARY KEY (server_url, submission_id)
    )
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute(self.SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.path), timeout=10)

    def add(self, server_url: str, receipt: dict[str, Any], signature: str, public_key: str) -> StoredReceipt:
        """Store a (verified) receipt; the same submission is stored once."""
        stored = StoredReceipt(
            submission_id=str(receipt.get("submission_id", "")),
            server_url=normalize_server_url(server_url),
            received_at=_now(),
            package_sha256=str(receipt.get("package_sha256", "")),
            status=receipt_status(receipt),
            dataset_id=str(receipt.get("dataset_id", "")),
            region_code=str(receipt.get("region_code", "")),
            period=str(receipt.get("period", "")),
            reasons=receipt_reasons(receipt),
            receipt=receipt,
            signature=signature,
            public_key=public_key,
        )
        con = self._connect()
        try:
            with con:
                con.execute(
                    "INSERT OR IGNORE INTO receipts VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        stored.submission_id,
                        stored.server_url,
                        stored.received_at,
                        stored.package_sha256,
                        stored.status,
                        stored.dataset_id,
                        stored.region_code,
                        stored.period,
                        json.dumps(stored.reasons, ensure_ascii=False),
                        json.dumps(receipt, ensure_ascii=False, sort_keys=True),
                        signature,
                        public_key,
                    ),
                )
        finally:
            con.close()
        return self.get(server_url, stored.submission_id) or stored

    def _row(self, row: tuple[Any, ...]) -> StoredReceipt:
        return StoredReceipt(
            submission_id=row[0],
            server_url=row[1],
            received_at=row[2],
            package_sha256=row[3],
            status=row[4],
            dataset_id=row[5] or "",
            region_code=row[6] or "",
            period=row[7] or "",
            reasons=json.loads(row[8]),
            receipt=json.loads(row[9]),
            signature=row[10],
            public_key=row[11],
        )

    def get(self, server_url: str, submission_id: str) -> StoredReceipt | None:
        con = self._connect()
        try:
            row = con.execute(
                "SELECT * FROM receipts WHERE server_url = ? AND submission_id = ?",
                (normalize_server_url(server_url), submission_id),
            ).fetchone()
        finally:
            con.close()
        return self._row(row) if row else None

    def find_by_package(self, server_url: str, package_sha256: str) -> StoredReceipt | None:
        con = self._connect()
        try:
            row = con.execute(
                "SELECT * FROM receipts WHERE server_url = ? AND package_sha256 = ? "
                "ORDER BY received_at LIMIT 1",
                (normalize_server_url(server_url), package_sha256),
            ).fetchone()
        finally:
            con.close()
        return self._row(row) if row else None

    def all(self) -> list[StoredReceipt]:
        con = self._connect()
        try:
            rows = con.execute("SELECT * FROM receipts ORDER BY received_at DESC, submission_id").fetchall()
        finally:
            con.close()
        return [self._row(r) for r in rows]

    def verify(self, stored: StoredReceipt, pins: KeyPinStore | None = None) -> bool:
        """Re-verify a stored receipt: its signature, and (with ``pins``) that it was signed by the
        key pinned for its server."""
        if pins is not None:
            pinned = pins.get(stored.server_url)
            if pinned is not None and pinned != stored.public_key:
                return False
        return verify_signature(stored.receipt, stored.signature, stored.public_key)
