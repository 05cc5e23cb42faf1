"""测试连接: is the exchange server reachable, is the connection encrypted, is the account valid, and which
account and department it is — each step a line the user can read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from huijiao_plugin.core.exchange.client import ExchangeClient
from huijiao_plugin.core.exchange.receipts import ReceiptError, key_fingerprint
from huijiao_plugin.core.exchange.transport import ExchangeError
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.toolbelt.i18n import tr


@dataclass
class ConnectionReport:
    #: (passed, text) in the order checked; a failed step ends the check unless it is only a warning
    steps: list[tuple[bool, str]] = field(default_factory=list)
    account: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(passed for passed, _text in self.steps)

    def text(self) -> str:
        return "\n".join(("✔ " if passed else "✘ ") + text for passed, text in self.steps)


def department_name(department: str) -> str:
    names = {"zrzy": tr("Natural resources"), "nync": tr("Agriculture and rural affairs")}
    return names.get(department, department)


def _key_step(client: ExchangeClient, settings: HuijiaoSettings) -> tuple[bool, str]:
    """The receipt-signing key: its fingerprint, and whether the plugin will trust it (nothing is pinned)."""
    try:
        found = key_fingerprint(client.fetch_server_key())
    except (ExchangeError, ReceiptError) as error:
        return False, str(error)
    pinned = settings.server_key_fingerprint.strip()
    if pinned:
        if found.lower() == pinned.lower():
            return True, tr("The server's signing key {found} is the one set in the settings.").format(
                found=found
            )
        return False, tr(
            "The server's signing key {found} is not the one set in the settings ({pinned}): receipts cannot "
            "be trusted. Ask the server administrator."
        ).format(found=found, pinned=pinned)
    if client.encrypted or settings.allow_unencrypted:
        return True, tr(
            "The server's signing key is {found}; it is pinned at the first submission. Compare it with the "
            "fingerprint the administrator gave you."
        ).format(found=found)
    return False, tr(
        "The server's signing key {found} cannot be trusted over an unencrypted connection: enter its "
        "fingerprint in the settings, or tick 'Unencrypted test server' for a test server."
    ).format(found=found)


def check_connection(
    settings: HuijiaoSettings, client_factory: Callable[[HuijiaoSettings], ExchangeClient] | None = None
) -> ConnectionReport:
    """Run the checks against ``settings`` (as entered, not yet saved); never raises."""
    report = ConnectionReport()
    try:
        client = (client_factory or ExchangeClient.from_settings)(settings)
    except ExchangeError as error:
        report.steps.append((False, str(error)))
        return report
    client.max_retries = 0  # interactive: one try, the user presses the button again
    try:
        health = client.health()
    except ExchangeError as error:
        report.steps.append((False, str(error)))
        return report
    report.steps.append(
        (True, tr("The server {url} answers (version {version}).").format(
            url=client.server_url, version=health.get("version", "?")))
    )  # fmt: skip
    if client.server_url.lower().startswith("https://"):
        report.steps.append((True, tr("The connection is encrypted (TLS) and the certificate is trusted.")))
    else:
        report.steps.append(
            (False, tr("The connection is not encrypted (http): use https outside a test network."))
        )
    report.steps.append(_key_step(client, settings))
    try:
        account = client.me()
    except ExchangeError as error:
        if error.code == "AUTH_REQUIRED":
            report.steps.append((False, str(error)))
        else:
            report.steps.append((False, tr("The account was refused: {error}").format(error=error)))
        return report
    report.account = dict(account)
    report.steps.append(
        (True, tr("Signed in as {name} ({user}), {department}, region {region}, role {role}.").format(
            name=account.get("display_name") or account.get("username"),
            user=account.get("username"),
            department=department_name(str(account.get("department", ""))),
            region=account.get("region_code", ""),
            role=account.get("role", ""),
        ))
    )  # fmt: skip
    if account.get("department") != settings.department:
        report.steps.append(
            (False, tr("The account belongs to {account}, but the settings say {settings}.").format(
                account=department_name(str(account.get("department", ""))),
                settings=department_name(settings.department)))
        )  # fmt: skip
    region = str(account.get("region_code", ""))
    prefix = region
    while len(prefix) > 2 and prefix.endswith("00"):  # 610100 covers 6101xx
        prefix = prefix[:-2]
    if region and not settings.region_code.startswith(prefix):
        text = tr("The region {region} in the settings is outside the account's region {account}.")
        report.steps.append((False, text.format(region=settings.region_code, account=region)))
    return report
