"""Province mode of the comparison dock: a county preset over a folder of county GeoPackages or a PostGIS
source, county by county (core/province), with a row and a progress bar per county, and cancel.

The dock hands in a callable that returns the chosen preset id and its run values (the dock's parameter
widgets), so the province run uses the same preset declaration as a county run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP, QObject, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.province.engine import ProvinceConfig, ProvinceSummary, dask_available, run_province
from huijiao_plugin.core.province.output import is_postgres
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)
# state -> (English label, bar value; -1 = busy)
STATES = {
    "queued": (QT_TRANSLATE_NOOP("@default", "Queued"), 0),
    "running": (QT_TRANSLATE_NOOP("@default", "Running"), -1),
    "retry": (QT_TRANSLATE_NOOP("@default", "Retrying"), -1),
    "done": (QT_TRANSLATE_NOOP("@default", "Done"), 100),
    "skipped": (QT_TRANSLATE_NOOP("@default", "Done earlier"), 100),
    "failed": (QT_TRANSLATE_NOOP("@default", "Failed"), 0),
}


class _Relay(QObject):
    """Carries county progress from the task's thread to the widget (queued connection)."""

    county = pyqtSignal(str, str, str)


class ProvinceTask(QgsTask):
    def __init__(self, config: ProvinceConfig, relay: _Relay) -> None:
        super().__init__(tr("Province comparison"), QgsTask.Flag.CanCancel)
        self.config = config
        self.relay = relay
        self.summary: ProvinceSummary | None = None
        self.error = ""

    def run(self) -> bool:
        try:
            self.summary = run_province(self.config, self.relay.county.emit, self.isCanceled)
        except Exception as exc:  # a bad source / output must end the task, not QGIS
            log.exception("province run failed")
            self.error = str(exc)
            return False
        return not self.summary.canceled


class WdgProvinceRun(QWidget):
    finished = pyqtSignal()

    def __init__(
        self, run_values: Callable[[], tuple[str, dict[str, Any]]], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.run_values = run_values
        self.task: ProvinceTask | None = None
        self.rows: dict[str, int] = {}
        self.summary: ProvinceSummary | None = None
        self.relay = _Relay(self)
        self.relay.county.connect(self.set_county, Qt.ConnectionType.QueuedConnection)

        self.source_edit = QLineEdit(self)
        self.source_edit.setPlaceholderText(tr("Folder of county GeoPackages, or postgresql://…?schema=…"))
        self.source_button = QPushButton("…", self)
        self.source_button.clicked.connect(self._browse_source)
        self.output_edit = QLineEdit(self)
        self.output_edit.setPlaceholderText(
            tr("Output GeoPackage, or postgresql://…?schema=… (re-run to resume)")
        )
        self.output_button = QPushButton("…", self)
        self.output_button.clicked.connect(self._browse_output)
        self.workers_spin = QSpinBox(self)
        self.workers_spin.setRange(1, 256)
        self.workers_spin.setValue(os.cpu_count() or 1)
        self.scheduler_edit = QLineEdit(self)
        self.scheduler_edit.setPlaceholderText(tr("Dask scheduler address (empty = this computer)"))
        self.scheduler_edit.setEnabled(dask_available())
        if not dask_available():
            self.scheduler_edit.setToolTip(tr("Install dask[distributed] to use a Dask cluster."))

        form = QFormLayout()
        for label, edit, button in (
            (tr("Source"), self.source_edit, self.source_button),
            (tr("Output"), self.output_edit, self.output_button),
        ):
            row = QHBoxLayout()
            row.addWidget(edit)
            row.addWidget(button)
            form.addRow(label, row)
        form.addRow(tr("Worker processes"), self.workers_spin)
        form.addRow(tr("Dask scheduler"), self.scheduler_edit)

        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels([tr("County"), tr("State"), tr("Progress")])
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.start_button = QPushButton(tr("Run province"), self)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton(tr("Cancel"), self)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.table)
        layout.addWidget(self.status)

    # --- inputs ---------------------------------------------------------------------------------------------
    def _browse_source(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, tr("Folder of county GeoPackages"))
        if folder:
            self.source_edit.setText(folder)

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, tr("Province result"), "", "GeoPackage (*.gpkg)")
        if path:
            self.output_edit.setText(path)

    # --- running --------------------------------------------------------------------------------------------
    def start(self) -> None:
        source, output = self.source_edit.text().strip(), self.output_edit.text().strip()
        if not source or not output:
            self.status.setText(tr("Choose a source and an output GeoPackage."))
            return
        preset, values = self.run_values()
        config = ProvinceConfig(
            preset=preset,
            source=source,
            output=output,
            values=values,
            workers=self.workers_spin.value(),
            scheduler=self.scheduler_edit.text().strip(),
            # the workbook beside a GeoPackage output (a PostgreSQL output holds the same statistics table)
            xlsx="" if is_postgres(output) else os.path.splitext(output)[0] + ".xlsx",
        )
        self.table.setRowCount(0)
        self.rows.clear()
        self.summary = None
        self.status.setText(tr("Running…"))
        self.task = ProvinceTask(config, self.relay)
        self.task.taskCompleted.connect(self._ended)
        self.task.taskTerminated.connect(self._ended)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def unload(self) -> None:
        """The dock's unload: stop a running province run and drop the progress connection."""
        self.cancel()
        try:
            self.relay.county.disconnect(self.set_county)
        except TypeError:  # already disconnected
            pass

    def set_county(self, code: str, state: str, message: str) -> None:
        """One county's state: a row per county, its bar busy while running, full when done."""
        if code not in self.rows:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self.table.setItem(row, 0, QTableWidgetItem(code))
            self.table.setItem(row, 1, QTableWidgetItem(""))
            bar = QProgressBar(self.table)
            bar.setRange(0, 100)
            self.table.setCellWidget(row, 2, bar)
            self.rows[code] = row
        row = self.rows[code]
        label, value = STATES.get(state, (state, 0))
        item = self.table.item(row, 1)
        item.setText(tr(label) + (f": {message.splitlines()[0]}" if state == "failed" and message else ""))
        item.setToolTip(message)
        bar = self.table.cellWidget(row, 2)
        if value < 0:
            bar.setRange(0, 0)
        else:
            bar.setRange(0, 100)
            bar.setValue(value)

    def county_state(self, code: str) -> str:
        return self.table.item(self.rows[code], 1).text()

    def _ended(self) -> None:
        task, self.task = self.task, None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task is None:
            return
        self.summary = task.summary
        if task.summary is None:
            self.status.setText(task.error or tr("Canceled."))
        elif task.summary.canceled:
            self.status.setText(tr("Canceled."))
        else:
            s = task.summary
            self.status.setText(
                tr("{done} counties done, {failed} failed.").format(
                    done=len(s.done) + len(s.skipped), failed=len(s.failed)
                )
            )
        self.finished.emit()
