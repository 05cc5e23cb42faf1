"""huijiao:submitpackage — submit an exchange package to the exchange server and verify the receipt."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputString,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.exchange.client import (
    ExchangeClient,
    ExchangeError,
    TransferControl,
    TransferPausedError,
    credentials_from_authcfg,
    proxies_from_qgis,
)
from huijiao_plugin.core.exchange.receipts import ReceiptError
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr


class SubmitPackageAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "submitpackage"
    GROUP_ID = "exchange"

    INPUT = "INPUT"
    SERVER_URL = "SERVER_URL"
    AUTHCFG = "AUTHCFG"
    OFFLINE = "OFFLINE"
    STATE_DIR = "STATE_DIR"

    def displayName(self) -> str:
        return tr("Submit exchange package")

    def shortHelpString(self) -> str:
        return tr(
            "Uploads an exchange package to the exchange server (resumable: an interrupted or canceled "
            "run continues where it stopped when it is started again), commits it and verifies the signed "
            "receipt with the server key pinned on first contact. The receipt is kept in the local history. "
            "With 'offline' the package, already delivered on a disk, is only registered with the server. "
            "Server and account default to the plugin settings; credentials come from the QGIS "
            "authentication manager."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterFile(self.INPUT, tr("Package"), extension="zip"))
        self.addParameter(
            QgsProcessingParameterString(
                self.SERVER_URL, tr("Server address (empty: settings)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterAuthConfig(self.AUTHCFG, tr("Account (empty: settings)"), optional=True)
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.OFFLINE, tr("Register a package exchanged offline (no upload)"), False
            )
        )
        state = QgsProcessingParameterString(
            self.STATE_DIR, tr("State folder (empty: the QGIS profile)"), optional=True
        )
        state.setFlags(state.flags() | state.FlagAdvanced)
        self.addParameter(state)
        self.addOutput(QgsProcessingOutputString("SUBMISSION_ID", tr("Submission id")))
        self.addOutput(QgsProcessingOutputString("STATUS", tr("Status")))
        self.addOutput(QgsProcessingOutputBoolean("VERIFIED", tr("Receipt verified")))
        self.addOutput(QgsProcessingOutputBoolean("DUPLICATE", tr("Already submitted before")))
        self.addOutput(QgsProcessingOutputString("REASONS", tr("Findings")))
        self.addOutput(QgsProcessingOutputString("PACKAGE_SHA256", tr("Package sha256")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        settings = HuijiaoSettings.load()
        path = self.parameterAsFile(parameters, self.INPUT, context)
        server = self.parameterAsString(parameters, self.SERVER_URL, context).strip() or settings.server_url
        authcfg = self.parameterAsString(parameters, self.AUTHCFG, context).strip() or settings.authcfg
        state_dir = self.parameterAsString(parameters, self.STATE_DIR, context).strip() or None
        offline = self.parameterAsBoolean(parameters, self.OFFLINE, context)
        control = TransferControl()
        feedback.canceled.connect(control.pause)
        try:
            client = ExchangeClient(
                server,
                credentials_from_authcfg(authcfg),
                state_dir=state_dir,
                proxies=proxies_from_qgis(),
                ca_file=settings.ca_file,
                pinned_fingerprint=settings.server_key_fingerprint,
                allow_unencrypted=settings.allow_unencrypted,
            )

            def progress(done: int, total: int) -> None:
                feedback.setProgress(100.0 * done / total if total else 100.0)

            if offline:
                result = client.register_offline(path)
            else:
                feedback.pushInfo(tr("Uploading {path} to {server}…").format(path=path, server=server))
                result = client.submit_package(path, progress=progress, control=control)
        except TransferPausedError as error:
            raise QgsProcessingException(
                tr("The upload was interrupted; run the algorithm again to resume it.")
            ) from error
        except (ExchangeError, ReceiptError) as error:
            raise QgsProcessingException(str(error)) from error
        finally:
            feedback.canceled.disconnect(control.pause)
        status = str(result.receipt.get("status", ""))
        if result.duplicate:
            feedback.pushInfo(tr("The package was submitted before; this is the first receipt."))
        feedback.pushInfo(
            tr("Receipt {id}: {status}, signature verified.").format(id=result.submission_id, status=status)
        )
        for reason in result.reasons:
            if result.accepted:
                feedback.pushInfo(reason)
            else:
                feedback.reportError(reason)
        return {
            "SUBMISSION_ID": result.submission_id,
            "STATUS": status,
            "VERIFIED": result.verified,
            "DUPLICATE": result.duplicate,
            "REASONS": "\n".join(result.reasons),
            "PACKAGE_SHA256": str(result.receipt.get("package_sha256", "")),
        }
