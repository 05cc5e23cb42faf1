"""离线交换: import a package received on a disk, register an exported package with the server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsApplication, QgsVectorLayer
from qgis.PyQt.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.exchange.client import SubmitResult
from huijiao_plugin.core.exchange.offline import ImportRegistry, import_package, load_imported_layers
from huijiao_plugin.core.exchange.transport import ExchangeError
from huijiao_plugin.core.package import ImportedPackage, PackageError, default_state_dir
from huijiao_plugin.core.session import Session
from huijiao_plugin.gui.server_task import ServerTask, start_server_task
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
        self.task: ServerTask | None = None
        self.last_layers: list[QgsVectorLayer] = []
        self.last_result: SubmitResult | None = None
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
        busy = QHBoxLayout()
        self.progress = QProgressBar(self)
        self.progress.setObjectName("HuijiaoOfflineProgress")
        self.progress.setRange(0, 0)  # hashing and the server give no steps: a busy bar
        self.progress.setTextVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setObjectName("HuijiaoOfflineCancelButton")
        self.cancel_button.setIcon(QgsApplication.getThemeIcon("mTaskCancel.svg"))
        self.cancel_button.setToolTip(tr("Cancel"))
        self.cancel_button.clicked.connect(self.cancel)
        busy.addWidget(self.progress, 1)
        busy.addWidget(self.cancel_button)
        layout.addLayout(busy)
        self._set_busy(False)
        self.label = QLabel(self)
        self.label.setObjectName("HuijiaoOfflineLabel")
        self.label.setWordWrap(True)
        layout.addWidget(self.label)
        layout.addStretch(1)

    def _state_dir(self) -> Path:
        return self.session.state_dir or default_state_dir()

    def busy(self) -> bool:
        return self.task is not None

    def _set_busy(self, on: bool) -> None:
        self.import_button.setEnabled(not on)
        self.register_button.setEnabled(not on)
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on)

    def _run(self, description: str, func: Callable[[ServerTask], Any], done: Callable[[Any], None]):
        if self.task is not None:
            return None
        self.task = ServerTask(description, func)
        self._set_busy(True)
        self.label.setText(description)

        def finish(task: ServerTask, ok: bool) -> None:
            self.task = None
            self._set_busy(False)
            if not ok:
                text = task.error or tr("Canceled.")
                self.label.setText(text)
                if task.error:
                    self._message(task.error, Qgis.MessageLevel.Warning)
                return
            done(task.result)

        return start_server_task(self, self.task, finish)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def import_package_file(self, path: str | Path) -> ServerTask | None:
        """Check and unpack the package in a task (hashes of every file), then load its layers here;
        ``last_layers`` holds them."""
        self.last_layers = []
        target, registry = self._state_dir() / "imported", self._state_dir() / "imported_packages.json"
        region = self.session.settings.region_code

        def work(_task: ServerTask) -> ImportedPackage:
            return import_package(path, target, ImportRegistry(registry), region_code=region)

        return self._run(tr("Importing the package…"), work, self._unpacked)

    def _unpacked(self, imported: ImportedPackage) -> None:
        try:
            layers = load_imported_layers(imported)
        except PackageError as error:
            self.label.setText(str(error))
            self._message(str(error), Qgis.MessageLevel.Warning)
            return
        self.last_layers = layers
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

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, tr("Import package"), "", tr("Exchange package (*.zip)"))
        if path:
            self.import_package_file(path)

    def register_offline_file(self, path: str | Path) -> ServerTask | None:
        """Hash the package and register it with the server in a task; ``last_result`` holds the verified
        receipt."""
        self.last_result = None
        try:
            client = self.session.client()
        except ExchangeError as error:
            self.label.setText(str(error))
            self._message(str(error), Qgis.MessageLevel.Critical)
            return None
        client.max_retries = 1
        return self._run(
            tr("Registering the package with the server…"),
            lambda _task: client.register_offline(path),
            self._registered_result,
        )

    def _registered_result(self, result: SubmitResult) -> None:
        self.last_result = result
        self.label.setText(
            describe_receipt(result.receipt, True, result.duplicate, self.session.dataset_name)
        )
        self._registered()

    def register_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, tr("Register offline package"), "", tr("Exchange package (*.zip)")
        )
        if path:
            self.register_offline_file(path)
