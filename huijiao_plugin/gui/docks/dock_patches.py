"""The 变化图斑 (change patches) panel: table with filters, sorting, zoom-to, bulk status change, detail view
with history and photos, totals per type and status, and the marking map tool."""

from __future__ import annotations

import logging
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsCoordinateTransform,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.atlas_text import region_label, region_names
from huijiao_plugin.core.patches.field_package import (
    configure_patch_layer,
)
from huijiao_plugin.core.patches.store import PatchStore, PatchStoreError
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.settings import AREA_UNITS, HuijiaoSettings
from huijiao_plugin.core.styles import SELECTION_RGBA
from huijiao_plugin.core.timefmt import local_time
from huijiao_plugin.core.units import area_header, area_text
from huijiao_plugin.gui.wdg_user_context import HuijiaoUserContextWidget
from huijiao_plugin.gui.widgets.wdg_patch_detail import (
    HuijiaoPatchConflictsWidget,
    HuijiaoPatchDetailViews,
)
from huijiao_plugin.gui.widgets.wdg_patch_filters import HuijiaoPatchFilters
from huijiao_plugin.gui.widgets.wdg_patch_status import HuijiaoPatchStatusWidget
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

UUID_ROLE = Qt.ItemDataRole.UserRole + 1
COLUMNS = (
    ("number", "图斑编号"),
    ("patch_type", "图斑类型"),
    ("status", "状态"),
    ("result", "核查结果"),
    ("township_code", "乡镇"),  # 名称（代码）
    ("village_code", "村"),
    ("area_m2", ""),  # header and values in the user's area unit (area_header)
    ("verifier", "核查人"),
    ("updated_at", "更新时间"),
)


class _NumberItem(QTableWidgetItem):
    """Sorts by the numeric value stored in UserRole."""

    def __lt__(self, other):
        try:
            return float(self.data(Qt.ItemDataRole.UserRole)) < float(other.data(Qt.ItemDataRole.UserRole))
        except (TypeError, ValueError):
            return super().__lt__(other)


class HuijiaoPatchesDock(QgsDockWidget):
    """Change patches of one county GeoPackage (BGHTB)."""

    def __init__(self, iface, session: Session | None = None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.session = session if session is not None else Session.load()
        self.store: PatchStore | None = None
        self.rows: list[dict] = []
        self.region_names: dict[str, str] = {}
        self.map_tool = None
        self.setObjectName("HuijiaoPatchesDock")
        self.setWindowTitle(tr("Change patches"))
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.context_widget = HuijiaoUserContextWidget(
            tr(
                "Manage change patches: create them from comparisons or by marking, send them to field "
                "verification and record the verified results."
            ),
            ("department", "region"),
            body,
        )
        layout.addWidget(self.context_widget)

        # store
        store_row = QHBoxLayout()
        self.file_widget = QgsFileWidget(body)
        self.file_widget.setFilter("GeoPackage (*.gpkg)")
        self.file_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.file_widget.fileChanged.connect(self._file_chosen)
        self.new_button = QPushButton(tr("New…"), body)
        self.new_button.clicked.connect(self._new_store)
        self.add_layer_button = QPushButton(tr("Add to map"), body)
        self.add_layer_button.clicked.connect(self.add_layer_to_map)
        store_row.addWidget(QLabel(tr("Patches:"), body))
        store_row.addWidget(self.file_widget, 1)
        store_row.addWidget(self.new_button)
        store_row.addWidget(self.add_layer_button)
        layout.addLayout(store_row)

        # filters
        self.filters = HuijiaoPatchFilters(self.session.settings.area_unit, body)
        self.type_filter, self.status_filter = self.filters.type_filter, self.filters.status_filter
        self.region_filter = self.filters.region_filter
        self.area_min, self.area_max = self.filters.area_min, self.filters.area_max
        self.filters.changed.connect(self.apply_filters)
        layout.addWidget(self.filters)

        splitter = QSplitter(Qt.Orientation.Vertical, body)
        self.table = QTableWidget(0, len(COLUMNS), splitter)
        self.table.setHorizontalHeaderLabels([label for _key, label in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemDoubleClicked.connect(lambda _item: self.zoom_to_selected())

        self.tabs = QTabWidget(splitter)
        self.views = HuijiaoPatchDetailViews(self.tabs)
        self.detail, self.history_table, self.photos = (
            self.views.detail,
            self.views.history_table,
            self.views.photos,
        )
        self.totals_tree = QTreeWidget(self.tabs)
        self.status_widget = HuijiaoPatchStatusWidget(self.tabs)
        self.status_widget.changed.connect(self._status_changed)
        self.tabs.addTab(self.status_widget, tr("Verify"))
        self.edit_page = QWidget(self.tabs)
        self.edit_layout = QVBoxLayout(self.edit_page)
        self.tabs.addTab(self.edit_page, tr("Edit"))
        details = QSplitter(Qt.Orientation.Vertical, self.tabs)
        for view in (self.detail, self.history_table, self.photos):
            details.addWidget(view)
        self.tabs.addTab(details, tr("Details"))
        self.tabs.addTab(self.totals_tree, tr("Totals"))
        self.conflicts = HuijiaoPatchConflictsWidget(self.tabs)
        self.conflicts_table = self.conflicts.table
        self.conflicts.resolved.connect(self._conflicts_resolved)
        self.tabs.addTab(self.conflicts, tr("Conflicts"))
        splitter.setStretchFactor(0, 3)  # the list gets the larger share
        splitter.setStretchFactor(1, 2)
        layout.addWidget(splitter, 1)

        self.zoom_button = QPushButton(tr("Zoom to"), body)
        self.zoom_button.clicked.connect(self.zoom_to_selected)
        self.mark_button = QPushButton(tr("Mark patch"), body)
        self.mark_button.setCheckable(True)
        self.mark_button.toggled.connect(self._toggle_mark_tool)
        self.refresh_button = QPushButton(tr("Refresh"), body)
        self.refresh_button.clicked.connect(self.refresh)
        self.mode_combo = QComboBox(body)
        self.mode_combo.addItem(tr("Draw"), "draw")
        self.mode_combo.addItem(tr("Pick features"), "pick")
        self.mode_combo.addItem(tr("Split"), "split")
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.merge_button = QPushButton(tr("Merge selected"), body)
        self.merge_button.clicked.connect(self.merge_selected)
        self.save_button = QPushButton(tr("Save edits"), body)
        self.save_button.clicked.connect(self.save_edits)
        self.from_selection_button = QPushButton(tr("From selection"), body)
        self.from_selection_button.setToolTip(
            tr("Make a patch of every selected feature of the active layer")
        )
        self.from_selection_button.clicked.connect(self.patches_from_selection)
        # field work: the four Processing dialogs behind one menu button
        self.field_button = QPushButton(tr("Field work"), body)
        menu = QMenu(self.field_button)
        self.algorithm_buttons = {}
        for alg_id, label in (
            ("fieldpackage", tr("Field package…")),
            ("patchatlas", tr("Map sheets…")),
            ("patchchecklist", tr("Checklist…")),
            ("importfieldresults", tr("Import results…")),
        ):
            action = menu.addAction(label)
            action.triggered.connect(lambda _checked=False, a=alg_id: self.run_algorithm(a))
            self.algorithm_buttons[alg_id] = action
        self.field_button.setMenu(menu)
        for widgets in ((self.mark_button, self.mode_combo), (self.from_selection_button, self.merge_button)):
            row = QHBoxLayout()
            for widget in widgets:
                row.addWidget(widget)
            self.edit_layout.addLayout(row)
        self.edit_layout.addWidget(self.save_button)
        self.edit_layout.addStretch(1)
        row = QHBoxLayout()
        for widget in (self.zoom_button, self.refresh_button, self.field_button):
            row.addWidget(widget)
        layout.addLayout(row)
        self.status_label = QLabel(body)
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        # lists and tables give way first on a short screen (they scroll); the buttons keep their size
        for view in splitter.findChildren(QAbstractScrollArea):
            view.setMinimumHeight(48)
        # the path's clear button (Qt draws it 2 px narrower than its icon); a store is changed, not cleared
        self.file_widget.lineEdit().setShowClearButton(False)
        self.mode_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.mode_combo.setMinimumContentsLength(4)
        self.setWidget(body)
        self.apply_settings(self.session.settings)
        self.session.settingsChanged.connect(self.apply_settings)
        self.session.patchStoreChanged.connect(self._file_chosen)
        self.session.patchesChanged.connect(self.refresh)
        if self.session.patch_store_path and Path(self.session.patch_store_path).exists():
            self.set_store(self.session.patch_store_path)

    # -- settings / store -----------------------------------------------------------------------------------

    def apply_settings(self, settings: HuijiaoSettings) -> None:
        """Show the department, region and server the panel works with."""
        self.context_widget.apply_settings(settings)
        self.status_widget.user = settings.unit_name
        self.filters.set_unit(settings.area_unit)
        if self.map_tool is not None:
            self.map_tool.area_unit = settings.area_unit
        self.apply_filters()

    def _file_chosen(self, path: str) -> None:
        if path and (self.store is None or Path(path) != self.store.path):
            self.set_store(path)

    def _new_store(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, tr("New change-patch GeoPackage"), "", "GeoPackage (*.gpkg)"
        )
        if not path:
            return
        crs = self.iface.mapCanvas().mapSettings().destinationCrs()
        settings = self.session.settings
        county = settings.region_code if len(settings.region_code) == 6 else ""
        try:
            PatchStore.create(path, crs, county_code=county, overwrite=False)
        except PatchStoreError as exc:
            self._message(str(exc), Qgis.MessageLevel.Warning)
            return
        self.set_store(path)

    def set_store(self, path: str | Path) -> bool:
        try:
            self.store = PatchStore(path)
        except PatchStoreError as exc:
            self.store = None
            self._message(str(exc), Qgis.MessageLevel.Warning)
            return False
        self.file_widget.blockSignals(True)
        self.file_widget.setFilePath(str(path))
        self.file_widget.blockSignals(False)
        self.session.set_patch_store(str(path))
        if self.map_tool is not None:
            self.map_tool.set_store(self.store, self.patch_layer(create=False))
        self.refresh()
        return True

    def patch_layer(self, create: bool = False) -> QgsVectorLayer | None:
        """The map layer of the current store (added to the project when ``create``)."""
        if self.store is None:
            return None
        for layer in QgsProject.instance().mapLayers().values():
            if isinstance(layer, QgsVectorLayer) and layer.providerType() == "ogr":
                source = layer.source().split("|")[0]
                if Path(source) == self.store.path and schema.PATCH_LAYER in layer.source():
                    return layer
        if not create:
            return None
        layer = self.store.qgs_layer(tr("Change patches"))
        configure_patch_layer(layer, desk=True)
        QgsProject.instance().addMapLayer(layer)
        self._contrast_selection()
        return layer

    def _contrast_selection(self) -> None:
        """Selections in cyan, not QGIS's yellow that vanishes on yellow farmland (kept in the project)."""
        color = QColor(*SELECTION_RGBA)
        project = QgsProject.instance()
        for part, value in zip(("Red", "Green", "Blue", "Alpha"), SELECTION_RGBA):
            project.writeEntry("Gui", f"/SelectionColor{part}Part", value)
        if self.iface is not None:
            self.iface.mapCanvas().setSelectionColor(color)

    def add_layer_to_map(self) -> None:
        self.patch_layer(create=True)

    # -- table ----------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        if self.store is None:
            self.rows = []
        else:
            self.rows = self.store.patches()
        self.region_names = region_names()  # from the project's township/village layers, by recognition
        layer = self.patch_layer(create=False)
        if layer is not None and not layer.isEditable():
            layer.reload()
            layer.triggerRepaint()
        self.apply_filters()
        self._fill_conflicts()

    def _fill_conflicts(self) -> None:
        self.conflicts.user = self.session.settings.unit_name
        count = self.conflicts.fill(self.store)
        self.tabs.setTabText(
            self.tabs.indexOf(self.conflicts), tr("Conflicts") + (f" ({count})" if count else "")
        )

    def resolve_selected_conflict(self, take_field: bool) -> None:
        self.conflicts.resolve(take_field)

    def _conflicts_resolved(self, count: int, errors: list) -> None:
        self.refresh()
        if errors:
            self._message(errors[0], Qgis.MessageLevel.Warning)
        else:
            self._message(tr("{n} conflicts resolved").format(n=count), Qgis.MessageLevel.Success)

    def filtered_rows(self) -> list[dict]:
        return [row for row in self.rows if self.filters.matches(row)]

    def filtered_uuids(self) -> list[str]:
        return [row["uuid"] for row in self.filtered_rows()]

    def apply_filters(self) -> None:
        unit = self.session.settings.area_unit
        self.table.setHorizontalHeaderLabels([label or area_header(unit) for _key, label in COLUMNS])
        self.totals_tree.setHeaderLabels([tr("Type / status"), tr("Count"), area_header(unit), "比例（%）"])
        rows = self.filtered_rows()
        selected = set(self.selected_uuids())
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (key, _label) in enumerate(COLUMNS):
                value = row.get(key)
                if key == "patch_type":
                    text = schema.PATCH_TYPES.get(value or "", value or "")
                elif key == "status":
                    text = workflow.status_label(value)
                elif key == "result":
                    text = workflow.result_label(value)
                elif key == "area_m2":
                    text = area_text(value or 0.0, unit)
                elif key == "updated_at":
                    text = local_time(value)
                elif key in ("township_code", "village_code"):
                    text = region_label(value or "", self.region_names)
                else:
                    text = "" if value is None else str(value)
                item = _NumberItem(text) if key == "area_m2" else QTableWidgetItem(text)
                if key == "area_m2":
                    item.setData(Qt.ItemDataRole.UserRole, float(value or 0.0))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setData(UUID_ROLE, row["uuid"])
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        if selected:
            self.select_uuids(list(selected))
        self._update_totals(rows)
        self.status_label.setText(
            tr("{shown} of {total} patches shown").format(shown=len(rows), total=len(self.rows))
        )

    def totals(self, rows: list[dict] | None = None) -> dict[tuple[str, str], tuple[int, float]]:
        """(type, status) → (count, Σ m²) of ``rows`` (default: the filtered rows)."""
        out: dict[tuple[str, str], tuple[int, float]] = {}
        for row in self.filtered_rows() if rows is None else rows:
            key = (row["patch_type"] or "", row["status"] or "")
            count, m2 = out.get(key, (0, 0.0))
            out[key] = (count + 1, m2 + (row["area_m2"] or 0.0))
        return out

    def _update_totals(self, rows: list[dict]) -> None:
        self.totals_tree.clear()
        totals = self.totals(rows)
        by_type: dict[str, list] = {}
        for (patch_type, status), (count, mu) in sorted(totals.items()):
            by_type.setdefault(patch_type, []).append((status, count, mu))
        all_count = sum(c for c, _m in totals.values())
        unit = self.session.settings.area_unit
        all_m2 = sum(m for _c, m in totals.values())

        def share(m2: float) -> str:  # of the area of all patches shown, as in the comparison statistics
            return f"{100.0 * m2 / all_m2:.2f}" if all_m2 > 0 else "0.00"

        root = QTreeWidgetItem(
            self.totals_tree, [tr("All patches"), f"{all_count:,}", area_text(all_m2, unit), share(all_m2)]
        )
        for patch_type, entries in by_type.items():
            type_item = QTreeWidgetItem(
                root,
                [
                    schema.PATCH_TYPES.get(patch_type, patch_type),
                    f"{sum(e[1] for e in entries):,}",
                    area_text(sum(e[2] for e in entries), unit),
                    share(sum(e[2] for e in entries)),
                ],
            )
            for status, count, m2 in entries:
                texts = [workflow.status_label(status), f"{count:,}", area_text(m2, unit), share(m2)]
                QTreeWidgetItem(type_item, texts)
        self.totals_tree.expandAll()
        self.totals_tree.resizeColumnToContents(0)

    def selected_uuids(self) -> list[str]:
        seen: list[str] = []
        for item in self.table.selectedItems():
            value = item.data(UUID_ROLE)
            if value and value not in seen:
                seen.append(value)
        return seen

    def select_uuids(self, uuids: list[str]) -> None:
        wanted = set(uuids)
        self.table.blockSignals(True)
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(UUID_ROLE) in wanted:
                self.table.selectRow(r)
        self.table.setSelectionMode(mode)
        self.table.blockSignals(False)
        self._selection_changed()

    # -- actions --------------------------------------------------------------------------------------------

    def _selection_changed(self) -> None:
        uuids = self.selected_uuids()
        statuses = {row["uuid"]: row["status"] for row in self.rows}
        self.status_widget.set_patches(self.store, uuids, [statuses.get(u) for u in uuids])
        if len(uuids) == 1:
            self.show_detail(uuids[0])
        layer = self.patch_layer(create=False)
        if layer is not None:
            ids = [f.id() for f in layer.getFeatures() if f["uuid"] in set(uuids)]
            layer.selectByIds(ids)

    def show_detail(self, patch_uuid: str) -> None:
        if self.store is not None:
            self.views.show(self.store, patch_uuid, self.region_names)

    def zoom_to_selected(self) -> None:
        if self.store is None:
            return
        uuids = set(self.selected_uuids())
        rect = QgsRectangle()
        rect.setMinimal()
        for row in self.rows:
            if row["uuid"] in uuids and row["geometry"] is not None:
                rect.combineExtentWith(row["geometry"].boundingBox())
        if rect.isEmpty() and rect.width() <= 0:
            return
        canvas = self.iface.mapCanvas()
        transform = QgsCoordinateTransform(
            self.store.crs, canvas.mapSettings().destinationCrs(), QgsProject.instance()
        )
        rect = transform.transformBoundingBox(rect)
        rect.scale(1.5)
        canvas.setExtent(rect)
        canvas.refresh()

    def _status_changed(self, _done: list, _refused: dict) -> None:
        """After a status change or its undo: reload, keep the selection, show the outcome."""
        uuids = self.selected_uuids()
        self.refresh()
        self.select_uuids(uuids)

    def _toggle_mark_tool(self, checked: bool) -> None:
        canvas = self.iface.mapCanvas()
        if not checked:
            if self.map_tool is not None and canvas.mapTool() is self.map_tool:
                canvas.unsetMapTool(self.map_tool)
            return
        if self.store is None:
            self._message(tr("Open or create a change-patch GeoPackage first."), Qgis.MessageLevel.Info)
            self.mark_button.setChecked(False)
            return
        canvas.setMapTool(self._ensure_tool())

    def algorithm_parameters(self, alg_id: str) -> dict:
        """Preset parameters of the Processing dialog: the open store and the selected patches."""
        if self.store is None:
            return {}
        params = {"STORE": str(self.store.path)}
        if alg_id in ("patchchecklist", "patchatlas"):
            params["AREA_UNIT"] = AREA_UNITS.index(self.session.settings.area_unit)
        if alg_id != "importfieldresults":
            numbers = [r["number"] for r in self.rows if r["uuid"] in set(self.selected_uuids())]
            params["PATCH_IDS"] = ",".join(numbers)
        return params

    def run_algorithm(self, alg_id: str) -> None:
        """Open the Processing dialog of a patch algorithm, preset with the store and selection."""
        if self.store is None:
            self._message(tr("Open or create a change-patch GeoPackage first."), Qgis.MessageLevel.Info)
            return
        import processing

        processing.execAlgorithmDialog(f"huijiao:{alg_id}", self.algorithm_parameters(alg_id))
        self.refresh()

    def _mode_changed(self) -> None:
        if self.map_tool is not None:
            self.map_tool.set_mode(self.mode_combo.currentData())

    def merge_selected(self) -> None:
        """Merge the patches selected in the table (through the map tool, undoable)."""
        layer = self.patch_layer(create=True)
        if layer is None:
            self._message(tr("Open or create a change-patch GeoPackage first."), Qgis.MessageLevel.Info)
            return
        self._ensure_tool()
        uuids = set(self.selected_uuids())
        layer.selectByIds([f.id() for f in layer.getFeatures() if f["uuid"] in uuids])
        self.map_tool.merge_selected()

    def patches_from_selection(self, layer=None) -> list[int]:
        """Patches of the selected features of ``layer`` (default: the active layer), in the edit buffer."""
        if self.store is None:
            self._message(tr("Open or create a change-patch GeoPackage first."), Qgis.MessageLevel.Info)
            return []
        layer = layer or self.iface.activeLayer()
        return self._ensure_tool().create_from_selection(layer)

    def save_edits(self) -> None:
        if self.map_tool is not None and self.map_tool.save():
            self.refresh()

    def _ensure_tool(self):
        from huijiao_plugin.gui.map_tools.map_tool_mark_patch import HuijiaoMarkPatchMapTool

        if self.map_tool is None:
            self.map_tool = HuijiaoMarkPatchMapTool(self.iface.mapCanvas(), self.iface)
            self.map_tool.patches_changed.connect(self.refresh)
            self.map_tool.deactivated.connect(lambda: self.mark_button.setChecked(False))
        self.map_tool.user = self.session.settings.unit_name
        self.map_tool.region_code = self.session.settings.region_code
        self.map_tool.area_unit = self.session.settings.area_unit
        self.map_tool.set_store(self.store, self.patch_layer(create=True))
        self.map_tool.set_mode(self.mode_combo.currentData())
        return self.map_tool

    def _message(self, text: str, level=Qgis.MessageLevel.Info) -> None:
        self.status_label.setText(text)
        try:
            self.iface.messageBar().pushMessage(tr("Change patches"), text, level, 5)
        except (AttributeError, TypeError):
            log.info(text)

    def closeEvent(self, event):
        if self.map_tool is not None and self.iface.mapCanvas().mapTool() is self.map_tool:
            self.iface.mapCanvas().unsetMapTool(self.map_tool)
        super().closeEvent(event)
