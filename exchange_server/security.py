"""Passwords (salted scrypt), bearer tokens (random, stored as SHA-256) and the Ed25519 receipt key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from exchange_server import platform

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
TOKEN_PREFIX = "hj_"


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    salt_b64 = base64.b64encode(salt).decode()
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt_b64}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt_b64),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def canonical_json(obj: object) -> bytes:
    """The signed form: keys sorted, no whitespace, UTF-8 (non-ASCII kept). Receipts hold no floats."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class ReceiptSigner:
    """The server's Ed25519 key, generated on first start in DATA/keys (private key PEM, mode 0600)."""

    def __init__(self, keys_dir: Path) -> None:
        keys_dir.mkdir(parents=True, exist_ok=True)
        path = keys_dir / "receipt_ed25519.pem"
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _create_once(path, pem)
        # the file's key, not the one made here: workers starting together sign with the same key
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        self._key = key
        self.public_raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_b64 = base64.b64encode(self.public_raw).decode()
        self.fingerprint = fingerprint(self.public_raw)
        pub = keys_dir / "receipt_ed25519.pub"
        if not pub.exists() or pub.read_text(encoding="ascii").strip() != self.public_b64:
            _create_once(pub, (self.public_b64 + "\n").encode("ascii"), replace=True, mode=0o644)

    def sign(self, receipt: dict) -> str:
        return base64.b64encode(self._key.sign(canonical_json(receipt))).decode()


def _create_once(path: Path, data: bytes, replace: bool = False, mode: int = 0o600) -> bool:
    """Write ``data`` to ``path`` whole (``mode``): a private temporary file, written and synced, is linked
    into place. A link never replaces a file, so of several processes creating ``path`` at the same moment
    exactly one succeeds and the others read its file (False); ``replace``: overwrite instead. Where the
    filesystem has no hard links the file is moved into place (the last writer wins)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = platform.open_fd(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here (e.g. FAT, some network shares)
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def fingerprint(public_raw: bytes) -> str:
    return "SHA256:" + hashlib.sha256(public_raw).hexdigest()


def verify_receipt(receipt: dict, signature_b64: str, public_key_b64: str) -> bool:
    """Offline verification, as a client does it: Ed25519 over canonical_json(receipt)."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        key.verify(base64.b64decode(signature_b64), canonical_json(receipt))
    except Exception:  # noqa: BLE001 - any failure means "not valid"
        return False
    return True
