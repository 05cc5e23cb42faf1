"""Transport to the exchange server: one ``requests`` session with the QGIS proxy and TLS settings,
credentials from the QGIS authentication manager, retries with back-off and the pinned receipt key.

Errors become :class:`ExchangeError` with a Chinese message that says what to do. Credentials are never
written to a log.
"""

from __future__ import annotations

import base64
import datetime as _dt
import email.utils
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from huijiao_plugin.core.exchange.receipts import (
    KeyMismatchError,
    KeyPinStore,
    ReceiptError,
    ReceiptStore,
    StoredReceipt,
    key_fingerprint,
    verify_signature,
)
from huijiao_plugin.core.package import default_state_dir
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = (10.0, 120.0)  # connect, read (seconds)
RETRYABLE_STATUS = {408, 423, 429, 500, 502, 503, 504}
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024

# ------------------------------------------------------------------------------------------------ errors


class ExchangeError(Exception):
    """A request failed; ``str(e)`` is a (Chinese) message for the user that says what to do."""

    def __init__(
        self,
        message: str,
        code: str = "",
        status: int = 0,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the server asked to wait (Retry-After), if any

    @property
    def transient(self) -> bool:
        """A fault of the server or the network, not a verdict on the package: retry later."""
        return self.retryable and (self.status == 0 or self.status in RETRYABLE_STATUS)


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
    if response.status_code == 503:
        # a fault of the server (disk, database, maintenance), never a verdict on the package
        message = "{} {}".format(
            message,
            tr(
                "The server is temporarily unavailable; nothing was rejected. Try again later: the upload "
                "resumes where it stopped."
            ),
        )
    return ExchangeError(
        message, code, response.status_code, retryable, parse_retry_after(response.headers.get("Retry-After"))
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds())


def _network_error(url: str, error: Exception) -> ExchangeError:
    if isinstance(error, requests.exceptions.SSLError):
        text = tr(
            "The secure connection to {url} failed: check the server certificate and the proxy settings."
        )
        if "CERTIFICATE_VERIFY_FAILED" in str(error):  # a setting to fix, not a fault to retry
            text = tr(
                "The certificate of the exchange server {url} is not trusted: add its certificate authority "
                "to the QGIS authentication manager or set the CA file in the plugin settings."
            )
            return ExchangeError(text.format(url=url), "TLS_UNTRUSTED", 0, False)
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


# ------------------------------------------------------------------------------------------------- TLS


def _qgis_ca_pems() -> list[bytes]:
    """The CAs trusted in the QGIS authentication manager (PEM), empty outside QGIS."""
    try:
        from qgis.core import QgsApplication

        certificates = QgsApplication.authManager().trustedCaCerts(False)
    except (ImportError, AttributeError, RuntimeError) as error:
        log.info("no CAs from the QGIS authentication manager: %s", error)
        return []
    return [bytes(cert.toPem()) for cert in certificates if not cert.isNull()]


def ca_bundle(directory: Path, ca_file: str = "") -> str:
    """A CA bundle file for ``requests``: the system/certifi CAs, the QGIS authentication manager's CAs
    and the custom CA file of the settings. Written under ``directory``, named by its content."""
    import certifi

    parts = [Path(certifi.where()).read_bytes(), *_qgis_ca_pems()]
    if ca_file:
        try:
            custom = Path(ca_file).read_bytes()
        except OSError as error:
            raise ExchangeError(
                tr("The CA certificate file {path} cannot be read: check the plugin settings.").format(
                    path=ca_file
                ),
                "CONFIG",
            ) from error
        if b"-----BEGIN CERTIFICATE-----" not in custom:
            raise ExchangeError(
                tr("The CA certificate file {path} holds no PEM certificate.").format(path=ca_file), "CONFIG"
            )
        parts.append(custom)
    data = b"\n".join(part.strip() for part in parts) + b"\n"
    target = directory / f"ca-{hashlib.sha256(data).hexdigest()[:16]}.pem"
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return str(target)


# ------------------------------------------------------------------------------------------- transport


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


class Transport:
    """One server, one account: requests with retries, the token, the pinned receipt key."""

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
        retry_after_max: float = 120.0,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        verify_tls: bool | str = True,
        ca_file: str = "",
        pinned_fingerprint: str = "",
        allow_unencrypted: bool = False,
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
        self.retry_after_max = retry_after_max
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = proxies is None
        if proxies:
            self.session.proxies.update(proxies)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if verify_tls is True and self.server_url.lower().startswith("https://"):
            verify_tls = ca_bundle(self.state_dir / "tls", ca_file)
        self.session.verify = verify_tls
        #: the receipt key's fingerprint set in the settings ("SHA256:<hex>"), checked on every connection
        self.pinned_fingerprint = pinned_fingerprint.strip()
        #: plain-HTTP test server: only then is the receipt key trusted on first use without TLS
        self.allow_unencrypted = allow_unencrypted
        self.session.headers["User-Agent"] = "huijiao-plugin"
        self._token = self.credentials.token
        self.pins = KeyPinStore(self.state_dir / "server_keys.json")
        self.receipts = ReceiptStore(self.state_dir / "receipts.sqlite")
        self.cache_dir = self.state_dir / "cache"
        self.retries = 0

    # ------------------------------------------------------------------------------------ plumbing
    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        if not path.startswith(API_PREFIX):
            path = API_PREFIX + path
        return self.server_url + path

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * (2**attempt))

    def _retry_delay(self, attempt: int, failure: ExchangeError) -> float:
        """The server's Retry-After when it sent one (bounded by ``retry_after_max``), else back-off."""
        if failure.retry_after is not None:
            return min(self.retry_after_max, max(failure.retry_after, self.backoff_base))
        return self._backoff(attempt)

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
            delay = self._retry_delay(attempt, failure)
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

    @property
    def encrypted(self) -> bool:
        return self.server_url.lower().startswith("https://")

    def fetch_server_key(self) -> str:
        """The server's receipt-signing key as it sends it now (base64), not checked and not pinned."""
        key = str(self._send("GET", "/server-key", auth=False).json().get("public_key", ""))
        if not key:
            raise ReceiptError(tr("The exchange server did not send its signing key."))
        return key

    def server_key(self) -> str:
        """The server's receipt key, asked on each connection (so that a changed key is noticed before a
        commit) and checked against the fingerprint in the settings, else against the key pinned on first
        contact. First contact over plain HTTP is refused unless the unencrypted test server option is on.
        Raises KeyMismatchError (changed key) or ReceiptError."""
        pinned = self.pins.get(self.server_url)
        body = self._send("GET", "/server-key", auth=False).json()
        key = str(body.get("public_key", ""))
        if not key:
            raise ReceiptError(tr("The exchange server did not send its signing key."))
        if self.pinned_fingerprint:
            found = key_fingerprint(key)
            if found.lower() != self.pinned_fingerprint.lower():
                raise KeyMismatchError(
                    tr(
                        "The exchange server's signing key ({found}) is not the one set in the plugin "
                        "settings ({pinned}). Receipts cannot be trusted: ask the server administrator."
                    ).format(found=found, pinned=self.pinned_fingerprint)
                )
            if pinned != key:  # the fingerprint was checked out of band: it replaces a first-use pin
                self.pins.forget(self.server_url)
                return self.pins.pin(self.server_url, key)
            return key
        if pinned is None:
            if not (self.encrypted or self.allow_unencrypted):
                raise ReceiptError(
                    tr(
                        "The server's signing key {fingerprint} cannot be trusted over an unencrypted "
                        "connection: use an https:// address, enter the key fingerprint in the plugin "
                        "settings, or tick 'unencrypted test server' for a test server."
                    ).format(fingerprint=key_fingerprint(key))
                )
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
