"""Public routes (no token): health, the receipt-signing key, the error table."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends

from exchange_server import __version__
from exchange_server.api.deps import exchange
from exchange_server.errors import ERRORS
from exchange_server.services import Exchange, iso

router = APIRouter()


@router.get("/health")
def health() -> dict:
    return {"status": "ok", "version": __version__, "server_time": iso(dt.datetime.now(dt.timezone.utc))}


@router.get("/server-key")
def server_key(ex: Exchange = Depends(exchange)) -> dict:
    return {
        "algorithm": "Ed25519",
        "public_key": ex.signer.public_b64,
        "encoding": "base64 of the 32-byte raw public key",
        "fingerprint": ex.signer.fingerprint,
        "canonicalisation": "JSON, keys sorted, separators (',', ':'), UTF-8, non-ASCII not escaped",
    }


@router.get("/errors")
def error_codes() -> dict:
    return {code: {"status": s, "message_zh": zh, "message": en} for code, (s, zh, en) in ERRORS.items()}
