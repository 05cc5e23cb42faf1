"""Client of the exchange server (``/api/v1``, see exchange_server/docs/exchange-protocol.md).

* ``requests``-based, GUI-free: runs in a QgsTask, in Processing and in ``qgis_process``.
* Proxy from the QGIS network settings, credentials from the QGIS authentication manager (never from
  plain settings, never written to a log).
* tus 1.0 upload in chunks, each verified by the server: with the huijiao ``Upload-Prefix-Checksum``
  (sha256 of the file up to the end of the chunk, one running hash, rebuilt from the file on resume) when
  the server offers ``checksum-prefix``, else the standard ``Upload-Checksum: sha256`` per chunk; retries
  with exponential back-off; pause, cancel; resume after a dropped connection or after QGIS was closed
  (the upload state is a JSON file on disk, keyed by the package sha256).
* The server's Ed25519 key is pinned on first contact; every receipt is verified and kept in the local
  history (:mod:`huijiao_plugin.core.receipts`).
* Shared data: versions, download with HTTP Range resume, hash check and cache; the feed of new data;
  the deadlines of the user's unit.

Server errors become :class:`ExchangeError` with a Chinese message that says what to do.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from huijiao_plugin.core.package import (
    HASH_CHUNK,
    PackageError,
    default_state_dir,
    sha256_file,
    verify_package,
)
from huijiao_plugin.core.receipts import (
    KeyMismatchError,
    KeyPinStore,
    ReceiptError,
    ReceiptStore,
    StoredReceipt,
    key_fingerprint,
    normalize_server_url,
    receipt_reasons,
    verify_signature,
)
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
TUS_VERSION = "1.0.0"
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
DEFAULT_TIMEOUT = (10.0, 120.0)  # connect, read (seconds)
RETRYABLE_STATUS = {408, 423, 429, 500, 502, 503, 504}

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)


# ------------------------------------------------------------------------------------------------ errors


class ExchangeError(Exception):
    """A request failed; ``str(e)`` is a (Chinese) message for the user that says what to do."""

    def __init__(self, message: str, code: str = "", status: int = 0, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retryable = retryable


class TransferCanceledError(ExchangeError):
    """The user canceled the transfer (the server-side upload was terminated)."""


class TransferPausedError(ExchangeError):
    """The user paused the transfer; it resumes from the stored state."""


def _hints() -> dict[str, str]:
    """Server error code -> what the user should do (appended to the server's Chinese message).

    Built at call time with literal ``tr("...")`` calls so that pylupdate5 extracts every string and the
    translation is looked up in the current locale (never at import time)."""
    renew = tr("Ask the server administrator for a new token and update the authentication.")
    return {
        "AUTH_REQUIRED": tr("Configure the account (authentication configuration) in the plugin settings."),
        "AUTH_INVALID": tr("Check the user name and password of the authentication configuration."),
        "TOKEN_INVALID": tr("Check the token of the authentication configuration in the plugin settings."),
        "TOKEN_EXPIRED": renew,
        "TOKEN_REVOKED": renew,
        "FORBIDDEN_DEPARTMENT": tr("Check the dataset and the department in the plugin settings."),
        "FORBIDDEN_REGION": tr("Check the region code of the package and of your account."),
        "UPLOAD_TOO_LARGE": tr(
            "Split the data into several packages or ask the administrator to raise the limit."
        ),
        "UPLOAD_TOO_MANY": tr("Wait until your other uploads finish or cancel them."),
        "PACKAGE_SUBMITTED_BY_OTHER": tr(
            "The package was already submitted by another account of your unit."
        ),
    }


def _hint(code: str) -> str:
    return _hints().get(code, "")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def error_from_response(response: requests.Response) -> ExchangeError:
    """An ExchangeError from a server error answer ``{"error": {code, message_zh, message}}``."""
    code = ""
    message = ""
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = str(error.get("code", ""))
        message = str(error.get("message_zh") or error.get("message") or "")
    except ValueError:
        pass
    if not message:
        message = tr("The exchange server answered with HTTP {status}.").format(status=response.status_code)
    hint = _hint(code)
    if hint:
        message = f"{message} {hint}"
    retryable = response.status_code in RETRYABLE_STATUS
    return ExchangeError(message, code, response.status_code, retryable)


def _network_error(url: str, error: Exception) -> ExchangeError:
    if isinstance(error, requests.exceptions.SSLError):
        text = tr(
            "The secure connection to {url} failed: check the server certificate and the proxy settings."
        )
    elif isinstance(error, requests.exceptions.ProxyError):
        text = tr("The proxy refused the connection to {url}: check the proxy settings of QGIS.")
    elif isinstance(error, requests.exceptions.Timeout):
        text = tr("The exchange server {url} did not answer in time: check the network and try again.")
    else:
        text = tr(
            "Cannot reach the exchange server {url}: check the network connection and the server address "
            "in the plugin settings."
        )
    return ExchangeError(text.format(url=url), "NETWORK", 0, True)


# ---------------------------------------------------------------------------------- QGIS proxy and auth


def proxies_from_qgis() -> dict[str, str]:
    """The QGIS proxy (Settings → Network) as a ``requests`` proxies dict (empty when none)."""
    try:
        from qgis.core import QgsNetworkAccessManager
        from qgis.PyQt.QtNetwork import QNetworkProxy
    except ImportError:
        return {}
    proxy = QgsNetworkAccessManager.instance().fallbackProxy()
    if proxy.type() not in (
        QNetworkProxy.ProxyType.HttpProxy,
        QNetworkProxy.ProxyType.HttpCachingProxy,
        QNetworkProxy.ProxyType.Socks5Proxy,
    ):
        return {}
    if not proxy.hostName():
        return {}
    scheme = "socks5h" if proxy.type() == QNetworkProxy.ProxyType.Socks5Proxy else "http"
    auth = ""
    if proxy.user():
        from urllib.parse import quote

        auth = "{}:{}@".format(quote(proxy.user(), safe=""), quote(proxy.password(), safe=""))
    url = f"{scheme}://{auth}{proxy.hostName()}:{proxy.port()}"
    proxies = {"http": url, "https": url}
    excludes = [e for e in QgsNetworkAccessManager.instance().excludeList() if e]
    if excludes:
        proxies["no_proxy"] = ",".join(excludes)
    return proxies


@dataclass
class Credentials:
    """A bearer token, or a user name and password that are exchanged for a token. Never logged."""

    token: str = ""
    username: str = ""
    password: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, token={'***' if self.token else ''})"


def credentials_from_authcfg(authcfg: str) -> Credentials:
    """Read credentials from the QGIS authentication manager.

    * method ``Basic``: user name and password (with an empty user name the password is a bearer token);
    * a method with a ``token`` entry (e.g. ``EsriToken``): the token.
    """
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    if not authcfg:
        raise ExchangeError(
            tr("No account is configured: choose an authentication configuration in the plugin settings."),
            "AUTH_REQUIRED",
        )
    manager = QgsApplication.authManager()
    config = QgsAuthMethodConfig()
    ok = manager.loadAuthenticationConfig(authcfg, config, True)
    if not ok or not config.isValid():
        raise ExchangeError(
            tr(
                "The authentication configuration {id} cannot be read: check it in the QGIS authentication "
                "manager (the master password may be needed)."
            ).format(id=authcfg),
            "AUTH_REQUIRED",
        )
    token = config.config("token", "")
    if token:
        return Credentials(token=token)
    username = config.config("username", "")
    password = config.config("password", "")
    if not username and password:
        return Credentials(token=password)
    if username and password:
        return Credentials(username=username, password=password)
    raise ExchangeError(
        tr("The authentication configuration {id} has no user name/password or token.").format(id=authcfg),
        "AUTH_REQUIRED",
    )


# ---------------------------------------------------------------------------------------- transfer state


class TransferControl:
    """Shared between the UI and a running transfer: ``pause()`` stops after the current chunk and keeps
    the state; ``cancel()`` stops and discards the upload on the server."""

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._pause = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def pause(self) -> None:
        self._pause.set()

    def reset(self) -> None:
        self._cancel.clear()
        self._pause.clear()

    @property
    def canceled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` unless canceled or paused earlier."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (self.canceled or self.paused):
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


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


# ------------------------------------------------------------------------------------------------ client


class ExchangeClient:
    """One server, one account. Thread-safe for one transfer at a time."""

    def __init__(
        self,
        server_url: str,
        credentials: Credentials | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        proxies: dict[str, str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        verify_tls: bool | str = True,
    ) -> None:
        if not server_url:
            raise ExchangeError(tr("No exchange server address is set in the plugin settings."), "CONFIG")
        self.server_url = server_url.rstrip("/")
        self.credentials = credentials or Credentials()
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.chunk_size = max(1, int(chunk_size))
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = proxies is None
        if proxies:
            self.session.proxies.update(proxies)
        self.session.verify = verify_tls
        self.session.headers["User-Agent"] = "huijiao-plugin"
        self._token = self.credentials.token
        self.uploads = UploadStateStore(self.state_dir / "uploads")
        self.pins = KeyPinStore(self.state_dir / "server_keys.json")
        self.receipts = ReceiptStore(self.state_dir / "receipts.sqlite")
        self.cache_dir = self.state_dir / "cache"
        self.retries = 0
        self._tus_extensions: set[str] | None = None

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
        )

    # ------------------------------------------------------------------------------------ plumbing
    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        if not path.startswith(API_PREFIX):
            path = API_PREFIX + path
        return self.server_url + path

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * (2**attempt))

    def login(self) -> str:
        if not (self.credentials.username and self.credentials.password):
            raise ExchangeError(
                tr(
                    "No account is configured: choose an authentication configuration in the plugin settings."
                ),
                "AUTH_REQUIRED",
            )
        response = self._send(
            "POST",
            "/auth/token",
            json={"username": self.credentials.username, "password": self.credentials.password},
            auth=False,
        )
        self._token = response.json()["access_token"]
        return self._token

    def _headers(self, extra: dict[str, str] | None, auth: bool) -> dict[str, str]:
        headers = dict(extra or {})
        if auth:
            if not self._token and self.credentials.username:
                self.login()
            if self._token:
                headers["Authorization"] = "Bearer " + self._token
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        retry: bool = True,
        ok: tuple[int, ...] = (),
        control: TransferControl | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request with retries (connection errors and 5xx/423/429, exponential back-off) and one
        re-login after a 401 when a password is configured."""
        url = self.url(path)
        attempt = 0
        relogged = False
        while True:
            try:
                response = self.session.request(
                    method, url, headers=self._headers(headers, auth), timeout=self.timeout, **kwargs
                )
            except requests.exceptions.RequestException as error:
                failure: ExchangeError = _network_error(self.server_url, error)
                response = None
            else:
                if response.status_code < 400 or response.status_code in ok:
                    return response
                failure = error_from_response(response)
                if (
                    response.status_code == 401
                    and auth
                    and not relogged
                    and self.credentials.username
                    and self.credentials.password
                ):
                    relogged = True
                    self._token = ""
                    continue
            if not (retry and failure.retryable) or attempt >= self.max_retries:
                raise failure
            delay = self._backoff(attempt)
            attempt += 1
            self.retries += 1
            log.info("%s %s failed (%s); retry %d in %.1fs", method, path, failure.code, attempt, delay)
            if control is not None:
                control.wait(delay)
                if control.canceled or control.paused:
                    raise failure
            else:
                time.sleep(delay)

    def get_json(self, path: str, **params: Any) -> Any:
        return self._send("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    # -------------------------------------------------------------------------------------- identity
    def health(self) -> dict[str, Any]:
        return self._send("GET", "/health", auth=False).json()

    def me(self) -> dict[str, Any]:
        return self.get_json("/auth/me")

    def server_key(self) -> str:
        """The server's receipt key, pinned on first contact (raises KeyMismatchError if it changed)."""
        pinned = self.pins.get(self.server_url)
        body = self._send("GET", "/server-key", auth=False).json()
        key = str(body.get("public_key", ""))
        if not key:
            raise ReceiptError(tr("The exchange server did not send its signing key."))
        if pinned is None:
            return self.pins.pin(self.server_url, key)
        if pinned != key:
            self.pins.pin(self.server_url, key)  # raises KeyMismatchError with the user message
        return pinned

    def pinned_key(self) -> str:
        return self.pins.get(self.server_url) or self.server_key()

    # ---------------------------------------------------------------------------------- verification
    def verify_envelope(self, envelope: dict[str, Any], package_sha256: str | None = None) -> dict[str, Any]:
        """Check a receipt envelope ``{receipt, signature, key_fingerprint}`` with the pinned key."""
        receipt = envelope.get("receipt")
        signature = str(envelope.get("signature", ""))
        if not isinstance(receipt, dict) or not signature:
            raise ReceiptError(tr("The server's answer holds no signed receipt."))
        key = self.pinned_key()
        if not verify_signature(receipt, signature, key):
            raise ReceiptError(
                tr(
                    "The receipt signature is not valid: the receipt was altered or not issued by the pinned "
                    "server ({fingerprint}). Do not rely on it; contact the server administrator."
                ).format(fingerprint=key_fingerprint(key))
            )
        fingerprint = key_fingerprint(key)
        for claimed in (envelope.get("key_fingerprint"), receipt.get("key_fingerprint")):
            if claimed and claimed != fingerprint:
                raise ReceiptError(
                    tr(
                        "The receipt names another server key ({claimed}) than the pinned one ({pinned})."
                    ).format(claimed=claimed, pinned=fingerprint)
                )
        if package_sha256 and str(receipt.get("package_sha256", "")).lower() != package_sha256.lower():
            raise ReceiptError(tr("The receipt is for another package than the one submitted."))
        return receipt

    def _store(self, envelope: dict[str, Any]) -> StoredReceipt:
        return self.receipts.add(
            self.server_url, envelope["receipt"], envelope["signature"], self.pinned_key()
        )

    def reverify(self, stored: StoredReceipt) -> bool:
        return self.receipts.verify(stored, self.pins)

    # ------------------------------------------------------------------------------------------- tus
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
                delay = self._backoff(failures)
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
        self.pinned_key()
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
        self.pinned_key()
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
                control.wait(self._backoff(failures))
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


__all__ = [
    "Credentials",
    "DownloadResult",
    "ExchangeClient",
    "ExchangeError",
    "KeyMismatchError",
    "ReceiptError",
    "SubmitResult",
    "TransferCanceledError",
    "TransferControl",
    "TransferPausedError",
    "credentials_from_authcfg",
    "proxies_from_qgis",
]
