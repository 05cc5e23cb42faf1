"""回执: the signed receipts kept on this computer, in words, and a re-check of their signature."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QHBoxLayout,
    QPushButton,
    QTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.exchange.receipts import KeyPinStore, ReceiptStore, StoredReceipt
from huijiao_plugin.core.package import default_state_dir
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.timefmt import local_time
from huijiao_plugin.gui.user_context import region_display
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)


def describe_receipt(
    receipt: dict[str, Any],
    verified: bool,
    duplicate: bool = False,
    dataset_name: Callable[[str], str] | None = None,
) -> str:
    """A receipt in words: dataset and region by name, local time, status and signature."""
    from huijiao_plugin.core.exchange.receipts import receipt_reasons

    dataset_id = str(receipt.get("dataset_id", ""))
    status = receipt.get("status", "")
    lines = [
        tr("Receipt {id}").format(id=receipt.get("submission_id", "")),
        tr("Server time: {time}").format(time=local_time(receipt.get("server_time", ""))),
        tr("Dataset: {dataset}  Region: {region}  Period: {period}").format(
            dataset=(dataset_name(dataset_id) if dataset_name else "") or dataset_id,
            region=region_display(str(receipt.get("region_code", ""))),
            period=receipt.get("period", ""),
        ),  # fmt: skip
        tr("Package sha256: {sha}").format(sha=receipt.get("package_sha256", "")),
        tr("Status: {status}").format(status=tr("accepted") if status == "accepted" else tr("rejected")),
        tr("Signature: verified with the pinned server key") if verified else tr("Signature: NOT VALID"),
    ]
    if duplicate:
        lines.append(tr("This package was submitted before: this is its first receipt."))
    reasons = receipt_reasons(receipt)
    if reasons:
        lines.append(tr("Findings:"))
        lines += ["  " + r for r in reasons]
    return "\n".join(lines)


class HuijiaoReceiptsWidget(QWidget):
    """The receipt history (newest first as the store keeps them), details and 重新校验."""

    def __init__(self, session: Session, message: Callable[[str, Any], None], parent=None):
        super().__init__(parent)
        self.setObjectName("HuijiaoReceiptsWidget")
        self.session = session
        self._message = message
        layout = QVBoxLayout(self)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("HuijiaoReceiptsTree")
        self.tree.setRootIsDecorated(False)
        self.tree.setHeaderLabels(
            [tr("Received"), tr("Dataset"), tr("Region"), tr("Period"), tr("Status"), tr("Submission")]
        )
        self.tree.itemSelectionChanged.connect(self._show_selected)
        layout.addWidget(self.tree, 2)
        row = QHBoxLayout()
        self.refresh_button = QPushButton(
            QgsApplication.getThemeIcon("mActionRefresh.svg"), tr("Refresh"), self
        )
        self.refresh_button.clicked.connect(self.refresh)
        self.reverify_button = QPushButton(tr("Re-verify"), self)
        self.reverify_button.setObjectName("HuijiaoReceiptsReverifyButton")
        self.reverify_button.clicked.connect(self.reverify_selected)
        row.addWidget(self.refresh_button)
        row.addWidget(self.reverify_button)
        layout.addLayout(row)
        self.detail = QTextEdit(self)
        self.detail.setReadOnly(True)
        self.detail.setMinimumHeight(40)
        layout.addWidget(self.detail, 1)

    def _state_dir(self) -> Path:
        return self.session.state_dir or default_state_dir()

    def store(self) -> ReceiptStore:
        return ReceiptStore(self._state_dir() / "receipts.sqlite")

    def describe(self, receipt: dict[str, Any], verified: bool, duplicate: bool = False) -> str:
        return describe_receipt(receipt, verified, duplicate, self.session.dataset_name)

    def refresh(self) -> None:
        self.tree.clear()
        try:
            stored = self.store().all()
        except Exception as error:  # an unreadable history must not break the panel
            log.warning("receipt history unreadable: %s", error)
            return
        for receipt in stored:
            item = QTreeWidgetItem(
                [
                    local_time(receipt.received_at),
                    self.session.dataset_name(receipt.dataset_id),
                    region_display(receipt.region_code),
                    receipt.period,
                    tr("accepted") if receipt.accepted else tr("rejected"),
                    receipt.submission_id,
                ]
            )
            item.setToolTip(5, tr("Package sha256: {sha}").format(sha=receipt.package_sha256))
            item.setData(0, Qt.ItemDataRole.UserRole, (receipt.server_url, receipt.submission_id))
            self.tree.addTopLevelItem(item)

    def selected(self) -> StoredReceipt | None:
        items = self.tree.selectedItems()
        if not items:
            return None
        server_url, submission_id = items[0].data(0, Qt.ItemDataRole.UserRole)
        return self.store().get(server_url, submission_id)

    def _show_selected(self) -> None:
        stored = self.selected()
        if stored is not None:
            self.detail.setPlainText(self.describe(stored.receipt, True))

    def reverify_selected(self) -> bool | None:
        stored = self.selected()
        if stored is None:
            return None
        pins = KeyPinStore(self._state_dir() / "server_keys.json")
        ok = self.store().verify(stored, pins)
        self.detail.setPlainText(self.describe(stored.receipt, ok))
        if ok:
            self._message(tr("The receipt signature is valid."), Qgis.MessageLevel.Success)
        else:
            self._message(
                tr("The receipt was altered or is not signed by the pinned server key."),
                Qgis.MessageLevel.Critical,
            )
        return ok
