"""The 成果汇交 (result submission) panel.

Pick the layers to submit (a loaded dataset layer, or change patches with their verification results) →
pre-flight validation report (double-click a finding to zoom to its features) → "Submit" with a progress
bar (bytes, speed, time left), pause and cancel → the signed receipt, verified and kept in the local
history, which can be re-verified at any time. Further tabs: the receipt history, the deadlines of the
unit (from the server) and offline exchange (export to a folder, import, register with the server).

Validation and package building run as QgsTasks (progress, cancel; QGIS stays responsive); the layers are
read there only through what the main thread handed over: a fresh layer on the same OGR source, or a copy
made from a ``QgsVectorLayerFeatureSource`` snapshot (memory layers, unsaved edits, other providers). The
network transfer runs in a thread of its own.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from qgis.core import (
    Qgis,
    QgsProject,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import (
    QFileDialog,
    QMessageBox,
    QTabWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.exchange.client import (
    ExchangeClient,
    ExchangeError,
    SubmitResult,
    TransferCanceledError,
    TransferControl,
    TransferPausedError,
)
from huijiao_plugin.core.exchange.receipts import ReceiptError
from huijiao_plugin.core.package import default_state_dir
from huijiao_plugin.core.preflight import PreflightReport
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.layer_tasks import LayerTask, format_progress
from huijiao_plugin.gui.package_flow import PackageFlow
from huijiao_plugin.gui.server_task import ServerTask, UploadTask, start_server_task
from huijiao_plugin.gui.wdg_user_context import HuijiaoUserContextWidget
from huijiao_plugin.gui.widgets.wdg_deadlines import HuijiaoDeadlinesWidget
from huijiao_plugin.gui.widgets.wdg_evaluation import HuijiaoEvaluationWidget
from huijiao_plugin.gui.widgets.wdg_offline import HuijiaoOfflineWidget
from huijiao_plugin.gui.widgets.wdg_receipts import HuijiaoReceiptsWidget
from huijiao_plugin.gui.widgets.wdg_submit_form import FID_ROLE, HuijiaoSubmitForm
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

FORM_WIDGETS = (
    "dataset_combo", "period_edit", "region_edit", "layer_list", "refresh_layers_button", "validate_button",
    "findings_tree", "accept_warnings_check", "submit_button", "pause_button", "cancel_button",
    "export_button", "progress_bar", "progress_label", "pending_label", "receipt_view",
)  # fmt: skip
__all__ = ["FID_ROLE", "HuijiaoSubmitDock"]


class HuijiaoSubmitDock(PackageFlow, QgsDockWidget):
    """Result submission: validation, submission with receipt, history, deadlines, offline exchange."""

    def __init__(self, iface, session: Session | None = None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.session = session if session is not None else Session.load()
        self.setObjectName("HuijiaoSubmitDock")
        self.setWindowTitle(tr("Result submission"))
        self.report: PreflightReport | None = None
        self.last_result: SubmitResult | None = None
        self.last_package: Path | None = None
        #: the running upload (a task; the timer shows its bytes, speed and time left)
        self._upload: UploadTask | None = None
        #: the running validation or package-building task
        self._task: LayerTask | None = None
        self._task_text = ""
        #: pause/cancel of a whole submission (validation → build → upload), set by submit()
        self._control: TransferControl | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._show_upload_progress)
        # the layer list follows the project (disconnected in unload)
        project = QgsProject.instance()
        self._project_connections = [
            (project.layersAdded, project.layersAdded.connect(self._project_layers_changed)),
            (project.layersRemoved, project.layersRemoved.connect(self._project_layers_changed)),
        ]

        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.context_widget = HuijiaoUserContextWidget(
            tr(
                "Submit results to the exchange server and keep its signed receipt, or export an offline "
                "package when the server cannot be reached."
            ),
            ("department", "region", "unit", "server"),
            body,
            compact=True,
        )
        layout.addWidget(self.context_widget)
        self.tabs = QTabWidget(body)
        self.form = HuijiaoSubmitForm(self.session, self.iface.mapCanvas(), self.tabs)
        for name in FORM_WIDGETS:  # the page's widgets, as the panel's own (scripts and tests use them)
            setattr(self, name, getattr(self.form, name))
        self.refresh_layers_button.clicked.connect(self.refresh_layers)
        self.validate_button.clicked.connect(lambda: self.start_validation())
        self.submit_button.clicked.connect(lambda: self.submit())
        self.pause_button.clicked.connect(self.pause)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.export_offline_dialog)
        self.tabs.addTab(self.form, tr("Submit"))
        self.receipts = HuijiaoReceiptsWidget(self.session, self._message, self.tabs)
        self.receipts_tree, self.receipt_detail = self.receipts.tree, self.receipts.detail
        self.tabs.addTab(self.receipts, tr("Receipts"))
        self.deadlines = HuijiaoDeadlinesWidget(self.session, self.tabs)
        self.tabs.addTab(self.deadlines, tr("Deadlines"))
        self.evaluation = HuijiaoEvaluationWidget(self.session, self.tabs)
        self.tabs.addTab(self.evaluation, tr("Evaluation"))
        self.offline = HuijiaoOfflineWidget(
            self.session, self._message, self.refresh_layers, self.refresh_receipts, self.tabs
        )
        self.offline_label = self.offline.label
        self.tabs.addTab(self.offline, tr("Offline"))
        layout.addWidget(self.tabs)
        self.setWidget(body)
        self._set_running(False)
        self.apply_settings(self.settings)

    # -------------------------------------------------------------------------------------- settings
    def apply_settings(self, settings: HuijiaoSettings) -> None:
        """Show the department, region and server the panel works with."""
        self.settings = settings
        self.context_widget.apply_settings(settings)
        self.region_edit.setText(settings.region_code)
        self.form.fill_datasets()
        self.refresh_layers()
        self._set_running(self.is_busy())

    def package_region(self) -> str:
        return self.region_edit.text().strip() or self.settings.region_code

    def _state_dir(self) -> Path:
        return self.state_dir or default_state_dir()

    # settings, the state folder (receipts, pinned keys, upload states, built packages) and the client
    # factory live in the session; tests may set them on the dock
    @property
    def settings(self) -> HuijiaoSettings:
        return self.session.settings

    @settings.setter
    def settings(self, settings: HuijiaoSettings) -> None:
        self.session.settings = settings

    @property
    def state_dir(self) -> Path | None:
        return self.session.state_dir

    @state_dir.setter
    def state_dir(self, path: Path | None) -> None:
        self.session.state_dir = path

    @property
    def client_factory(self) -> Callable[[], ExchangeClient]:
        return self.session.client_factory

    @client_factory.setter
    def client_factory(self, factory: Callable[[], ExchangeClient]) -> None:
        self.session.client_factory = factory

    def _project_layers_changed(self, *_args) -> None:
        self.refresh_layers()

    def refresh_layers(self) -> None:
        self.form.refresh_layers()

    def select_layers(self, layers: list[QgsVectorLayer], dataset_id: str | None = None) -> None:
        """Check ``layers`` in the list (and pick ``dataset_id``): what the user does by hand."""
        self.form.select_layers(layers, dataset_id)

    def selected_layers(self) -> list[QgsVectorLayer]:
        return self.form.selected_layers()

    def _zoom_to_finding(self, item: QTreeWidgetItem, column: int = 0) -> None:
        self.form._zoom_to_finding(item, column)

    def _message(self, text: str, level: int = Qgis.MessageLevel.Info) -> None:
        self.iface.messageBar().pushMessage(tr("Result submission"), text, level=level, duration=8)

    # ------------------------------------------------------------------------------------ submission
    def _set_running(self, running: bool) -> None:
        self.submit_button.setEnabled(not running)
        self.validate_button.setEnabled(not running)
        self.export_button.setEnabled(not running)
        self.pause_button.setEnabled(running and (self._control is not None or self._upload is not None))
        self.cancel_button.setEnabled(running)
        pending = 0 if running else len(self.pending_packages())
        self.pending_label.setVisible(bool(pending))
        self.pending_label.setText(
            tr("{n} interrupted uploads: Submit resumes them where they stopped.").format(n=pending)
        )

    def is_busy(self) -> bool:
        """A validation, a package build or a transfer is running."""
        return getattr(self, "_task", None) is not None or getattr(self, "_upload", None) is not None

    def submit(self) -> bool:
        """Validate, build and submit in the background; the receipt appears when done. An upload that
        was paused or interrupted (also before QGIS was closed) is resumed instead. True when started;
        a validation that blocks the submission is reported when it ends."""
        if self.is_busy():
            return False
        if self.pending_packages():
            return self.resume_pending()
        self.receipt_view.clear()
        control = TransferControl()
        self._control = control

        def built(package: Path | None) -> None:
            if package is None or control.canceled:
                if control.canceled:
                    self.progress_bar.setValue(0)
                    self.progress_label.setText(tr("Canceled."))
                return
            self._submit_file(package, control)

        if not self.start_package(built):
            self._control = None
            self._set_running(self.is_busy())
            return False
        return True

    def pending_packages(self) -> list[Path]:
        """Packages whose upload to the configured server was interrupted and can be resumed."""
        from huijiao_plugin.core.exchange.client import UploadStateStore
        from huijiao_plugin.core.exchange.receipts import normalize_server_url

        out = []
        for state in UploadStateStore(self._state_dir() / "uploads").pending():
            path = Path(str(state.get("package_path", "")))
            server = normalize_server_url(str(state.get("server_url", "")))
            if path.is_file() and server == normalize_server_url(self.settings.server_url):
                out.append(path)
        return out

    def resume_pending(self) -> bool:
        pending = self.pending_packages()
        if not pending or self.is_busy():
            return False
        self._message(tr("Resuming the interrupted upload of {name}.").format(name=pending[0].name))
        return self._submit_file(pending[0])

    def _submit_file(self, package: Path, control: TransferControl | None = None) -> bool:
        try:
            client = self.client_factory()
        except ExchangeError as error:
            self._message(str(error), Qgis.MessageLevel.Critical)
            return False
        self.last_package = package
        self.receipt_view.clear()
        self.progress_bar.setValue(0)
        self.progress_label.setText(tr("Connecting…"))

        def work(task: ServerTask) -> SubmitResult:
            return client.submit_package(package, progress=task.report, control=task.control)

        task = UploadTask(tr("Submitting {name}").format(name=package.name), work, control=control)
        self._upload = task
        self._set_running(True)
        start_server_task(self, task, self._upload_done)
        self._timer.start()
        return True

    def _show_upload_progress(self) -> None:
        """Bytes, speed and time left of the running upload (read on the main thread, every 150 ms)."""
        task = self._upload
        if task is None:
            self._timer.stop()
            return
        done, total = task.done_bytes, task.total_bytes
        if total:
            self.progress_bar.setValue(int(1000 * done / total))
            self.progress_label.setText(
                format_progress(done, total, time.monotonic() - task.started, task.first_offset or 0)
            )

    def _upload_done(self, task: UploadTask, _ok: bool) -> None:
        if task is not self._upload:  # forgotten by unload
            return
        self._show_upload_progress()
        self._timer.stop()
        self._upload = None
        self._control = None
        self._set_running(self.is_busy())
        self._submitted(task)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block (processing events) until the running validation, package build and transfer end; for
        scripts and tests."""
        from qgis.PyQt.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout
        while self.is_busy() and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.02)
        return not self.is_busy()

    def pause(self) -> None:
        """Pause the upload; pressed while the package is still validated or built, the upload is
        registered with the server and paused at once (Submit resumes it)."""
        if self._upload is not None:
            self._upload.control.pause()
        elif self._control is not None:
            self._control.pause()

    def cancel(self) -> None:
        """Cancel the running validation, package build (no package file is left) or transfer."""
        if self._control is not None:
            self._control.cancel()
        if self._task is not None:
            try:
                self._task.cancel()
            except RuntimeError:  # the task manager already deleted it
                pass
        if self._upload is not None:
            self._upload.control.cancel()  # a real cancel: the task's own cancel() pauses

    def unload(self) -> None:
        """Called by the plugin's unload: cancel background work and forget its callbacks."""
        task, self._task = self._task, None
        if task is not None:
            try:
                task.cancel()
            except RuntimeError:  # the task manager already deleted it
                pass
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.control.pause()  # resumed by the next 提交, also after a restart
        self._timer.stop()
        for signal, connection in self._project_connections:
            try:
                signal.disconnect(connection)
            except TypeError:  # already disconnected
                pass
        self._project_connections = []

    def _submitted(self, task: ServerTask) -> None:
        error = task.exception
        if isinstance(error, TransferPausedError):
            self.progress_label.setText(tr("Paused. Press Submit to resume the upload where it stopped."))
            return
        if isinstance(error, TransferCanceledError) or (error is None and task.result is None):
            # (a task canceled before it ran: nothing was sent)
            self.progress_label.setText(tr("Canceled."))
            self.progress_bar.setValue(0)
            return
        if error is not None:
            text = str(error) if isinstance(error, (ExchangeError, ReceiptError)) else repr(error)
            self.progress_label.setText(tr("Submission failed."))
            self.receipt_view.setPlainText(text)
            self._message(text, Qgis.MessageLevel.Critical)
            return
        result: SubmitResult = task.result
        self.last_result = result
        self.session.remember_own_package(str(result.receipt.get("package_sha256") or ""))
        self.progress_bar.setValue(1000)
        self.receipt_view.setPlainText(self.describe_receipt(result.receipt, True, result.duplicate))
        if result.accepted:
            self._message(tr("Submitted and accepted; the receipt is verified."), Qgis.MessageLevel.Success)
        else:
            self._message(
                tr("The server rejected the package; see the reasons in the receipt."),
                Qgis.MessageLevel.Critical,
            )
        self.refresh_receipts()

    # ------------------------------------------------------------- the other tabs (widgets of their own)
    def describe_receipt(self, receipt: dict[str, Any], verified: bool, duplicate: bool = False) -> str:
        return self.receipts.describe(receipt, verified, duplicate)

    def refresh_receipts(self) -> None:
        self.receipts.refresh()

    def reverify_selected(self) -> bool | None:
        return self.receipts.reverify_selected()

    def refresh_deadlines(self) -> None:
        self.deadlines.refresh()

    def import_package_file(self, path: str | Path) -> ServerTask | None:
        """In a task; the loaded layers are in ``offline.last_layers`` when it has ended."""
        return self.offline.import_package_file(path)

    def register_offline_file(self, path: str | Path) -> ServerTask | None:
        """In a task; the verified receipt is in ``offline.last_result`` when it has ended."""
        return self.offline.register_offline_file(path)

    # ----------------------------------------------------------------------------------------- offline
    def start_export_offline(
        self, folder: str | Path, then: Callable[[Path | None], None] | None = None
    ) -> bool:
        """Validate, build and copy a package to ``folder`` in background tasks; ``then(copy)``."""
        return self.start_package(then, export_to=folder)

    def export_offline(self, folder: str | Path, timeout: float = 3600.0) -> Path | None:
        """Export and wait for the copy (the event loop keeps running); for scripts and tests."""
        box: list[Path | None] = []
        if not self.start_export_offline(folder, box.append):
            return None
        self.wait(timeout)
        return box[0] if box else None

    def export_offline_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, tr("Export offline package to"))
        if folder:
            self.start_export_offline(folder)

    def closeEvent(self, event) -> None:  # noqa: N802
        uploading = self._worker is not None and not self._worker.done
        if uploading or self._control is not None:
            self.pause()
            QMessageBox.information(
                self, tr("Result submission"), tr("The upload is paused; it resumes with the next Submit.")
            )
        super().closeEvent(event)
