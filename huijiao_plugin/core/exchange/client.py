"""Client of the exchange server (``/api/v1``, see exchange_server/docs/exchange-protocol.md).

* GUI-free: runs in a QgsTask, in Processing and in ``qgis_process``.
* Transport (auth, TLS, retries): :mod:`.transport`; tus upload: :mod:`.upload`; receipts: :mod:`.receipts`.
* Here: submission (every receipt verified and kept in the local history), shared data (versions,
  download with HTTP Range resume, hash check and cache), the feed of new data and the deadlines.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from huijiao_plugin.core.exchange.receipts import StoredReceipt, normalize_server_url, receipt_reasons
from huijiao_plugin.core.exchange.transport import (
    Credentials,
    ExchangeError,
    _network_error,
    credentials_from_authcfg,
    error_from_response,
    proxies_from_qgis,
)
from huijiao_plugin.core.exchange.upload import (
    ProgressCallback,
    TransferCanceledError,
    TransferControl,
    TransferPausedError,
    TusUploader,
    UploadStateStore,
)
from huijiao_plugin.core.exchange.verify import verify_package
from huijiao_plugin.core.package import HASH_CHUNK, PackageError, sha256_file
from huijiao_plugin.toolbelt.i18n import tr


@dataclass
class SubmitResult:
    receipt: dict[str, Any]
    signature: str
    verified: bool
    duplicate: bool
    stored: StoredReceipt | None = None
    resumed_from: int = 0
    uploaded_bytes: int = 0
    retries: int = 0

    @property
    def accepted(self) -> bool:
        return self.receipt.get("status") == "accepted"

    @property
    def submission_id(self) -> str:
        return str(self.receipt.get("submission_id", ""))

    @property
    def reasons(self) -> list[str]:
        return receipt_reasons(self.receipt)


@dataclass
class DownloadResult:
    path: Path
    sha256: str
    from_cache: bool
    resumed_from: int = 0


class ExchangeClient(TusUploader):
    """One server, one account. Thread-safe for one transfer at a time."""

    @classmethod
    def from_settings(
        cls, settings: Any = None, state_dir: str | os.PathLike[str] | None = None
    ) -> ExchangeClient:
        """A client for the server, account (auth manager) and proxy configured in QGIS."""
        from huijiao_plugin.core.settings import HuijiaoSettings

        settings = settings or HuijiaoSettings.load()
        return cls(
            settings.server_url,
            credentials_from_authcfg(settings.authcfg),
            state_dir=state_dir,
            proxies=proxies_from_qgis(),
            ca_file=settings.ca_file,
            pinned_fingerprint=settings.server_key_fingerprint,
            allow_unencrypted=settings.allow_unencrypted,
        )

    # ----------------------------------------------------------------------------------- submission
    def find_submission(self, sha256: str) -> dict[str, Any] | None:
        """The existing submission of a package (same sha256) visible to this account, if any."""
        try:
            items = self.get_json("/submissions", package_sha256=sha256).get("items", [])
        except ExchangeError as error:
            if error.code == "FORBIDDEN_ROLE":
                return None
            raise
        return items[0] if items else None

    def _receipt_of(self, submission_id: str) -> dict[str, Any]:
        return self.get_json(f"/submissions/{submission_id}/receipt")

    def submit_package(
        self,
        path: str | os.PathLike[str],
        progress: ProgressCallback | None = None,
        control: TransferControl | None = None,
    ) -> SubmitResult:
        """Submit an exchange package: check it locally, pin the server key, answer a package that was
        already submitted with its first receipt, else upload (resumable) and commit. The verified
        receipt is stored in the local history."""
        path = Path(path)
        try:
            verified = verify_package(path)
        except PackageError as error:
            raise ExchangeError(str(error), "PACKAGE") from error
        self.retries = 0
        self.server_key()  # the live key, checked before anything is sent
        existing = self.find_submission(verified.sha256)
        if existing is not None:
            envelope = self._receipt_of(existing["submission_id"])
            self.verify_envelope(envelope, verified.sha256)
            self.uploads.delete(verified.sha256)
            stored = self._store(envelope)
            return SubmitResult(envelope["receipt"], envelope["signature"], True, True, stored)
        dataset_id = str(verified.manifest.get("dataset_id", ""))
        upload_url, resumed_from = self.upload(path, verified.sha256, progress, control, dataset_id)
        response = self._send(
            "POST",
            "/submissions",
            json={
                "upload_id": upload_url.rstrip("/").rsplit("/", 1)[-1],
                "package_sha256": verified.sha256,
                "manifest": verified.manifest,
            },
        )
        envelope = response.json()
        self.verify_envelope(envelope, verified.sha256)
        self.uploads.delete(verified.sha256)
        stored = self._store(envelope)
        duplicate = response.headers.get("X-Duplicate", "False").lower() == "true"
        return SubmitResult(
            envelope["receipt"],
            envelope["signature"],
            True,
            duplicate,
            stored,
            resumed_from,
            verified.size - resumed_from,
            self.retries,
        )

    def register_offline(self, path: str | os.PathLike[str]) -> SubmitResult:
        """Register a package exchanged offline (on a disk) so that the evaluation counts it."""
        try:
            verified = verify_package(path)
        except PackageError as error:
            raise ExchangeError(str(error), "PACKAGE") from error
        self.server_key()  # the live key, checked before anything is sent
        response = self._send(
            "POST",
            "/submissions/offline",
            json={
                "package_sha256": verified.sha256,
                "package_size": verified.size,
                "manifest": verified.manifest,
                "offline": True,
            },
        )
        envelope = response.json()
        self.verify_envelope(envelope, verified.sha256)
        stored = self._store(envelope)
        duplicate = response.headers.get("X-Duplicate", "False").lower() == "true"
        return SubmitResult(envelope["receipt"], envelope["signature"], True, duplicate, stored)

    # ------------------------------------------------------------------------------------ shared data
    def versions(
        self, dataset_id: str | None = None, region: str | None = None, latest: bool = True
    ) -> list[dict[str, Any]]:
        """Versions visible to this account (``latest``: the newest per dataset, region and period)."""
        return self.get_json(
            "/versions", dataset_id=dataset_id, region=region, latest="true" if latest else None
        ).get("items", [])

    def cached_path(self, sha256: str) -> Path:
        return self.cache_dir / f"{sha256}.zip"

    def download(
        self,
        version: dict[str, Any],
        progress: ProgressCallback | None = None,
        control: TransferControl | None = None,
    ) -> DownloadResult:
        """Download a version's package into the cache, resuming a partial file with HTTP Range, and
        check its sha256. A package already in the cache is not downloaded again."""
        sha256 = str(version["package_sha256"]).lower()
        size = int(version.get("size") or 0)
        target = self.cached_path(sha256)
        if target.exists() and sha256_file(target) == sha256:
            return DownloadResult(target, sha256, True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        part = target.with_suffix(".zip.part")
        control = control or TransferControl()
        url = version.get("download_url") or "/versions/{}/download".format(version["version_id"])
        etag = f'"{sha256}"'
        resumed_from = part.stat().st_size if part.exists() else 0
        failures = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            if size and have >= size:
                break
            headers = {"Range": f"bytes={have}-", "If-Range": etag} if have else {}
            try:
                with self.session.get(
                    self.url(url), headers=self._headers(headers, True), stream=True, timeout=self.timeout
                ) as response:
                    if response.status_code >= 400:
                        failure = error_from_response(response)
                        if failure.code == "RANGE_NOT_SATISFIABLE":
                            part.unlink(missing_ok=True)
                            failure.retryable = True
                        raise failure
                    mode = "ab" if response.status_code == 206 else "wb"
                    if mode == "wb":
                        have = 0
                    total = size or int(response.headers.get("Content-Length", "0")) + have
                    with open(part, mode) as out:
                        for block in response.iter_content(HASH_CHUNK // 4):
                            if control.canceled:
                                raise TransferCanceledError(tr("The download was canceled."), "CANCELED")
                            if control.paused:
                                raise TransferPausedError(tr("The download is paused."), "PAUSED")
                            out.write(block)
                            have += len(block)
                            if progress is not None:
                                progress(have, total)
                    if not size:
                        size = have
                if have < size:  # the connection ended early without an error: resume with Range
                    if failures >= self.max_retries:
                        raise _network_error(self.server_url, ConnectionError("short read"))
                    failures += 1
                    self.retries += 1
                    control.wait(self._backoff(failures - 1))
                else:
                    failures = 0
            except requests.exceptions.RequestException as error:
                failure = _network_error(self.server_url, error)
                if failures >= self.max_retries:
                    raise failure from error
                delay = self._backoff(failures)
                failures += 1
                self.retries += 1
                control.wait(delay)
                continue
            except ExchangeError as failure:
                if isinstance(failure, (TransferCanceledError, TransferPausedError)) or not failure.retryable:
                    if isinstance(failure, TransferCanceledError):
                        part.unlink(missing_ok=True)
                    raise
                if failures >= self.max_retries:
                    raise
                failures += 1
                self.retries += 1
                control.wait(self._retry_delay(failures, failure))
                continue
        digest = sha256_file(part)
        if digest != sha256:
            part.unlink(missing_ok=True)
            raise ExchangeError(
                tr("The downloaded package is damaged (sha256 does not match); download it again."), "HASH"
            )
        os.replace(part, target)
        return DownloadResult(target, sha256, False, resumed_from)

    # --------------------------------------------------------------------------------- feed, deadlines
    def _cursor_path(self) -> Path:
        key = hashlib.sha256(
            (normalize_server_url(self.server_url) + "|" + (self.credentials.username or "")).encode()
        ).hexdigest()[:16]
        return self.state_dir / f"feed_cursor_{key}.json"

    def poll_feed(self, wait: float = 0.0) -> list[dict[str, Any]]:
        """New versions since the last poll (the cursor is kept on disk). ``wait``: long-poll seconds."""
        path = self._cursor_path()
        cursor = 0
        if path.exists():
            try:
                cursor = int(json.loads(path.read_text(encoding="utf-8")).get("cursor", 0))
            except (OSError, ValueError, TypeError):
                cursor = 0
        timeout = (self.timeout[0], max(self.timeout[1], wait + 10))
        response = self.session.get(
            self.url("/feed"),
            params={"cursor": cursor, "wait": wait},
            headers=self._headers(None, True),
            timeout=timeout,
        )
        if response.status_code >= 400:
            raise error_from_response(response)
        body = response.json()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cursor": body.get("next_cursor", cursor)}), encoding="utf-8")
        return list(body.get("items", []))

    def deadlines(self, year: int, region: str | None = None, as_of: str | None = None) -> dict[str, Any]:
        """What the unit owes for ``year``: dataset, due date, status (met/late/overdue/pending)."""
        return self.get_json("/deadlines", year=year, region=region, as_of=as_of)

    def submissions(self) -> Iterator[dict[str, Any]]:
        yield from self.get_json("/submissions").get("items", [])


# the public API (callers import from here)
__all__ = [
    "Credentials",
    "DownloadResult",
    "ExchangeClient",
    "ExchangeError",
    "SubmitResult",
    "TransferCanceledError",
    "TransferControl",
    "TransferPausedError",
    "UploadStateStore",
    "credentials_from_authcfg",
    "proxies_from_qgis",
]
