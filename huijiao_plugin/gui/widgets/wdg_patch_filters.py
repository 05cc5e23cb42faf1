"""The filter bar of the 变化图斑 panel: type, status, region code prefix and an area range in the user's
unit; ``changed`` fires on every edit and ``matches(row)`` says whether a patch passes."""

from __future__ import annotations

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.units import UNIT_NAMES, convert_area
from huijiao_plugin.toolbelt.i18n import tr


class HuijiaoPatchFilters(QWidget):
    changed = pyqtSignal()

    def __init__(self, unit: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("HuijiaoPatchFilters")
        self.unit = unit
        filters = QFormLayout(self)
        filters.setContentsMargins(0, 0, 0, 0)
        self.type_filter = QComboBox(self)
        self.type_filter.addItem(tr("All types"), "")
        for code, label in schema.PATCH_TYPES.items():
            self.type_filter.addItem(label, code)
        self.status_filter = QComboBox(self)
        self.status_filter.addItem(tr("All statuses"), "")
        for code, label in workflow.STATUSES.items():
            self.status_filter.addItem(label, code)
        self.region_filter = QLineEdit(self)
        self.region_filter.setPlaceholderText(tr("Region code prefix (county/township/village)"))
        area_row = QHBoxLayout()
        self.area_min = QDoubleSpinBox(self)
        self.area_max = QDoubleSpinBox(self)
        for spin in (self.area_min, self.area_max):
            spin.setRange(0.0, 1e9)
            spin.setDecimals(2)
        self.area_max.setSpecialValueText(tr("no limit"))
        area_row.addWidget(self.area_min)
        area_row.addWidget(QLabel("–", self))
        area_row.addWidget(self.area_max)
        first = QHBoxLayout()
        for widget in (self.type_filter, self.status_filter, self.region_filter):
            first.addWidget(widget, 1)
        filters.addRow(first)
        filters.addRow(tr("Area"), area_row)
        for combo in (self.type_filter, self.status_filter):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(4)
            combo.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.region_filter.textChanged.connect(lambda _t: self.changed.emit())
        self.area_min.valueChanged.connect(lambda _v: self.changed.emit())
        self.area_max.valueChanged.connect(lambda _v: self.changed.emit())
        self.set_unit(unit)

    def set_unit(self, unit: str) -> None:
        """The area range is typed in ``unit`` (亩, 公顷 or 平方米)."""
        self.unit = unit
        for spin in (self.area_min, self.area_max):
            spin.setSuffix(" " + UNIT_NAMES[unit])

    def matches(self, row: dict) -> bool:
        patch_type = self.type_filter.currentData()
        status = self.status_filter.currentData()
        region = self.region_filter.text().strip()
        if patch_type and row["patch_type"] != patch_type:
            return False
        if status and row["status"] != status:
            return False
        if region and not any(
            (row.get(key) or "").startswith(region)
            for key in ("county_code", "township_code", "village_code")
        ):
            return False
        area = convert_area(row["area_m2"] or 0.0, self.unit)
        if area < self.area_min.value():
            return False
        return not (self.area_max.value() > 0 and area > self.area_max.value())
