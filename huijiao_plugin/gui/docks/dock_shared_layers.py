"""The 共享图层 (shared layers) panel: the shared-data catalog as a tree with the state of every dataset,
recognition of folders / files / PostGIS schemas, the styled 一张图 in one click and the standard check.

The second tab, 服务器共享数据, lists what the other department has shared on the exchange server for the
user's region (the newest version per dataset and region), downloads a package in a QgsTask (progress, cancel,
HTTP Range resume, sha256 check, local cache), loads it styled into the 一张图 through
:func:`huijiao_plugin.core.exchange.offline.load_imported_layers` (groups, order and styles of
:mod:`huijiao_plugin.core.one_map`) and polls the server's feed (every few minutes and on demand, long-polling
in a task) with a message-bar notification when new data has arrived."""

from __future__ import annotations

import logging
import os
from typing import Any

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
from qgis.PyQt.QtGui import QBrush, QColor, QStandardItemModel
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QApplication,
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

from huijiao_plugin.core.catalog import DEPARTMENT_GROUPS, DEPARTMENT_ORDER, Catalog
from huijiao_plugin.core.checks import CheckReport, Finding
from huijiao_plugin.core.exchange.client import (
    ExchangeClient,
)
from huijiao_plugin.core.one_map import (
    DATASET_PROPERTY,
    SOURCE_PROPERTY,
    YEAR_PROPERTY,
    add_one_map_layers,
    layer_title,
    one_map_items,
    set_project_crs,
)
from huijiao_plugin.core.recognition import (
    Recognition,
    best_by_dataset,
    other_years,
    recognize_path,
    recognize_postgres,
)
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.shared_layers_tasks import CheckDatasetsTask, OpenLayersTask
from huijiao_plugin.gui.widgets.wdg_check_findings import (
    ROLE_DATASET,
    ROLE_SORT,
    CheckFindings,
)
from huijiao_plugin.gui.widgets.wdg_server_shared import (
    FEED_FIRST_MS,
    FEED_INTERVAL_MS,
    SRV_STATE,
    ServerSharedTab,
    ServerTask,
    newest_per_dataset,
)
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

__all__ = [
    "DATASET_PROPERTY",
    "ROLE_DATASET",
    "SRV_STATE",
    "HuijiaoSharedLayersDock",
    "ServerTask",
    "newest_per_dataset",
]

STATE_LOADED = "loaded"
STATE_FOUND = "found"
STATE_MISSING = "missing"

COL_DATASET, COL_STATE, COL_YEAR, COL_SOURCE = range(4)
FINDING_COLUMNS = ("dataset", "severity", "rule", "field", "value", "count", "message")


def _state_text(state: str) -> str:
    return {STATE_LOADED: tr("loaded"), STATE_FOUND: tr("found"), STATE_MISSING: tr("missing")}[state]


class HuijiaoSharedLayersDock(CheckFindings, ServerSharedTab, QgsDockWidget):
    """Catalog tree grouped by department; scan, load 一张图, check and the findings table."""

    def __init__(self, iface, session: Session | None = None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.session = session if session is not None else Session.load()
        self.setObjectName("HuijiaoSharedLayersDock")
        self.setWindowTitle(tr("Shared layers"))
        self.catalog: Catalog = self.session.catalog()
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
        self.catalog = self.session.catalog()  # the override file may have changed in the settings
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
        self.catalog = self.session.catalog()
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

    # ---- messages -----------------------------------------------------------------------------------------
    def _message(self, text: str, level=Qgis.MessageLevel.Info):
        self.status_label.setText(text)
        if self.iface is not None:
            self.iface.messageBar().pushMessage(tr("Shared layers"), text, level=level, duration=5)
