"""The detail tabs of the 变化图斑 panel: the attributes of one patch (names, not codes), its history in
local time (2026-12-07 14:05, not ISO UTC) and its photos; the open field/desk conflicts and their two
ways out."""

from __future__ import annotations

import html

from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QIcon, QPixmap
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.atlas_text import inputs_description, region_label, rule_description
from huijiao_plugin.core.patches.field_package import FieldPackageError, open_conflicts, resolve_conflict
from huijiao_plugin.core.patches.store import PatchStore, PatchStoreError
from huijiao_plugin.core.patches.workflow import WorkflowError
from huijiao_plugin.core.stat_table import rule_name
from huijiao_plugin.core.timefmt import local_time
from huijiao_plugin.toolbelt.i18n import tr

FID_ROLE = Qt.ItemDataRole.UserRole + 1


def value_label(key: str, value, row: dict | None = None, names: dict[str, str] | None = None) -> str:
    """A stored value as people read it: names for codes, the rule and its parameters in words, the
    compared datasets by Chinese name, local times; ``row`` gives the rule of ``rule_params``."""
    if value is None or str(value) == "NULL":
        return ""
    if key == "rule_id":
        return rule_name(str(value))
    if key == "rule_params":
        return rule_description(str((row or {}).get("rule_id") or ""), value)
    if key == "inputs":
        return inputs_description(value)
    if key in ("county_code", "township_code", "village_code"):
        return region_label(str(value), names or {})
    if key == "source":
        return schema.SOURCES.get(str(value), str(value))
    if key == "edit_source":
        return schema.EDIT_SOURCES.get(str(value), str(value))
    if key == "status":
        return workflow.status_label(value)
    if key == "result":
        return workflow.result_label(value)
    if key == "patch_type":
        return schema.PATCH_TYPES.get(value or "", value or "")
    if key in ("created_at", "updated_at"):
        return local_time(value)
    return str(value)


class HuijiaoPatchDetailViews:
    """Three views of one patch, each a tab page of the panel: details, history, photos."""

    def __init__(self, parent: QWidget):
        self.detail = QTextBrowser(parent)
        self.history_table = QTableWidget(0, 5, parent)
        self.history_table.setHorizontalHeaderLabels(["时间", "修改人", "方式", "字段", "原值 → 新值"])
        self.history_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_table.horizontalHeader().setStretchLastSection(True)
        self.photos = QListWidget(parent)
        self.photos.setViewMode(QListWidget.ViewMode.IconMode)
        self.photos.setIconSize(QPixmap(96, 96).size())

    def show(self, store: PatchStore, patch_uuid: str, names: dict[str, str] | None = None) -> None:
        """``names``: region names by code (the project's township/village layers)."""
        row = store.get(patch_uuid)
        if row is None:
            return
        lines = []
        for spec in schema.PATCH_FIELDS:
            text = html.escape(value_label(spec.name, row.get(spec.name), row, names))
            lines.append(f"<tr><td><b>{spec.alias}</b></td><td>{text}</td></tr>")
        self.detail.setHtml("<table>" + "".join(lines) + "</table>")
        history = store.history(patch_uuid)
        self.history_table.setRowCount(len(history))
        for r, h in enumerate(reversed(history)):
            field = h["field"]
            old, new = value_label(field, h["old_value"]), value_label(field, h["new_value"])
            texts = [
                local_time(h["changed_at"]),
                h["changed_by"],
                value_label("edit_source", h["edit_source"]),
                schema.ALIASES.get(field, field),
            ]
            for c, text in enumerate([*texts, f"{old} → {new}"]):
                self.history_table.setItem(r, c, QTableWidgetItem(text or ""))
        self.history_table.resizeColumnsToContents()
        self.photos.clear()
        for attachment in store.attachments(patch_uuid):
            path = store.attachment_path(attachment)
            text = "{}\n{}°".format(local_time(attachment["taken_at"]), attachment["direction"] or "")
            item = QListWidgetItem(QIcon(str(path)), text, self.photos)
            position = ""
            if attachment["lon"] is not None and attachment["lat"] is not None:
                position = "\n{:.6f}°E {:.6f}°N".format(attachment["lon"], attachment["lat"])
            item.setToolTip(str(path) + position + "\n" + (attachment["taken_by"] or ""))


class HuijiaoPatchConflictsWidget(QWidget):
    """Field values not applied because the desk changed the same patch: take them or keep the desk's."""

    #: (number resolved, error messages)
    resolved = pyqtSignal(int, list)

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["图斑编号", "内业值", "外业值"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.take_field_button = QPushButton(tr("Take field values"), self)
        self.take_field_button.clicked.connect(lambda: self.resolve(True))
        self.keep_desk_button = QPushButton(tr("Keep desk values"), self)
        self.keep_desk_button.clicked.connect(lambda: self.resolve(False))
        buttons.addWidget(self.take_field_button)
        buttons.addWidget(self.keep_desk_button)
        layout.addLayout(buttons)
        self.store: PatchStore | None = None
        self.user = ""

    def fill(self, store: PatchStore | None) -> int:
        self.store = store
        conflicts = open_conflicts(store) if store is not None else []
        self.table.setRowCount(len(conflicts))
        for r, conflict in enumerate(conflicts):
            desk = conflict["desk"] or {}
            field = conflict["field"] or {}
            keys = [k for k in schema.FIELD_EDITABLE if desk.get(k) != field.get(k)]

            def describe(values: dict, keys=keys) -> str:
                return "；".join(f"{schema.ALIASES.get(k, k)}={value_label(k, values.get(k))}" for k in keys)

            for c, text in enumerate(
                [conflict["number"] or conflict["patch_uuid"], describe(desk), describe(field)]
            ):
                item = QTableWidgetItem(text)
                item.setData(FID_ROLE, conflict["fid"])
                self.table.setItem(r, c, item)
        return len(conflicts)

    def resolve(self, take_field: bool) -> None:
        """Apply the field values of (or keep the desk values for) the selected conflicts."""
        fids = sorted({item.data(FID_ROLE) for item in self.table.selectedItems()})
        if self.store is None or not fids:
            self.resolved.emit(0, [tr("Select a conflict first.")])
            return
        errors = []
        for fid in fids:
            try:
                resolve_conflict(self.store, fid, take_field, self.user)
            except (FieldPackageError, WorkflowError, PatchStoreError) as exc:
                errors.append(str(exc))
        self.resolved.emit(len(fids) - len(errors), errors)
