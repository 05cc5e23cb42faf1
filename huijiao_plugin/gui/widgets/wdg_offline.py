"""离线交换: import a package received on a disk, register an exported package with the server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsVectorLayer
from qgis.PyQt.QtWidgets import QFileDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from huijiao_plugin.core.exchange.client import SubmitResult
from huijiao_plugin.core.exchange.offline import ImportRegistry, import_package, load_imported_layers
from huijiao_plugin.core.exchange.receipts import ReceiptError
from huijiao_plugin.core.exchange.transport import ExchangeError
from huijiao_plugin.core.package import PackageError, default_state_dir
from huijiao_plugin.core.session import Session
from huijiao_plugin.gui.user_context import region_display
from huijiao_plugin.gui.widgets.wdg_receipts import describe_receipt
from huijiao_plugin.toolbelt.i18n import tr


class HuijiaoOfflineWidget(QWidget):
    """Two buttons and what happened; ``imported``/``registered`` tell the panel to refresh."""

    def __init__(
        self,
        session: Session,
        message: Callable[[str, Any], None],
        imported: Callable[[], None],
        registered: Callable[[], None],
        parent=None,
    ):
        super().__init__(parent)
        self.setObjectName("HuijiaoOfflineWidget")
        self.session = session
        self._message = message
        self._imported = imported
        self._registered = registered
        layout = QVBoxLayout(self)
        text = QLabel(
            tr(
                "Offline exchange: export a package to a folder or removable disk on the Submit tab; import "
                "a package received that way here. Register an exported package with the server when the "
                "network is back, so that the evaluation counts it."
            ),
            self,
        )
        text.setWordWrap(True)
        layout.addWidget(text)
        self.import_button = QPushButton(tr("Import package…"), self)
        self.import_button.clicked.connect(self.import_dialog)
        self.register_button = QPushButton(tr("Register with the server…"), self)
        self.register_button.setToolTip(tr("Register offline package with the server…"))
        self.register_button.clicked.connect(self.register_dialog)
        layout.addWidget(self.import_button)
        layout.addWidget(self.register_button)
        self.label = QLabel(self)
        self.label.setObjectName("HuijiaoOfflineLabel")
        self.label.setWordWrap(True)
        layout.addWidget(self.label)
        layout.addStretch(1)

    def _state_dir(self) -> Path:
        return self.session.state_dir or default_state_dir()

    def import_package_file(self, path: str | Path) -> list[QgsVectorLayer]:
        try:
            imported = import_package(
                path,
                self._state_dir() / "imported",
                ImportRegistry(self._state_dir() / "imported_packages.json"),
                region_code=self.session.settings.region_code,
            )
            layers = load_imported_layers(imported)
        except PackageError as error:
            self.label.setText(str(error))
            self._message(str(error), Qgis.MessageLevel.Warning)
            return []
        manifest = imported.manifest
        self.label.setText(
            tr("Imported {dataset} {region} {period}: {n} layers loaded.").format(
                dataset=self.session.dataset_name(str(manifest.get("dataset_id", ""))),
                region=region_display(str(manifest.get("region_code", ""))),
                period=manifest.get("period"),
                n=len(layers),
            )  # fmt: skip
        )
        self._imported()
        return layers

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, tr("Import package"), "", tr("Exchange package (*.zip)"))
        if path:
            self.import_package_file(path)

    def register_offline_file(self, path: str | Path) -> SubmitResult | None:
        try:
            client = self.session.client()
            client.max_retries = 1
            result = client.register_offline(path)
        except (ExchangeError, ReceiptError) as error:
            self.label.setText(str(error))
            self._message(str(error), Qgis.MessageLevel.Critical)
            return None
        self.label.setText(
            describe_receipt(result.receipt, True, result.duplicate, self.session.dataset_name)
        )
        self._registered()
        return result

    def register_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, tr("Register offline package"), "", tr("Exchange package (*.zip)")
        )
        if path:
            self.register_offline_file(path)
