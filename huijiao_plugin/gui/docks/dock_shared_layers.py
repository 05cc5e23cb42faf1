"""The 共享图层 (shared layers) panel: the shared-data catalog as a tree with the state of every dataset,
recognition of folders / files / PostGIS schemas, the styled 一张图 in one click and the standard check.

The second tab, 服务器共享数据, lists what the other department has shared on the exchange server for the
user's region (the newest version per dataset and region), downloads a package in a QgsTask (progress, cancel,
HTTP Range resume, sha256 check, local cache), loads it styled into the 一张图 through
:func:`huijiao_plugin.core.package.load_imported_layers` (groups, order and styles of
:mod:`huijiao_plugin.core.one_map`) and polls the server's feed (every few minutes and on demand, long-polling
in a task) with a message-bar notification when new data has arrived."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsProject,
    QgsProviderRegistry,
    QgsTask,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QSortFilterProxyModel, Qt, QTimer
from qgis.PyQt.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.catalog import DEPARTMENT_GROUPS, DEPARTMENT_ORDER, Catalog, catalog_from_settings
from huijiao_plugin.core.checks import CheckReport, Finding
from huijiao_plugin.core.exchange_client import (
    ExchangeClient,
    ExchangeError,
    TransferCanceledError,
    TransferControl,
)
from huijiao_plugin.core.one_map import (
    DATASET_PROPERTY,
    SOURCE_PROPERTY,
    YEAR_PROPERTY,
    add_one_map_layers,
    department_group,
    layer_title,
    one_map_items,
    prepare_layer,
    set_project_crs,
)
from huijiao_plugin.core.package import (
    PACKAGE_PROPERTY,
    ImportedPackage,
    PackageError,
    default_state_dir,
    load_imported_layers,
    open_package,
)
from huijiao_plugin.core.recognition import (
    Recognition,
    best_by_dataset,
    other_years,
    recognize_path,
    recognize_postgres,
)
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.core.shared_layers_tasks import CheckDatasetsTask, OpenLayersTask
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

STATE_LOADED = "loaded"
STATE_FOUND = "found"
STATE_MISSING = "missing"
ROLE_DATASET = Qt.ItemDataRole.UserRole + 1
ROLE_SORT = Qt.ItemDataRole.UserRole + 2

COL_DATASET, COL_STATE, COL_YEAR, COL_SOURCE = range(4)
# the server tab
SRV_DATASET, SRV_REGION, SRV_PERIOD, SRV_VERSION, SRV_DEPARTMENT, SRV_SIZE, SRV_DATE, SRV_STATE = range(8)
ROLE_VERSION = Qt.ItemDataRole.UserRole + 3
FEED_INTERVAL_MS = 5 * 60 * 1000  # poll the feed every 5 minutes ...
FEED_FIRST_MS = 10 * 1000  # ... and once shortly after start
FEED_WAIT_SECONDS = 20.0  # long-poll time of a timed poll (in the task, never in the GUI thread)
FEED_STEP_SECONDS = 5.0  # one request of a long poll waits at most this long
FEED_MAX_MESSAGES = 3  # more new versions at once are summarised in one message
FINDING_COLUMNS = ("dataset", "severity", "rule", "field", "value", "count", "message")


def _state_text(state: str) -> str:
    return {STATE_LOADED: tr("loaded"), STATE_FOUND: tr("found"), STATE_MISSING: tr("missing")}[state]


def _severity_text(severity: str) -> str:
    return tr("error") if severity == "error" else tr("warning")


def _size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return tr("{value} MB").format(value=f"{size / 1024 / 1024:.1f}")
    return tr("{value} KB").format(value=f"{size / 1024:.1f}")


def newest_per_dataset(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest version per (dataset, region): latest period, then highest version number."""

    def rank(v: dict[str, Any]) -> tuple[str, str, int, str]:
        period = str(v.get("period", ""))
        return period[:4], period, int(v.get("version") or 0), str(v.get("created_at", ""))

    best: dict[tuple[str, str], dict[str, Any]] = {}
    for version in versions:
        key = (str(version.get("dataset_id", "")), str(version.get("region_code", "")))
        if key not in best or rank(version) > rank(best[key]):
            best[key] = version
    return sorted(best.values(), key=lambda v: (v.get("dataset_id", ""), v.get("region_code", "")))


class ServerTask(QgsTask):
    """One blocking exchange-server call (list, download, feed) in the task manager's thread.

    ``func(task)`` returns the result; it reports progress with :meth:`report` and is canceled through
    ``task.control`` (the client stops after the current block). The error is kept as a user message."""

    def __init__(self, description: str, func: Callable[[ServerTask], Any]):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.func = func
        self.control = TransferControl()
        self.result: Any = None
        self.error = ""
        self.canceled_by_user = False
        self.done_bytes = 0
        self.total_bytes = 0
        self.started = time.monotonic()
        self.first_offset: int | None = None

    def report(self, done: int, total: int) -> None:
        if self.first_offset is None:
            self.first_offset = done
            self.started = time.monotonic()
        self.done_bytes, self.total_bytes = done, total
        if total > 0:
            self.setProgress(100.0 * done / total)

    def run(self) -> bool:
        try:
            self.result = self.func(self)
            return True
        except TransferCanceledError:
            self.canceled_by_user = True
            self.error = tr("The download was canceled.")
        except (ExchangeError, PackageError) as error:
            self.error = str(error)
        except Exception as error:  # noqa: BLE001 - a task must never raise; shown to the user
            log.exception("exchange task %s failed", self.description())
            self.error = str(error)
        return False

    def cancel(self) -> None:
        self.canceled_by_user = True
        self.control.cancel()
        super().cancel()


class HuijiaoSharedLayersDock(QgsDockWidget):
    """Catalog tree grouped by department; scan, load 一张图, check and the findings table."""

    def __init__(self, iface, session: Session | None = None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.session = session if session is not None else Session.load()
        self.setObjectName("HuijiaoSharedLayersDock")
        self.setWindowTitle(tr("Shared layers"))
        self.catalog: Catalog = catalog_from_settings()
        self.recognitions: list[Recognition] = []
        self.found: dict[str, Recognition] = {}
        self.older: dict[str, list[Recognition]] = {}
        self.reports: list[CheckReport] = []
        self._findings: list[tuple[str, Finding]] = []
        self._finding_reports: list[CheckReport] = []
        self.task: QgsTask | None = None
        self.server_versions: list[dict[str, Any]] = []
        self.server_task: ServerTask | None = None
        self.feed_task: ServerTask | None = None
        self.last_loaded: list[QgsVectorLayer] = []
        self.last_feed_items: list[dict[str, Any]] = []
        self._client: ExchangeClient | None = None
        self._build()
        self.refresh_tree()
        project = QgsProject.instance()
        project.layersAdded.connect(self._project_changed)
        project.layersRemoved.connect(self._project_changed)
        self.feed_timer = QTimer(self)
        self.feed_timer.setInterval(FEED_INTERVAL_MS)
        self.feed_timer.timeout.connect(self._timed_poll)  # a bound method: never called after deletion
        self.feed_timer.start()
        self.first_feed_timer = QTimer(self)
        self.first_feed_timer.setSingleShot(True)
        self.first_feed_timer.timeout.connect(self._timed_poll)
        self.first_feed_timer.start(FEED_FIRST_MS)

    # ---- UI ------------------------------------------------------------------------------------------------
    def _build(self):
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.scan_button = QToolButton(body)
        self.scan_button.setObjectName("HuijiaoScanButton")
        self.scan_button.setText(tr("Scan folder or file…"))
        self.scan_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.scan_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        menu = QMenu(self.scan_button)
        menu.addAction(tr("Scan a folder…"), self._ask_folder)
        menu.addAction(tr("Scan a file or FileGDB…"), self._ask_file)
        self.scan_button.setMenu(menu)
        self.scan_button.clicked.connect(self._ask_folder)
        self.pg_button = QPushButton(tr("From PostGIS connection…"), body)
        self.pg_button.setObjectName("HuijiaoPostgisButton")
        self.pg_button.clicked.connect(self._ask_postgres)
        bar.addWidget(self.scan_button)
        bar.addWidget(self.pg_button)
        layout.addLayout(bar)
        bar2 = QHBoxLayout()
        self.load_button = QPushButton(tr("Load 一张图"), body)
        self.load_button.setObjectName("HuijiaoLoadOneMapButton")
        self.load_button.setToolTip(tr("Load every found dataset, styled, into the groups by department"))
        self.load_button.clicked.connect(lambda: self.load_one_map())
        self.check_button = QPushButton(tr("Check"), body)
        self.check_button.setObjectName("HuijiaoCheckButton")
        self.check_button.setToolTip(
            tr("Check the selected dataset (or every found dataset) against the standard")
        )
        self.check_button.clicked.connect(lambda: self.check())
        self.cancel_button = QPushButton(tr("Cancel"), body)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        bar2.addWidget(self.load_button)
        bar2.addWidget(self.check_button)
        bar2.addWidget(self.cancel_button)
        layout.addLayout(bar2)

        splitter = QSplitter(Qt.Orientation.Vertical, body)
        self.tree = QTreeWidget(splitter)
        self.tree.setObjectName("HuijiaoCatalogTree")
        self.tree.setHeaderLabels([tr("Dataset"), tr("State"), tr("Year"), tr("Source")])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.header().setSectionResizeMode(COL_DATASET, QHeaderView.ResizeMode.ResizeToContents)
        self.findings_model = QStandardItemModel(0, len(FINDING_COLUMNS), self)
        self.findings_model.setHorizontalHeaderLabels(
            [
                tr("Dataset"),
                tr("Severity"),
                tr("Rule"),
                tr("Field"),
                tr("Value"),
                tr("Count"),
                tr("What to fix"),
            ]
        )
        self.findings_proxy = QSortFilterProxyModel(self)
        self.findings_proxy.setSourceModel(self.findings_model)
        self.findings_proxy.setSortRole(ROLE_SORT)
        findings_box = QWidget(splitter)
        fl = QVBoxLayout(findings_box)
        fl.setContentsMargins(0, 0, 0, 0)
        self.findings_view = QTableView(findings_box)
        self.findings_view.setObjectName("HuijiaoFindingsTable")
        self.findings_view.setModel(self.findings_proxy)
        self.findings_view.setSortingEnabled(True)
        self.findings_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.findings_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.findings_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.findings_view.horizontalHeader().setStretchLastSection(True)
        self.findings_view.clicked.connect(self._finding_clicked)
        fl.addWidget(self.findings_view)
        row = QHBoxLayout()
        self.summary_label = QLabel(findings_box)
        self.export_button = QPushButton(tr("Export xlsx…"), findings_box)
        self.export_button.setObjectName("HuijiaoExportFindingsButton")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._ask_export)
        row.addWidget(self.summary_label, 1)
        row.addWidget(self.export_button)
        fl.addLayout(row)
        splitter.addWidget(self.tree)
        splitter.addWidget(findings_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout.addWidget(splitter, 1)
        self.progress = QProgressBar(body)
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.status_label = QLabel(body)
        self.status_label.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("HuijiaoSharedLayersTabs")
        self.tabs.addTab(body, tr("Catalog"))
        self.tabs.addTab(self._build_server_tab(), tr("Shared data from the server"))
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setWidget(self.tabs)

    # ---- state --------------------------------------------------------------------------------------------
    def loaded_layers(self, dataset_id: str) -> list[QgsVectorLayer]:
        return [
            layer
            for layer in QgsProject.instance().mapLayers().values()
            if isinstance(layer, QgsVectorLayer) and layer.customProperty(DATASET_PROPERTY) == dataset_id
        ]

    def layer_of(self, dataset_id: str) -> QgsVectorLayer | None:
        """The project layer of what the panel works on for a dataset: the found source when it is loaded
        (another loaded layer of the same dataset is not it), else the first loaded layer of the dataset."""
        layers = self.loaded_layers(dataset_id)
        rec = self.found.get(dataset_id)
        if rec is None:
            return layers[0] if layers else None
        for layer in layers:
            if layer.customProperty(SOURCE_PROPERTY) == rec.source or layer.source() == rec.source:
                return layer
        return None

    def state(self, dataset_id: str) -> str:
        if self.layer_of(dataset_id) is not None:
            return STATE_LOADED
        if dataset_id in self.found:
            return STATE_FOUND
        return STATE_MISSING

    def _year(self, dataset_id: str):
        rec = self.found.get(dataset_id)
        if rec is not None and rec.year:
            return rec.year
        for layer in self.loaded_layers(dataset_id):
            year = layer.customProperty(YEAR_PROPERTY)
            if year:
                return int(year)
        return None

    def _project_changed(self, *args):
        if sip.isdeleted(self) or sip.isdeleted(self.tree):  # the project outlives the panel
            return
        self.refresh_tree()
        self._refresh_server_states()

    def refresh_tree(self):
        expanded = {
            self.tree.topLevelItem(i).text(0): self.tree.topLevelItem(i).isExpanded()
            for i in range(self.tree.topLevelItemCount())
        }
        self.tree.clear()
        colors = {
            STATE_LOADED: QColor("#1a7f37"),
            STATE_FOUND: QColor("#0550ae"),
            STATE_MISSING: QColor("#8c959f"),
        }
        by_dep = self.catalog.by_department()
        for dep in list(DEPARTMENT_ORDER) + [d for d in by_dep if d not in DEPARTMENT_ORDER]:
            specs = by_dep.get(dep, [])
            if not specs:
                continue
            top = QTreeWidgetItem([DEPARTMENT_GROUPS.get(dep, dep)])
            top.setFirstColumnSpanned(False)
            self.tree.addTopLevelItem(top)
            for spec in specs:
                state = self.state(spec.id)
                rec = self.found.get(spec.id)
                year = self._year(spec.id)
                source = ""
                if rec is not None:
                    source = "{} ({})".format(rec.layer_name, os.path.basename(rec.source.split("|")[0]))
                item = QTreeWidgetItem(
                    [spec.name_zh, _state_text(state), str(year) if year else "", source if rec else ""]
                )
                item.setData(COL_DATASET, ROLE_DATASET, spec.id)
                item.setData(COL_STATE, ROLE_DATASET, state)
                item.setForeground(COL_STATE, QBrush(colors[state]))
                tip = f"{spec.name_en} ({spec.id})"
                if rec is not None:
                    tip += (
                        "\n"
                        + tr("Confidence {value:.2f}").format(value=rec.confidence)
                        + "\n"
                        + "\n".join(rec.evidence)
                    )
                    for old in self.older.get(spec.id, []):
                        tip += "\n" + tr("Also year {year}: {source}").format(
                            year=old.year, source=old.source
                        )
                item.setToolTip(COL_DATASET, tip)
                if rec is not None:
                    item.setToolTip(COL_SOURCE, rec.source)
                top.addChild(item)
            top.setExpanded(expanded.get(top.text(0), True))
        unplaced = [r for r in self.recognitions if r.dataset_id is None]
        if unplaced:
            top = QTreeWidgetItem([tr("Unplaced layers")])
            self.tree.addTopLevelItem(top)
            for r in unplaced:
                item = QTreeWidgetItem([r.layer_name, "", "", os.path.basename(r.source.split("|")[0])])
                item.setToolTip(COL_DATASET, "\n".join(r.evidence))
                item.setToolTip(COL_SOURCE, r.source)
                top.addChild(item)
            top.setExpanded(expanded.get(top.text(0), True))

    def dataset_item(self, dataset_id: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(COL_DATASET, ROLE_DATASET) == dataset_id:
                    return top.child(j)
        return None

    def selected_datasets(self) -> list[str]:
        return [
            item.data(COL_DATASET, ROLE_DATASET)
            for item in self.tree.selectedItems()
            if item.data(COL_DATASET, ROLE_DATASET)
        ]

    # ---- scanning -----------------------------------------------------------------------------------------
    def _ask_folder(self):
        path = QFileDialog.getExistingDirectory(self, tr("Folder with shared data"))
        if path:
            self.scan_path(path)

    def _ask_file(self):
        path, _ = QFileDialog.getOpenFileName(
            self,
            tr("File with shared data"),
            "",
            tr("Vector data (*.gpkg *.shp *.geojson *.sqlite *.gdbtable *.kml *.gml);;All files (*)"),
        )
        if path:
            if path.lower().endswith(".gdbtable"):  # a FileGDB is chosen through one of its tables
                path = os.path.dirname(path)
            self.scan_path(path)

    def _ask_postgres(self):
        md = QgsProviderRegistry.instance().providerMetadata("postgres")
        names = sorted(md.connections().keys()) if md is not None else []
        if not names:
            self._message(
                tr("No PostGIS connection is configured; add one in the Data Source Manager."),
                Qgis.MessageLevel.Warning,
            )
            return
        name, ok = QInputDialog.getItem(self, tr("PostGIS connection"), tr("Connection"), names, 0, False)
        if not ok:
            return
        try:
            schemas = md.connections()[name].schemas()
        except Exception as error:  # noqa: BLE001 - a QgsProviderConnectionException with the server's text
            self._message(tr("Cannot connect: {error}").format(error=error), Qgis.MessageLevel.Critical)
            return
        schema, ok = QInputDialog.getItem(self, tr("PostGIS connection"), tr("Schema"), schemas, 0, False)
        if ok:
            self.scan_postgres(name, schema)

    def _merge(self, results: list[Recognition]):
        sources = {r.source for r in results}
        self.recognitions = [r for r in self.recognitions if r.source not in sources] + results
        self.found = best_by_dataset(self.recognitions)
        self.older = other_years(self.recognitions)
        self.refresh_tree()
        placed = sum(1 for r in results if r.dataset_id)
        self.status_label.setText(
            tr("{layers} layers scanned: {placed} recognised, {unplaced} unplaced.").format(
                layers=len(results), placed=placed, unplaced=len(results) - placed
            )
        )

    def scan_path(self, path: str) -> list[Recognition]:
        """Recognise every layer of a folder (recursively), file or FileGDB."""
        self.catalog = catalog_from_settings()  # the override file may have changed in the settings
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            results = recognize_path(path, self.catalog)
        except (OSError, RuntimeError) as error:
            self._message(
                tr("Cannot read {path}: {error}").format(path=path, error=error), Qgis.MessageLevel.Critical
            )
            return []
        finally:
            QApplication.restoreOverrideCursor()
        self._merge(results)
        return results

    def scan_postgres(self, connection: str, schema: str) -> list[Recognition]:
        """Recognise every table of a PostGIS schema (saved connection name or postgresql:// URL)."""
        self.catalog = catalog_from_settings()
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            results = recognize_postgres(connection, schema, self.catalog)
        except Exception as error:  # noqa: BLE001 - provider connection errors carry the server message
            self._message(
                tr("Cannot read schema {schema}: {error}").format(schema=schema, error=error),
                Qgis.MessageLevel.Critical,
            )
            return []
        finally:
            QApplication.restoreOverrideCursor()
        self._merge(results)
        return results

    # ---- tasks --------------------------------------------------------------------------------------------
    def _start(self, task: QgsTask, done):
        self.task = task
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.load_button.setEnabled(False)
        self.check_button.setEnabled(False)
        task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))

        def finish(ok):
            self.progress.setVisible(False)
            self.cancel_button.setEnabled(False)
            self.load_button.setEnabled(True)
            self.check_button.setEnabled(True)
            self.task = None
            done(ok)

        task.taskCompleted.connect(lambda: finish(True))
        task.taskTerminated.connect(lambda: finish(False))
        QgsApplication.taskManager().addTask(task)

    def cancel(self):
        if self.task is not None:
            self.task.cancel()

    def is_busy(self) -> bool:
        return self.task is not None

    # ---- 一张图 -----------------------------------------------------------------------------------------
    def load_one_map(self, dataset_ids: list[str] | None = None) -> QgsTask | None:
        """Load the found datasets (default: every found one not loaded yet) styled into department groups.

        The layers are opened in a background task; names, styles, groups, order, visibility and the
        project CRS come from :mod:`huijiao_plugin.core.one_map` (as for every 一张图)."""
        if self.is_busy():
            return None
        loaded = [d for d in self.found if self.loaded_layers(d)]
        items = one_map_items(self.catalog, self.found, self.older, dataset_ids, skip=loaded)
        if not items:
            self._message(
                tr("Nothing to load: scan a folder, file or PostGIS schema first."), Qgis.MessageLevel.Info
            )
            return None
        task = OpenLayersTask(items, tr("Loading the 一张图"))
        self._start(task, lambda ok: self._add_layers(task, ok))
        return task

    def _add_layers(self, task: OpenLayersTask, ok: bool):
        project = QgsProject.instance()
        added = add_one_map_layers(project, task.layers, self.found, self.catalog)
        if added:
            set_project_crs(project, added)
            self._zoom_to(added)
        for _dataset_id, source in task.errors:
            self._message(tr("Cannot open {source}").format(source=source), Qgis.MessageLevel.Warning)
        self.refresh_tree()
        self.status_label.setText(tr("{count} layers loaded into the 一张图.").format(count=len(added)))

    # ---- checks -------------------------------------------------------------------------------------------
    def check(self, dataset_ids: list[str] | None = None) -> QgsTask | None:
        """Check the selected (or every found) dataset in a background task; results go to the table."""
        if self.is_busy():
            return None
        ids = (
            dataset_ids
            or self.selected_datasets()
            or [d for d in self.catalog.dataset_ids() if d in self.found]
        )
        items = []
        labels: dict[str, str] = {}
        for d in ids:
            rec = self.found.get(d)
            layer = self.layer_of(d)
            if rec is None:
                if layer is None:
                    continue
                rec = Recognition(
                    source=layer.source(),
                    provider=layer.providerType(),
                    layer_name=layer.name(),
                    dataset_id=d,
                    confidence=1.0,
                    evidence=[],
                    field_mapping={},
                )
            items.append((d, rec))
            # the messages name the layer as the Layers panel does (or will, once loaded)
            spec = self.catalog.datasets.get(d)
            if layer is not None:
                labels[d] = layer.name()
            else:
                labels[d] = layer_title(spec, rec) if spec is not None else rec.layer_name
        if not items:
            self._message(tr("Nothing to check: scan or load the shared data first."), Qgis.MessageLevel.Info)
            return None
        task = CheckDatasetsTask(items, self.catalog, tr("Checking shared data"), labels)
        self._start(task, lambda ok: self._show_reports(task, ok))
        return task

    def _show_reports(self, task: CheckDatasetsTask, ok: bool):
        if not ok:
            self.status_label.setText(tr("Check cancelled."))
            return
        self.set_reports(task.reports)
        for dataset_id, error in task.errors:
            self._message(f"{dataset_id}: {error}", Qgis.MessageLevel.Warning)

    def set_reports(self, reports: list[CheckReport]):
        self.reports = list(reports)
        for report in self.reports:  # a finding points at the checked layer, by id (loaded or not yet)
            layer = self.layer_of(report.dataset_id)
            report.layer_id = report.layer_id or (layer.id() if layer is not None else "")
        self._findings = [(r.dataset_id, f) for r in self.reports for f in r.findings]
        self._finding_reports = [r for r in self.reports for _f in r.findings]
        model = self.findings_model
        model.removeRows(0, model.rowCount())
        for index, (dataset_id, f) in enumerate(self._findings):
            spec = self.catalog.datasets.get(dataset_id)
            values = [
                (spec.name_zh if spec else dataset_id, dataset_id),
                (_severity_text(f.severity), 0 if f.severity == "error" else 1),
                (f.rule_id, f.rule_id),
                (f.field, f.field),
                (f.value, f.value),
                (str(f.count), f.count),
                (f.message_zh, f.message_zh),
            ]
            row = []
            for text, key in values:
                item = QStandardItem(text)
                item.setData(key, ROLE_SORT)
                item.setData(index, ROLE_DATASET)
                item.setToolTip(f.message_zh)
                row.append(item)
            if f.severity == "error":
                row[1].setForeground(QBrush(QColor("#cf222e")))
            else:
                row[1].setForeground(QBrush(QColor("#9a6700")))
            model.appendRow(row)
        self.findings_view.resizeColumnsToContents()
        errors = sum(r.error_count for r in self.reports)
        warnings = sum(r.warning_count for r in self.reports)
        self.summary_label.setText(
            tr("{datasets} datasets checked: {errors} errors, {warnings} warnings").format(
                datasets=len(self.reports), errors=errors, warnings=warnings
            )
        )
        self.export_button.setEnabled(bool(self.reports))
        self.status_label.clear()

    def _row_index(self, proxy_row: int) -> int:
        source = self.findings_proxy.mapToSource(self.findings_proxy.index(proxy_row, 0))
        return self.findings_model.item(source.row(), 0).data(ROLE_DATASET)

    def finding_at(self, proxy_row: int) -> tuple[str, Finding]:
        return self._findings[self._row_index(proxy_row)]

    def _finding_clicked(self, proxy_index):
        self.show_finding(proxy_index.row())

    def show_finding(self, proxy_row: int) -> QgsVectorLayer | None:
        """Select the features of the finding in its layer (loaded if needed) and zoom to them."""
        dataset_id, finding = self.finding_at(proxy_row)
        if not finding.feature_ids:
            return None
        report = self._finding_reports[self._row_index(proxy_row)]
        layer = QgsProject.instance().mapLayer(report.layer_id) if report.layer_id else None
        if not isinstance(layer, QgsVectorLayer) and dataset_id in self.found:
            rec = self.found[dataset_id]  # the checked source is not loaded yet: load that one
            layer = rec.make_layer()
            spec = prepare_layer(layer, dataset_id, rec, self.catalog)
            QgsProject.instance().addMapLayer(layer, False)
            department_group(QgsProject.instance(), spec).insertLayer(0, layer)
            report.layer_id = layer.id()
        if not isinstance(layer, QgsVectorLayer):
            return None
        layer.selectByIds(finding.feature_ids)
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is not None and layer.selectedFeatureCount():
            canvas.zoomToSelected(layer)
            canvas.refresh()
        return layer

    def _ask_export(self):
        path, _ = QFileDialog.getSaveFileName(self, tr("Export findings"), "", tr("Excel workbook (*.xlsx)"))
        if path:
            self.export_xlsx(path)

    def export_xlsx(self, path: str) -> str | None:
        from huijiao_plugin.core.xlsx import XlsxError, write_table

        headers = ["数据集", "图层", "严重性", "规则", "字段", "值", "数量", "修改说明", "要素ID"]
        rows = []
        for report in self.reports:
            spec = self.catalog.datasets.get(report.dataset_id)
            for f in report.findings:
                rows.append(
                    [
                        spec.name_zh if spec else report.dataset_id,
                        report.layer_name,
                        "错误" if f.severity == "error" else "警告",
                        f.rule_id,
                        f.field,
                        f.value,
                        f.count,
                        f.message_zh,
                        ",".join(str(i) for i in f.feature_ids[:5000]),
                    ]
                )
        try:
            out = write_table(path, headers, rows, sheet_title="检查结果")
        except XlsxError as error:
            self._message(str(error), Qgis.MessageLevel.Critical)
            return None
        self._message(tr("Findings exported to {path}").format(path=out), Qgis.MessageLevel.Success)
        return str(out)

    # ---- 服务器共享数据 (shared data from the exchange server) ------------------------------------------
    def _build_server_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("HuijiaoServerSharedTab")
        self.server_tab = tab
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(4, 4, 4, 4)
        self.server_info_label = QLabel(tab)
        self.server_info_label.setWordWrap(True)
        layout.addWidget(self.server_info_label)
        bar = QHBoxLayout()
        self.server_refresh_button = QPushButton(tr("Refresh list"), tab)
        self.server_refresh_button.setObjectName("HuijiaoServerRefreshButton")
        self.server_refresh_button.clicked.connect(lambda: self.refresh_server())
        self.server_download_button = QPushButton(tr("Download and load"), tab)
        self.server_download_button.setObjectName("HuijiaoServerDownloadButton")
        self.server_download_button.setToolTip(
            tr("Download the selected package (resumed after a cut), check its hashes and load it styled")
        )
        self.server_download_button.clicked.connect(lambda: self.download_and_load())
        self.server_cancel_button = QPushButton(tr("Cancel"), tab)
        self.server_cancel_button.setObjectName("HuijiaoServerCancelButton")
        self.server_cancel_button.setEnabled(False)
        self.server_cancel_button.clicked.connect(self.cancel_server)
        self.feed_button = QPushButton(tr("Check for new data"), tab)
        self.feed_button.setObjectName("HuijiaoServerFeedButton")
        self.feed_button.clicked.connect(lambda: self.poll_feed(0.0))
        for button in (
            self.server_refresh_button,
            self.server_download_button,
            self.server_cancel_button,
            self.feed_button,
        ):
            bar.addWidget(button)
        layout.addLayout(bar)
        self.own_department_check = QCheckBox(tr("Also list my department's data"), tab)
        self.own_department_check.toggled.connect(lambda _checked: self._fill_server_tree())
        layout.addWidget(self.own_department_check)
        self.server_tree = QTreeWidget(tab)
        self.server_tree.setObjectName("HuijiaoServerVersionsTree")
        self.server_tree.setRootIsDecorated(False)
        self.server_tree.setHeaderLabels(
            [
                tr("Dataset"),
                tr("Region"),
                tr("Period"),
                tr("Version"),
                tr("Department"),
                tr("Size"),
                tr("Shared on"),
                tr("State"),
            ]
        )
        self.server_tree.header().setSectionResizeMode(SRV_DATASET, QHeaderView.ResizeMode.ResizeToContents)
        self.server_tree.itemDoubleClicked.connect(lambda item, _col: self.download_and_load(item))
        layout.addWidget(self.server_tree, 1)
        self.server_progress = QProgressBar(tab)
        self.server_progress.setRange(0, 1000)
        self.server_progress.setVisible(False)
        self.server_progress_label = QLabel(tab)
        self.server_status_label = QLabel(tab)
        self.server_status_label.setWordWrap(True)
        layout.addWidget(self.server_progress)
        layout.addWidget(self.server_progress_label)
        layout.addWidget(self.server_status_label)
        return tab

    def _tab_changed(self, index: int):
        """The server tab lists the shared data the first time it is shown."""
        if self.tabs.widget(index) is self.server_tab and not self.server_versions and not self.server_busy():
            self.refresh_server()

    def apply_server_settings(self, settings: HuijiaoSettings) -> None:
        """The department, region and server the tab works with (kept in the session)."""
        self.session.apply_settings(settings)
        self._fill_server_tree()

    def _settings(self) -> HuijiaoSettings:
        return self.session.settings

    # the session builds the client and knows the state folder; tests set these on the dock or the session
    @property
    def client_factory(self) -> Callable[[], ExchangeClient]:
        return self.session.client_factory

    @client_factory.setter
    def client_factory(self, factory: Callable[[], ExchangeClient]) -> None:
        self.session.client_factory = factory

    @property
    def state_dir(self) -> Path | None:
        return self.session.state_dir

    @state_dir.setter
    def state_dir(self, path: Path | None) -> None:
        self.session.state_dir = path

    def _make_client(self, quiet: bool = False) -> ExchangeClient | None:
        try:
            client = self.client_factory()
        except ExchangeError as error:
            self.server_status_label.setText(str(error))
            if not quiet:
                self._server_message(str(error), Qgis.MessageLevel.Warning)
            return None
        self._client = client
        return client

    def server_busy(self) -> bool:
        return self.server_task is not None

    def feed_busy(self) -> bool:
        return self.feed_task is not None

    def _start_server_task(self, task: ServerTask, done: Callable[[ServerTask, bool], None], progress: bool):
        self.server_task = task
        self.server_refresh_button.setEnabled(False)
        self.server_download_button.setEnabled(False)
        self.server_cancel_button.setEnabled(True)
        self.server_progress.setVisible(progress)
        self.server_progress.setValue(0)
        self.server_progress_label.clear()
        if progress:
            task.progressChanged.connect(lambda _value: self._show_download_progress(task))

        def finish(ok: bool):
            if sip.isdeleted(self) or sip.isdeleted(self.server_tree):
                return
            self.server_task = None
            self.server_refresh_button.setEnabled(True)
            self.server_download_button.setEnabled(True)
            self.server_cancel_button.setEnabled(False)
            self.server_progress.setVisible(False)
            done(task, ok)

        task.taskCompleted.connect(lambda: finish(True))
        task.taskTerminated.connect(lambda: finish(False))
        QgsApplication.taskManager().addTask(task)

    def _show_download_progress(self, task: ServerTask):
        if sip.isdeleted(self) or sip.isdeleted(self.server_progress) or task.total_bytes <= 0:
            return
        from huijiao_plugin.gui.layer_tasks import format_progress

        self.server_progress.setValue(int(1000 * task.done_bytes / task.total_bytes))
        elapsed = time.monotonic() - task.started
        self.server_progress_label.setText(
            format_progress(task.done_bytes, task.total_bytes, elapsed, task.first_offset or 0)
        )

    def cancel_server(self):
        """Cancel the running list or download (a partial download is discarded)."""
        if self.server_task is not None:
            self.server_task.cancel()

    # -- listing
    def refresh_server(self) -> ServerTask | None:
        """List the newest versions per dataset visible to the account, in a background task."""
        if self.server_busy():
            return None
        client = self._make_client()
        if client is None:
            return None
        settings = self._settings()
        self.server_info_label.setText(
            tr("Server {url}, region {region}").format(url=client.server_url, region=settings.region_code)
        )
        task = ServerTask(
            tr("Listing the shared data on the server"), lambda _t: client.versions(latest=True)
        )
        self.server_status_label.setText(tr("Asking the server…"))
        self._start_server_task(task, self._listed, progress=False)
        return task

    def _listed(self, task: ServerTask, ok: bool):
        if not ok:
            self.server_status_label.setText(task.error)
            if task.error and not task.canceled_by_user:
                self._server_message(task.error, Qgis.MessageLevel.Warning)
            return
        self.server_versions = newest_per_dataset(list(task.result or []))
        self._fill_server_tree()

    def visible_versions(self) -> list[dict[str, Any]]:
        """The listed versions, without the user's own department unless asked for."""
        if self.own_department_check.isChecked():
            return list(self.server_versions)
        own = self._settings().department
        return [v for v in self.server_versions if v.get("department") != own]

    def _version_state(self, version: dict[str, Any]) -> str:
        sha = str(version.get("package_sha256", "")).lower()
        for layer in QgsProject.instance().mapLayers().values():
            if layer.customProperty(PACKAGE_PROPERTY) == sha:
                return tr("loaded")
        if self._client is not None and self._client.cached_path(sha).exists():
            return tr("downloaded")
        return tr("on the server")

    def _fill_server_tree(self):
        if sip.isdeleted(self) or sip.isdeleted(self.server_tree):
            return
        self.server_tree.clear()
        versions = self.visible_versions()
        for version in versions:
            dataset_id = str(version.get("dataset_id", ""))
            spec = self.catalog.datasets.get(dataset_id)
            name = spec.name_zh if spec is not None else str(version.get("dataset_name_zh") or dataset_id)
            department = str(version.get("department", ""))
            item = QTreeWidgetItem(
                [
                    name,
                    str(version.get("region_code", "")),
                    str(version.get("period", "")),
                    str(version.get("version", "")),
                    DEPARTMENT_GROUPS.get(department, department),
                    _size_text(int(version.get("size") or 0)),
                    str(version.get("created_at", ""))[:10],
                    self._version_state(version),
                ]
            )
            item.setData(SRV_DATASET, ROLE_VERSION, version)
            item.setToolTip(
                SRV_DATASET,
                "{} ({})\nsha256 {}".format(
                    dataset_id, version.get("submission_id", ""), version.get("package_sha256")
                ),
            )
            self.server_tree.addTopLevelItem(item)
        if versions:
            self.server_tree.setCurrentItem(self.server_tree.topLevelItem(0))
        self.server_status_label.setText(
            tr("{count} shared datasets on the server.").format(count=len(versions))
        )

    def _refresh_server_states(self):
        if sip.isdeleted(self.server_tree):
            return
        for i in range(self.server_tree.topLevelItemCount()):
            item = self.server_tree.topLevelItem(i)
            item.setText(SRV_STATE, self._version_state(item.data(SRV_DATASET, ROLE_VERSION)))

    def server_item(self, version_id: str) -> QTreeWidgetItem | None:
        for i in range(self.server_tree.topLevelItemCount()):
            item = self.server_tree.topLevelItem(i)
            if item.data(SRV_DATASET, ROLE_VERSION).get("version_id") == version_id:
                return item
        return None

    # -- download and load
    def download_and_load(self, target: QTreeWidgetItem | dict[str, Any] | None = None) -> ServerTask | None:
        """Download a version (default: the selected row) into the cache in a task, verify and extract it,
        then load its layers styled into the 一张图."""
        if self.server_busy():
            return None
        if target is None:
            target = self.server_tree.currentItem()
        version = target.data(SRV_DATASET, ROLE_VERSION) if isinstance(target, QTreeWidgetItem) else target
        if not version:
            self._server_message(tr("Choose a dataset in the list first."), Qgis.MessageLevel.Info)
            return None
        client = self._make_client()
        if client is None:
            return None
        shared_root = (self.state_dir or client.state_dir or default_state_dir()) / "shared"

        def work(task: ServerTask) -> tuple[bool, ImportedPackage]:
            result = client.download(version, progress=task.report, control=task.control)
            if task.control.canceled:
                raise TransferCanceledError(tr("The download was canceled."), "CANCELED")
            return result.from_cache, open_package(result.path, shared_root)

        name = str(version.get("dataset_name_zh") or version.get("dataset_id"))
        task = ServerTask(tr("Downloading {name}").format(name=name), work)
        self.server_status_label.setText(tr("Downloading {name}…").format(name=name))
        self._start_server_task(task, lambda t, ok: self._downloaded(t, ok, version), progress=True)
        return task

    def _downloaded(self, task: ServerTask, ok: bool, version: dict[str, Any]):
        if not ok:
            text = tr("The download was canceled.") if task.canceled_by_user else task.error
            self.server_status_label.setText(text)
            if not task.canceled_by_user:
                self._server_message(text, Qgis.MessageLevel.Critical)
            self._refresh_server_states()
            return
        from_cache, imported = task.result
        project = QgsProject.instance()
        try:
            layers = load_imported_layers(imported, project, self.catalog)
        except PackageError as error:
            self._server_message(str(error), Qgis.MessageLevel.Critical)
            return
        self.last_loaded = layers
        if layers and (not project.crs().isValid() or len(project.mapLayers()) == len(layers)):
            set_project_crs(project, layers)
        self._zoom_to(layers)
        self.refresh_tree()
        self._refresh_server_states()
        text = tr("{name} {region} {period} (version {version}) loaded: {count} layers.").format(
            name=layers[0].name().rsplit(" ", 1)[0] if layers else version.get("dataset_id"),
            region=version.get("region_code"),
            period=version.get("period"),
            version=version.get("version"),
            count=len(layers),
        )
        if from_cache:
            text += " " + tr("(from the local cache)")
        self.server_status_label.setText(text)
        self._server_message(text, Qgis.MessageLevel.Success)

    def _zoom_to(self, layers: list[QgsVectorLayer]):
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is None or not layers:
            return
        extent = None
        for layer in layers:
            ext = canvas.mapSettings().layerExtentToOutputExtent(layer, layer.extent())
            if extent is None:
                extent = ext
            else:
                extent.combineExtentWith(ext)
        if extent is not None and not extent.isEmpty():
            canvas.setExtent(extent)
            canvas.refresh()

    # -- feed
    def poll_feed(self, wait: float = 0.0, quiet: bool = False) -> ServerTask | None:
        """Ask the server's feed for new versions (long-polling ``wait`` seconds in a task); a notification
        per new dataset, then the list is refreshed. ``quiet``: a timed poll, no message when it fails."""
        if self.feed_busy() or sip.isdeleted(self):
            return None
        client = self._make_client(quiet)
        if client is None:
            return None

        def work(task: ServerTask) -> list[dict[str, Any]]:
            # the long poll in steps, so that a cancel (QGIS closing) ends it within FEED_STEP_SECONDS
            deadline = time.monotonic() + wait
            while True:
                step = min(FEED_STEP_SECONDS, max(0.0, deadline - time.monotonic()))
                items = client.poll_feed(step)
                if items or task.control.canceled or time.monotonic() >= deadline:
                    return items

        task = ServerTask(tr("Checking the server for new shared data"), work)
        self.feed_task = task

        def finish(ok: bool):
            if sip.isdeleted(self) or sip.isdeleted(self.server_tree):
                return
            self.feed_task = None
            self._feed_done(task, ok, quiet)

        task.taskCompleted.connect(lambda: finish(True))
        task.taskTerminated.connect(lambda: finish(False))
        QgsApplication.taskManager().addTask(task)
        return task

    def _timed_poll(self):
        self.poll_feed(FEED_WAIT_SECONDS, quiet=True)

    def feed_message(self, item: dict[str, Any]) -> str:
        """E.g. "新的高标准农田数据已到达（610431，2025）"."""
        dataset_id = str(item.get("dataset_id", ""))
        spec = self.catalog.datasets.get(dataset_id)
        name = spec.name_zh if spec is not None else str(item.get("dataset_name_zh") or dataset_id)
        return tr("New {name} data has arrived ({region}, {period})").format(
            name=name, region=item.get("region_code", ""), period=item.get("period", "")
        )

    def _feed_done(self, task: ServerTask, ok: bool, quiet: bool):
        if not ok:
            self.server_status_label.setText(task.error)
            if not quiet and task.error:
                self._server_message(task.error, Qgis.MessageLevel.Warning)
            return
        # news are other departments' versions, never what this user's department sent itself
        items = self.session.news(task.result or [])
        self.last_feed_items = items
        if not items:
            if not quiet:
                self.server_status_label.setText(tr("No new shared data."))
            return
        messages = [self.feed_message(item) for item in items]
        if len(messages) > FEED_MAX_MESSAGES:
            head = tr("{count} new shared datasets have arrived.").format(count=len(messages))
            messages = [head + " " + messages[-1]]
        for text in messages:
            self._server_message(text, Qgis.MessageLevel.Info, duration=15)
        self.server_status_label.setText(messages[-1])
        if not self.server_busy():
            self.refresh_server()

    def _server_message(self, text: str, level=Qgis.MessageLevel.Info, duration: int = 5):
        if self.iface is not None:
            self.iface.messageBar().pushMessage(
                tr("Shared data from the server"), text, level=level, duration=duration
            )

    # ---- messages -----------------------------------------------------------------------------------------
    def _message(self, text: str, level=Qgis.MessageLevel.Info):
        self.status_label.setText(text)
        if self.iface is not None:
            self.iface.messageBar().pushMessage(tr("Shared layers"), text, level=level, duration=5)
