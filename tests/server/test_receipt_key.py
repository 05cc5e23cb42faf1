"""The server's receipt key when several workers start on a fresh data folder at the same moment: one key,
the one in the file, used by all of them; the key file is never half written and stays private."""

from __future__ import annotations

import base64
import threading

from cryptography.hazmat.primitives import serialization

from exchange_server.security import ReceiptSigner, verify_receipt


def test_workers_starting_together_share_one_key(tmp_path):
    keys = tmp_path / "keys"
    start = threading.Barrier(8)
    signers: list[ReceiptSigner] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            signers.append(ReceiptSigner(keys))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(signers) == 8
    # independent of the signer: the public key of the PEM file, read with the cryptography library
    key = serialization.load_pem_private_key((keys / "receipt_ed25519.pem").read_bytes(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    on_file = base64.b64encode(public).decode()
    assert {s.public_b64 for s in signers} == {on_file}
    assert (keys / "receipt_ed25519.pub").read_text(encoding="ascii") == on_file + "\n"
    receipt = {"submission": "s-1", "sha256": "0" * 64}
    assert all(verify_receipt(receipt, s.sign(receipt), on_file) for s in signers)
    assert (keys / "receipt_ed25519.pem").stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in keys.iterdir()) == ["receipt_ed25519.pem", "receipt_ed25519.pub"]


def test_a_later_start_keeps_the_key(tmp_path):
    first = ReceiptSigner(tmp_path / "keys")
    again = ReceiptSigner(tmp_path / "keys")
    assert again.public_b64 == first.public_b64
