"""tus 1.0 upload in chunks, each verified by the server.

With the huijiao ``Upload-Prefix-Checksum`` (sha256 of the file up to the end of the chunk, one running
hash, rebuilt from the file on resume) when the server offers ``checksum-prefix``, else the standard
``Upload-Checksum: sha256`` per chunk; retries with exponential back-off; pause, cancel; resume after a
dropped connection or after QGIS was closed (the upload state is a JSON file on disk, keyed by the
package sha256).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import requests

from huijiao_plugin.core.exchange.receipts import normalize_server_url
from huijiao_plugin.core.exchange.transport import (
    ExchangeError,
    TransferControl,
    Transport,
    _b64,
    _network_error,
    error_from_response,
)
from huijiao_plugin.core.package import HASH_CHUNK, sha256_file
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)


class TransferCanceledError(ExchangeError):
    """The user canceled the transfer (the server-side upload was terminated)."""


class TransferPausedError(ExchangeError):
    """The user paused the transfer; it resumes from the stored state."""


class UploadStateStore:
    """Upload states (``<sha256>.json``) so that an upload resumes after QGIS was closed."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, sha256: str) -> Path:
        return self.directory / f"{sha256}.json"

    def load(self, sha256: str, server_url: str) -> dict[str, Any] | None:
        path = self.path(sha256)
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if normalize_server_url(state.get("server_url", "")) != normalize_server_url(server_url):
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(state["package_sha256"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def pending(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return out


class TusUploader(Transport):
    """The tus part of the client (upload states under ``<state_dir>/uploads``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uploads = UploadStateStore(self.state_dir / "uploads")
        self._tus_extensions: set[str] | None = None

    def _create_upload(self, path: Path, sha256: str, size: int, dataset_id: str = "") -> str:
        items = [("filename", path.name), ("package_sha256", sha256)]
        if dataset_id:
            items.append(("dataset_id", dataset_id))
        metadata = ",".join(
            "{} {}".format(k, base64.b64encode(v.encode("utf-8")).decode("ascii")) for k, v in items
        )
        response = self._send(
            "POST",
            "/uploads",
            headers={"Tus-Resumable": TUS_VERSION, "Upload-Length": str(size), "Upload-Metadata": metadata},
        )
        location = response.headers.get("Location", "")
        if not location:
            raise ExchangeError(tr("The exchange server did not create the upload."), "PROTOCOL")
        return location

    def _server_offset(self, upload_url: str, control: TransferControl | None) -> int:
        response = self._send(
            "HEAD", upload_url, headers={"Tus-Resumable": TUS_VERSION}, control=control, ok=(404, 410)
        )
        if response.status_code in (404, 410):  # a HEAD answer has no body: map the status
            code = "UPLOAD_NOT_FOUND" if response.status_code == 404 else "UPLOAD_EXPIRED"
            raise ExchangeError(tr("The upload is no longer on the server; it starts again."), code, 404)
        return int(response.headers.get("Upload-Offset", "0"))

    def tus_extensions(self) -> set[str]:
        """The tus extensions the server offers (``OPTIONS /uploads``, asked once); empty when it does not
        answer OPTIONS (e.g. a proxy in between refuses it): the client then uses only standard tus."""
        if self._tus_extensions is None:
            try:
                response = self._send("OPTIONS", "/uploads", auth=False, retry=False)
            except ExchangeError as error:
                log.info("OPTIONS /uploads failed (%s): standard tus checksums", error.code)
                return set()
            value = response.headers.get("Tus-Extension", "")
            self._tus_extensions = {item.strip() for item in value.split(",") if item.strip()}
        return self._tus_extensions

    def _prefix_hash(self, handle: Any, length: int) -> Any:
        """The running sha256 of the first ``length`` bytes of the open file (rebuilt on resume)."""
        digest = hashlib.sha256()
        handle.seek(0)
        left = length
        while left > 0:
            block = handle.read(min(left, HASH_CHUNK * 4))
            if not block:
                break
            digest.update(block)
            left -= len(block)
        return digest

    def upload(
        self,
        path: str | os.PathLike[str],
        sha256: str | None = None,
        progress: ProgressCallback | None = None,
        control: TransferControl | None = None,
        dataset_id: str = "",
    ) -> tuple[str, int]:
        """Upload ``path`` with tus, resuming a stored upload of the same package. Returns
        (upload URL, offset the upload resumed from)."""
        path = Path(path)
        sha256 = sha256 or sha256_file(path)
        size = path.stat().st_size
        control = control or TransferControl()
        state = self.uploads.load(sha256, self.server_url)
        offset = 0
        upload_url = ""
        if state is not None:
            upload_url = state["upload_url"]
            try:
                offset = self._server_offset(upload_url, control)
            except ExchangeError as error:
                if error.code not in ("UPLOAD_NOT_FOUND", "UPLOAD_EXPIRED", "NOT_FOUND"):
                    raise
                log.info(
                    "stored upload of %s is gone on the server (%s); starting again", sha256[:12], error.code
                )
                self.uploads.delete(sha256)
                state = None
        if state is None:
            upload_url = self._create_upload(path, sha256, size, dataset_id)
            offset = 0
            state = {
                "server_url": self.server_url,
                "upload_url": upload_url,
                "package_sha256": sha256,
                "package_path": str(path),
                "size": size,
                "offset": 0,
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            self.uploads.save(state)
        resumed_from = offset
        if progress is not None:
            progress(offset, size)
        failures = 0
        prefix = "checksum-prefix" in self.tus_extensions()
        running: Any = None  # with the prefix checksum: sha256 of the file's bytes [0, running_end)
        running_end = -1
        prefix_mismatch_at = -1
        restarted = False
        with open(path, "rb") as handle:
            while offset < size:
                if control.canceled:
                    self.cancel_upload(sha256)
                    raise TransferCanceledError(tr("The upload was canceled."), "CANCELED")
                if control.paused:
                    raise TransferPausedError(
                        tr("The upload is paused; it resumes where it stopped."), "PAUSED"
                    )
                if prefix and running_end != offset:  # first chunk, resume, or retry elsewhere
                    running = self._prefix_hash(handle, offset)
                    running_end = offset
                handle.seek(offset)
                chunk = handle.read(self.chunk_size)
                after: Any = None
                if prefix:
                    after = running.copy()
                    after.update(chunk)
                    checksum = {"Upload-Prefix-Checksum": "sha256 " + _b64(after.digest())}
                else:
                    checksum = {"Upload-Checksum": "sha256 " + _b64(hashlib.sha256(chunk).digest())}
                try:
                    response = self.session.patch(
                        self.url(upload_url),
                        data=chunk,
                        headers=self._headers(
                            {
                                "Tus-Resumable": TUS_VERSION,
                                "Upload-Offset": str(offset),
                                "Content-Type": "application/offset+octet-stream",
                                **checksum,
                            },
                            True,
                        ),
                        timeout=self.timeout,
                    )
                except requests.exceptions.RequestException as error:
                    failure: ExchangeError | None = _network_error(self.server_url, error)
                    response = None
                else:
                    failure = None
                    if response.status_code == 204:
                        if after is not None:
                            running, running_end = after, offset + len(chunk)
                        offset = int(response.headers.get("Upload-Offset", offset + len(chunk)))
                        state["offset"] = offset
                        self.uploads.save(state)
                        failures = 0
                        if progress is not None:
                            progress(offset, size)
                        continue
                    failure = error_from_response(response)
                    if failure.code in ("UPLOAD_NOT_FOUND", "UPLOAD_EXPIRED"):
                        self.uploads.delete(sha256)
                        raise failure
                    if failure.code == "CHECKSUM_MISMATCH" and prefix:
                        if prefix_mismatch_at == offset and not restarted:
                            # the same chunk refused twice: the bytes the server holds before it differ
                            # from this file (e.g. damaged on its disk); start the upload again, once
                            log.warning("prefix checksum refused twice at %d: new upload", offset)
                            self.cancel_upload(sha256)
                            upload_url = self._create_upload(path, sha256, size, dataset_id)
                            state = dict(state, upload_url=upload_url, offset=0)
                            self.uploads.save(state)
                            offset = running_end = resumed_from = 0
                            running = hashlib.sha256()
                            restarted = True
                            if progress is not None:
                                progress(0, size)
                            continue
                        prefix_mismatch_at = offset
                    if failure.code in ("CHECKSUM_MISMATCH", "UPLOAD_OFFSET_MISMATCH", "UPLOAD_LOCKED"):
                        failure.retryable = True
                    if (
                        response.status_code == 401
                        and self.credentials.username
                        and self.credentials.password
                    ):
                        self._token = ""
                        failure.retryable = True
                if not failure.retryable or failures >= self.max_retries:
                    raise failure
                delay = self._retry_delay(failures, failure)
                failures += 1
                self.retries += 1
                log.info("chunk at %d failed (%s); retry %d in %.1fs", offset, failure.code, failures, delay)
                control.wait(delay)
                if control.canceled or control.paused:
                    continue
                offset = self._server_offset(upload_url, control)
        return upload_url, resumed_from

    def cancel_upload(self, sha256: str) -> None:
        """Terminate a stored upload on the server and forget it locally."""
        state = self.uploads.load(sha256, self.server_url)
        if state is not None:
            try:
                self._send(
                    "DELETE",
                    state["upload_url"],
                    headers={"Tus-Resumable": TUS_VERSION},
                    retry=False,
                    ok=(404, 410),
                )
            except ExchangeError as error:
                log.warning("could not terminate upload %s: %s", state["upload_url"], error.code)
        self.uploads.delete(sha256)
