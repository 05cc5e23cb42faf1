"""The 成果汇交 (result submission) panel.

Pick the layers to submit (a loaded dataset layer, or change patches with their verification results) →
pre-flight validation report (double-click a finding to zoom to its features) → "Submit" with a progress
bar (bytes, speed, time left), pause and cancel → the signed receipt, verified and kept in the local
history, which can be re-verified at any time. Further tabs: the receipt history, the deadlines of the
unit (from the server) and offline exchange (export to a folder, import, register with the server).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from qgis.core import Qgis, QgsProject, QgsVectorLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtGui import QBrush, QColor
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.exchange_client import (
    ExchangeClient,
    ExchangeError,
    SubmitResult,
    TransferCanceledError,
    TransferControl,
    TransferPausedError,
)
from huijiao_plugin.core.package import (
    LayerInput,
    PackageError,
    build_package,
    default_state_dir,
    export_package,
    import_package,
    load_imported_layers,
    package_layer_names,
)
from huijiao_plugin.core.preflight import ERROR, PreflightReport, run_preflight
from huijiao_plugin.core.receipts import KeyPinStore, ReceiptError, ReceiptStore, StoredReceipt
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.wdg_user_context import HuijiaoUserContextWidget
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

FID_ROLE = Qt.UserRole + 1
LAYER_ROLE = Qt.UserRole + 2


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:.1f}"


def format_progress(done: int, total: int, elapsed: float, start_offset: int = 0) -> str:
    """Bytes, speed and time left, e.g. "12.0 / 40.0 MB, 3.2 MB/s, 9 s left" (KB below 1 MB); the speed
    counts the bytes sent in this run only."""
    sent = max(done - start_offset, 0)
    speed = sent / elapsed if elapsed > 0 else 0.0
    left = (total - done) / speed if speed > 0 else None
    if total < 1024 * 1024:
        text = tr("{done} / {total} KB").format(done=f"{done / 1024:.1f}", total=f"{total / 1024:.1f}")
    else:
        text = tr("{done} / {total} MB, {speed} MB/s").format(
            done=_mb(done), total=_mb(total), speed=_mb(speed)
        )
    if left is not None and done < total:
        text += ", " + tr("{seconds} s left").format(seconds=int(left + 0.5))
    return text


class _Worker:
    """Runs one blocking client call in a thread; the GUI polls ``state`` with a QTimer."""

    def __init__(self, func: Callable[[TransferControl, Callable[[int, int], None]], Any]) -> None:
        self.control = TransferControl()
        self.progress = (0, 0)
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.started = time.monotonic()
        self.first_offset: int | None = None
        self._func = func
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _report(self, done: int, total: int) -> None:
        if self.first_offset is None:
            self.first_offset = done
            self.started = time.monotonic()
        self.progress = (done, total)

    def _run(self) -> None:
        try:
            self.result = self._func(self.control, self._report)
        except BaseException as error:  # reported to the user by the panel
            self.error = error
        finally:
            self.done = True

    def start(self) -> None:
        self.thread.start()


class HuijiaoSubmitDock(QgsDockWidget):
    """Result submission: validation, submission with receipt, history, deadlines, offline exchange."""

    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.setObjectName("HuijiaoSubmitDock")
        self.setWindowTitle(tr("Result submission"))
        self.settings = HuijiaoSettings.load()
        #: where receipts, pinned keys, upload states and built packages live (the QGIS profile)
        self.state_dir: Path | None = None
        #: builds the exchange client; replaced by tests with a client for a local server
        self.client_factory: Callable[[], ExchangeClient] = self._default_client
        self.report: PreflightReport | None = None
        self.last_result: SubmitResult | None = None
        self.last_package: Path | None = None
        self._worker: _Worker | None = None
        self._on_worker_done: Callable[[_Worker], None] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._poll_worker)

        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.context_widget = HuijiaoUserContextWidget(
            tr(
                "Submit results to the exchange server and keep its signed receipt, or export an offline "
                "package when the server cannot be reached."
            ),
            ("department", "region", "unit", "server"),
            body,
        )
        layout.addWidget(self.context_widget)
        self.tabs = QTabWidget(body)
        self.tabs.addTab(self._build_submit_tab(), tr("Submit"))
        self.tabs.addTab(self._build_receipts_tab(), tr("Receipts"))
        self.tabs.addTab(self._build_deadlines_tab(), tr("Deadlines"))
        self.tabs.addTab(self._build_offline_tab(), tr("Offline exchange"))
        layout.addWidget(self.tabs)
        self.setWidget(body)
        self.apply_settings(self.settings)

    # ------------------------------------------------------------------------------------------- tabs
    def _build_submit_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        form = QFormLayout()
        self.dataset_combo = QComboBox(tab)
        self.dataset_combo.setObjectName("HuijiaoSubmitDatasetCombo")
        form.addRow(tr("Dataset"), self.dataset_combo)
        self.period_edit = QLineEdit(str(_dt.date.today().year), tab)
        self.period_edit.setObjectName("HuijiaoSubmitPeriodEdit")
        self.period_edit.setToolTip(tr("A year (2025), a half-year (2025H1) or a quarter (2025Q3)."))
        form.addRow(tr("Period"), self.period_edit)
        self.region_edit = QLineEdit(tab)
        self.region_edit.setObjectName("HuijiaoSubmitRegionEdit")
        self.region_edit.setToolTip(tr("The region of the data; inside your own region (settings)."))
        form.addRow(tr("Region"), self.region_edit)
        layout.addLayout(form)
        layout.addWidget(
            QLabel(tr("Layers to submit (a dataset layer, or patches with their results):"), tab)
        )
        self.layer_list = QListWidget(tab)
        self.layer_list.setObjectName("HuijiaoSubmitLayerList")
        layout.addWidget(self.layer_list)
        row = QHBoxLayout()
        self.refresh_layers_button = QPushButton(tr("Refresh layers"), tab)
        self.refresh_layers_button.clicked.connect(self.refresh_layers)
        self.validate_button = QPushButton(tr("Validate"), tab)
        self.validate_button.setObjectName("HuijiaoSubmitValidateButton")
        self.validate_button.clicked.connect(self.validate)
        row.addWidget(self.refresh_layers_button)
        row.addWidget(self.validate_button)
        layout.addLayout(row)
        self.findings_tree = QTreeWidget(tab)
        self.findings_tree.setObjectName("HuijiaoSubmitFindings")
        self.findings_tree.setHeaderLabels([tr("Severity"), tr("Finding"), tr("Features")])
        self.findings_tree.itemDoubleClicked.connect(self._zoom_to_finding)
        self.findings_tree.setColumnWidth(0, 70)
        self.findings_tree.setColumnWidth(1, 320)
        self.findings_tree.setWordWrap(True)
        layout.addWidget(self.findings_tree)
        self.accept_warnings_check = QCheckBox(tr("I have checked the warnings and accept them"), tab)
        layout.addWidget(self.accept_warnings_check)
        row = QHBoxLayout()
        self.submit_button = QPushButton(tr("Submit"), tab)
        self.submit_button.setObjectName("HuijiaoSubmitButton")
        self.submit_button.clicked.connect(self.submit)
        self.pause_button = QPushButton(tr("Pause"), tab)
        self.pause_button.clicked.connect(self.pause)
        self.cancel_button = QPushButton(tr("Cancel"), tab)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton(tr("Export offline package…"), tab)
        self.export_button.clicked.connect(self.export_offline_dialog)
        for button in (self.submit_button, self.pause_button, self.cancel_button, self.export_button):
            row.addWidget(button)
        layout.addLayout(row)
        self.progress_bar = QProgressBar(tab)
        self.progress_bar.setObjectName("HuijiaoSubmitProgress")
        self.progress_bar.setRange(0, 1000)
        self.progress_label = QLabel(tab)
        self.progress_label.setObjectName("HuijiaoSubmitProgressLabel")
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        self.pending_label = QLabel(tab)
        self.pending_label.setObjectName("HuijiaoSubmitPendingLabel")
        self.pending_label.setWordWrap(True)
        layout.addWidget(self.pending_label)
        self.receipt_view = QTextEdit(tab)
        self.receipt_view.setObjectName("HuijiaoSubmitReceipt")
        self.receipt_view.setReadOnly(True)
        layout.addWidget(self.receipt_view)
        self._set_running(False)
        return tab

    def _build_receipts_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        self.receipts_tree = QTreeWidget(tab)
        self.receipts_tree.setObjectName("HuijiaoReceiptsTree")
        self.receipts_tree.setHeaderLabels(
            [
                tr("Submission"),
                tr("Received"),
                tr("Dataset"),
                tr("Region"),
                tr("Period"),
                tr("Status"),
                tr("sha256"),
            ]
        )
        self.receipts_tree.itemSelectionChanged.connect(self._show_selected_receipt)
        layout.addWidget(self.receipts_tree)
        row = QHBoxLayout()
        refresh = QPushButton(tr("Refresh"), tab)
        refresh.clicked.connect(self.refresh_receipts)
        self.reverify_button = QPushButton(tr("Re-verify"), tab)
        self.reverify_button.setObjectName("HuijiaoReceiptsReverifyButton")
        self.reverify_button.clicked.connect(self.reverify_selected)
        row.addWidget(refresh)
        row.addWidget(self.reverify_button)
        layout.addLayout(row)
        self.receipt_detail = QTextEdit(tab)
        self.receipt_detail.setReadOnly(True)
        layout.addWidget(self.receipt_detail)
        return tab

    def _build_deadlines_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        row = QHBoxLayout()
        self.year_spin = QSpinBox(tab)
        self.year_spin.setRange(2000, 2100)
        self.year_spin.setValue(_dt.date.today().year)
        refresh = QPushButton(tr("Load deadlines"), tab)
        refresh.setObjectName("HuijiaoDeadlinesButton")
        refresh.clicked.connect(self.refresh_deadlines)
        row.addWidget(QLabel(tr("Year"), tab))
        row.addWidget(self.year_spin)
        row.addWidget(refresh)
        layout.addLayout(row)
        self.deadlines_tree = QTreeWidget(tab)
        self.deadlines_tree.setObjectName("HuijiaoDeadlinesTree")
        self.deadlines_tree.setHeaderLabels(
            [tr("Dataset"), tr("Region"), tr("Department"), tr("Due"), tr("Status"), tr("Days left")]
        )
        layout.addWidget(self.deadlines_tree)
        self.deadlines_label = QLabel(tab)
        self.deadlines_label.setWordWrap(True)
        layout.addWidget(self.deadlines_label)
        return tab

    def _build_offline_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        text = QLabel(
            tr(
                "Offline exchange: export a package to a folder or removable disk on the Submit tab; import "
                "a package received that way here. Register an exported package with the server when the "
                "network is back, so that the evaluation counts it."
            ),
            tab,
        )
        text.setWordWrap(True)
        layout.addWidget(text)
        self.import_button = QPushButton(tr("Import package…"), tab)
        self.import_button.clicked.connect(self.import_dialog)
        self.register_button = QPushButton(tr("Register offline package with the server…"), tab)
        self.register_button.clicked.connect(self.register_dialog)
        layout.addWidget(self.import_button)
        layout.addWidget(self.register_button)
        self.offline_label = QLabel(tab)
        self.offline_label.setObjectName("HuijiaoOfflineLabel")
        self.offline_label.setWordWrap(True)
        layout.addWidget(self.offline_label)
        layout.addStretch(1)
        return tab

    # -------------------------------------------------------------------------------------- settings
    def apply_settings(self, settings: HuijiaoSettings) -> None:
        """Show the department, region and server the panel works with."""
        self.settings = settings
        self.context_widget.apply_settings(settings)
        self.region_edit.setText(settings.region_code)
        self._fill_datasets()
        self.refresh_layers()
        self._set_running(self.is_busy())

    def package_region(self) -> str:
        return self.region_edit.text().strip() or self.settings.region_code

    def _state_dir(self) -> Path:
        return self.state_dir or default_state_dir()

    def _default_client(self) -> ExchangeClient:
        return ExchangeClient.from_settings(self.settings, state_dir=self.state_dir)

    def _fill_datasets(self) -> None:
        current = self.dataset_combo.currentData()
        self.dataset_combo.clear()
        try:
            from huijiao_plugin.core.catalog import get_catalog

            catalog = get_catalog(self.settings.catalog_override_path or None)
            specs = catalog.ordered()
        except Exception as error:  # a broken catalog leaves the list empty, the panel still works
            log.warning("catalog unavailable: %s", error)
            specs = []
        for spec in specs:
            self.dataset_combo.addItem(f"{spec.name_zh} ({spec.id})", spec.id)
            self.dataset_combo.setItemData(self.dataset_combo.count() - 1, spec.layer_names, LAYER_ROLE)
        if current:
            index = self.dataset_combo.findData(current)
            if index >= 0:
                self.dataset_combo.setCurrentIndex(index)

    def refresh_layers(self) -> None:
        checked = {self.layer_list.item(i).data(Qt.UserRole) for i in range(self.layer_list.count())
                   if self.layer_list.item(i).checkState() == Qt.Checked}  # fmt: skip
        self.layer_list.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if not isinstance(layer, QgsVectorLayer) or not layer.isSpatial():
                continue
            item = QListWidgetItem(layer.name(), self.layer_list)
            item.setData(Qt.UserRole, layer.id())
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if layer.id() in checked else Qt.Unchecked)

    def select_layers(self, layers: list[QgsVectorLayer], dataset_id: str | None = None) -> None:
        """Check ``layers`` in the list (and pick ``dataset_id``): what the user does by hand."""
        self.refresh_layers()
        ids = {layer.id() for layer in layers}
        for i in range(self.layer_list.count()):
            item = self.layer_list.item(i)
            item.setCheckState(Qt.Checked if item.data(Qt.UserRole) in ids else Qt.Unchecked)
        if dataset_id:
            index = self.dataset_combo.findData(dataset_id)
            if index >= 0:
                self.dataset_combo.setCurrentIndex(index)

    def selected_layers(self) -> list[QgsVectorLayer]:
        out = []
        for i in range(self.layer_list.count()):
            item = self.layer_list.item(i)
            if item.checkState() == Qt.Checked:
                layer = QgsProject.instance().mapLayer(item.data(Qt.UserRole))
                if isinstance(layer, QgsVectorLayer):
                    out.append(layer)
        return out

    def _message(self, text: str, level: int = Qgis.Info) -> None:
        self.iface.messageBar().pushMessage(tr("Result submission"), text, level=level, duration=8)

    # ------------------------------------------------------------------------------------ validation
    def _pairs(self) -> list[tuple[str, QgsVectorLayer]]:
        layers = self.selected_layers()
        names = package_layer_names(self.dataset_combo.currentData() or "", [lyr.name() for lyr in layers])
        return list(zip(names, layers))

    def validate(self) -> PreflightReport | None:
        pairs = self._pairs()
        self.findings_tree.clear()
        if not pairs:
            self._message(tr("Check at least one layer to submit."), Qgis.Warning)
            return None
        self.report = run_preflight(
            pairs,
            self.dataset_combo.currentData() or "",
            self.settings.region_code,
            self.package_region(),
        )
        for finding in self.report.findings:
            item = QTreeWidgetItem(
                [
                    tr("Error") if finding.severity == ERROR else tr("Warning"),
                    finding.message,
                    str(finding.count),
                ]
            )
            item.setData(0, FID_ROLE, finding.fids)
            item.setData(0, LAYER_ROLE, finding.layer_id)
            item.setToolTip(1, finding.message)
            if finding.severity == ERROR:
                item.setForeground(0, QBrush(QColor("#c0392b")))
            self.findings_tree.addTopLevelItem(item)
        if not self.report.findings:
            self.findings_tree.addTopLevelItem(QTreeWidgetItem([tr("OK"), tr("No problem found."), ""]))
        return self.report

    def _zoom_to_finding(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        fids = item.data(0, FID_ROLE) or []
        layer = QgsProject.instance().mapLayer(item.data(0, LAYER_ROLE) or "")
        if not fids or not isinstance(layer, QgsVectorLayer):
            return
        layer.selectByIds([int(f) for f in fids])
        canvas = self.iface.mapCanvas()
        canvas.zoomToFeatureIds(layer, [int(f) for f in fids])
        canvas.flashFeatureIds(layer, [int(f) for f in fids])

    # ---------------------------------------------------------------------------------------- package
    def build_current_package(self, folder: Path | None = None) -> Path | None:
        """Validate and build the package of the checked layers; None (with a message) when blocked."""
        report = self.validate()
        if report is None:
            return None
        if report.errors:
            self._message(
                tr("Validation found {n} errors: fix them before submitting.").format(n=len(report.errors)),
                Qgis.Critical,
            )
            return None
        if report.warnings and not self.accept_warnings_check.isChecked():
            self._message(
                tr("Validation found {n} warnings: check them, then tick the box to accept them.").format(
                    n=len(report.warnings)
                ),
                Qgis.Warning,
            )
            return None
        out_dir = folder or (self._state_dir() / "outbox")
        out_dir.mkdir(parents=True, exist_ok=True)
        dataset_id = self.dataset_combo.currentData() or ""
        handle, name = tempfile.mkstemp(prefix=f"{dataset_id}_", suffix=".zip", dir=str(out_dir))
        os.close(handle)
        try:
            built = build_package(
                name,
                [LayerInput(layer, lname) for lname, layer in self._pairs()],
                dataset_id=dataset_id,
                region_code=self.package_region(),
                period=self.period_edit.text().strip(),
                department=self.settings.department,
                unit=self.settings.unit_name,
                validation=report.to_validation(),
            )
        except PackageError as error:
            Path(name).unlink(missing_ok=True)
            self._message(str(error), Qgis.Critical)
            return None
        self.last_package = built.path
        return built.path

    # ------------------------------------------------------------------------------------ submission
    def _set_running(self, running: bool) -> None:
        self.submit_button.setEnabled(not running)
        self.validate_button.setEnabled(not running)
        self.export_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        pending = 0 if running else len(self.pending_packages())
        self.pending_label.setVisible(bool(pending))
        self.pending_label.setText(
            tr("{n} interrupted uploads: Submit resumes them where they stopped.").format(n=pending)
        )

    def is_busy(self) -> bool:
        return self._worker is not None and not self._worker.done

    def submit(self) -> bool:
        """Validate, build and submit in the background; the receipt appears when done. An upload that
        was paused or interrupted (also before QGIS was closed) is resumed instead."""
        if self.is_busy():
            return False
        if self.pending_packages():
            return self.resume_pending()
        package = self.build_current_package()
        if package is None:
            return False
        return self._submit_file(package)

    def pending_packages(self) -> list[Path]:
        """Packages whose upload to the configured server was interrupted and can be resumed."""
        from huijiao_plugin.core.exchange_client import UploadStateStore
        from huijiao_plugin.core.receipts import normalize_server_url

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

    def _submit_file(self, package: Path) -> bool:
        try:
            client = self.client_factory()
        except ExchangeError as error:
            self._message(str(error), Qgis.Critical)
            return False
        self.last_package = package
        self.receipt_view.clear()
        self.progress_bar.setValue(0)
        self.progress_label.setText(tr("Connecting…"))

        def work(control: TransferControl, report: Callable[[int, int], None]) -> SubmitResult:
            return client.submit_package(package, progress=report, control=control)

        self._start(work, self._submitted)
        return True

    def _start(self, func: Callable[..., Any], on_done: Callable[[_Worker], None]) -> None:
        self._worker = _Worker(func)
        self._on_worker_done = on_done
        self._set_running(True)
        self._worker.start()
        self._timer.start()

    def _poll_worker(self) -> None:
        worker = self._worker
        if worker is None:
            self._timer.stop()
            return
        done, total = worker.progress
        if total:
            self.progress_bar.setValue(int(1000 * done / total))
            self.progress_label.setText(
                format_progress(done, total, time.monotonic() - worker.started, worker.first_offset or 0)
            )
        if worker.done:
            self._timer.stop()
            self._set_running(False)
            callback = self._on_worker_done
            self._on_worker_done = None
            if callback is not None:
                callback(worker)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block (processing events) until the running transfer ends; for scripts and tests."""
        from qgis.PyQt.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout
        while self._worker is not None and not self._worker.done and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.02)
        self._poll_worker()
        return self._worker is None or self._worker.done

    def pause(self) -> None:
        if self._worker is not None:
            self._worker.control.pause()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.control.cancel()

    def _submitted(self, worker: _Worker) -> None:
        error = worker.error
        if isinstance(error, TransferPausedError):
            self.progress_label.setText(tr("Paused. Press Submit to resume the upload where it stopped."))
            return
        if isinstance(error, TransferCanceledError):
            self.progress_label.setText(tr("Canceled."))
            self.progress_bar.setValue(0)
            return
        if error is not None:
            text = str(error) if isinstance(error, (ExchangeError, ReceiptError)) else repr(error)
            self.progress_label.setText(tr("Submission failed."))
            self.receipt_view.setPlainText(text)
            self._message(text, Qgis.Critical)
            return
        result: SubmitResult = worker.result
        self.last_result = result
        self.progress_bar.setValue(1000)
        self.receipt_view.setPlainText(self.describe_receipt(result.receipt, True, result.duplicate))
        if result.accepted:
            self._message(tr("Submitted and accepted; the receipt is verified."), Qgis.Success)
        else:
            self._message(
                tr("The server rejected the package; see the reasons in the receipt."), Qgis.Critical
            )
        self.refresh_receipts()

    @staticmethod
    def describe_receipt(receipt: dict[str, Any], verified: bool, duplicate: bool = False) -> str:
        from huijiao_plugin.core.receipts import receipt_reasons

        status = receipt.get("status", "")
        lines = [
            tr("Receipt {id}").format(id=receipt.get("submission_id", "")),
            tr("Server time: {time}").format(time=receipt.get("server_time", "")),
            tr("Dataset: {dataset}  Region: {region}  Period: {period}").format(
                dataset=receipt.get("dataset_id", ""),
                region=receipt.get("region_code", ""),
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

    # ---------------------------------------------------------------------------------------- history
    def _receipt_store(self) -> ReceiptStore:
        return ReceiptStore(self._state_dir() / "receipts.sqlite")

    def refresh_receipts(self) -> None:
        self.receipts_tree.clear()
        try:
            stored = self._receipt_store().all()
        except Exception as error:  # an unreadable history must not break the panel
            log.warning("receipt history unreadable: %s", error)
            return
        for receipt in stored:
            item = QTreeWidgetItem(
                [
                    receipt.submission_id,
                    receipt.received_at,
                    receipt.dataset_id,
                    receipt.region_code,
                    receipt.period,
                    tr("accepted") if receipt.accepted else tr("rejected"),
                    receipt.package_sha256[:16],
                ]
            )
            item.setData(0, Qt.UserRole, (receipt.server_url, receipt.submission_id))
            self.receipts_tree.addTopLevelItem(item)

    def _selected_receipt(self) -> StoredReceipt | None:
        items = self.receipts_tree.selectedItems()
        if not items:
            return None
        server_url, submission_id = items[0].data(0, Qt.UserRole)
        return self._receipt_store().get(server_url, submission_id)

    def _show_selected_receipt(self) -> None:
        stored = self._selected_receipt()
        if stored is not None:
            self.receipt_detail.setPlainText(self.describe_receipt(stored.receipt, True))

    def reverify_selected(self) -> bool | None:
        stored = self._selected_receipt()
        if stored is None:
            return None
        pins = KeyPinStore(self._state_dir() / "server_keys.json")
        ok = self._receipt_store().verify(stored, pins)
        self.receipt_detail.setPlainText(self.describe_receipt(stored.receipt, ok))
        if ok:
            self._message(tr("The receipt signature is valid."), Qgis.Success)
        else:
            self._message(
                tr("The receipt was altered or is not signed by the pinned server key."), Qgis.Critical
            )
        return ok

    # -------------------------------------------------------------------------------------- deadlines
    def refresh_deadlines(self) -> None:
        self.deadlines_tree.clear()
        try:
            client = self.client_factory()
            client.max_retries = 1  # an interactive call: fail fast instead of retrying in the GUI thread
            body = client.deadlines(self.year_spin.value())
        except ExchangeError as error:
            self.deadlines_label.setText(str(error))
            return
        overdue = 0
        names = {
            self.dataset_combo.itemData(i): self.dataset_combo.itemText(i)
            for i in range(self.dataset_combo.count())
        }
        status_text = {
            "met": tr("met"),
            "late": tr("late"),
            "overdue": tr("overdue"),
            "pending": tr("pending"),
        }
        for entry in body.get("items", []):
            if entry.get("department") != self.settings.department:
                continue
            status = str(entry.get("status", ""))
            item = QTreeWidgetItem(
                [
                    names.get(
                        entry.get("dataset_id"), entry.get("dataset_name_zh") or entry.get("dataset_id", "")
                    ),
                    str(entry.get("region_code", "")),
                    str(entry.get("department", "")),
                    str(entry.get("due_date", "")),
                    status_text.get(status, status),
                    str(entry.get("days_left", "")),
                ]
            )
            if status == "overdue":
                overdue += 1
                for column in range(6):
                    item.setForeground(column, QBrush(QColor("#c0392b")))
            self.deadlines_tree.addTopLevelItem(item)
        self.deadlines_label.setText(
            tr("{n} obligations, {overdue} overdue.").format(
                n=self.deadlines_tree.topLevelItemCount(), overdue=overdue
            )
        )

    # ----------------------------------------------------------------------------------------- offline
    def export_offline(self, folder: str | Path) -> Path | None:
        package = self.build_current_package()
        if package is None:
            return None
        try:
            target = export_package(package, folder)
        except PackageError as error:
            self._message(str(error), Qgis.Critical)
            return None
        self._message(tr("Package copied to {path}").format(path=target), Qgis.Success)
        return target

    def export_offline_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, tr("Export offline package to"))
        if folder:
            self.export_offline(folder)

    def import_package_file(self, path: str | Path) -> list[QgsVectorLayer]:
        from huijiao_plugin.core.package import ImportRegistry

        try:
            imported = import_package(
                path,
                self._state_dir() / "imported",
                ImportRegistry(self._state_dir() / "imported_packages.json"),
            )
            layers = load_imported_layers(imported)
        except PackageError as error:
            self.offline_label.setText(str(error))
            self._message(str(error), Qgis.Warning)
            return []
        self.offline_label.setText(
            tr("Imported {dataset} {region} {period}: {n} layers loaded.").format(
                dataset=imported.manifest.get("dataset_id"),
                region=imported.manifest.get("region_code"),
                period=imported.manifest.get("period"),
                n=len(layers),
            )  # fmt: skip
        )
        self.refresh_layers()
        return layers

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, tr("Import package"), "", tr("Exchange package (*.zip)"))
        if path:
            self.import_package_file(path)

    def register_offline_file(self, path: str | Path) -> SubmitResult | None:
        try:
            client = self.client_factory()
            client.max_retries = 1
            result = client.register_offline(path)
        except (ExchangeError, ReceiptError) as error:
            self.offline_label.setText(str(error))
            self._message(str(error), Qgis.Critical)
            return None
        self.offline_label.setText(self.describe_receipt(result.receipt, True, result.duplicate))
        self.refresh_receipts()
        return result

    def register_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, tr("Register offline package"), "", tr("Exchange package (*.zip)")
        )
        if path:
            self.register_offline_file(path)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.is_busy():
            self.pause()
            QMessageBox.information(
                self, tr("Result submission"), tr("The upload is paused; it resumes with the next Submit.")
            )
        super().closeEvent(event)
