"""The statistics table of the 耕地比对 panel: the rows of core/stat_table.py (the same headers as the
xlsx), numbers right-aligned with thousands separators, sortable by value, the 合计 row kept last."""

from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QFont
from qgis.PyQt.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from huijiao_plugin.core.stat_table import AREA_COLUMN, COUNT_COLUMN, RATIO_COLUMN, stat_table
from huijiao_plugin.core.units import UNIT_DECIMALS

TOTAL_ROLE = Qt.ItemDataRole.UserRole + 2


class _Item(QTableWidgetItem):
    """Sorts by the value in UserRole (numbers) or the text; the 合计 row stays at the bottom."""

    def __lt__(self, other):
        table = self.tableWidget()
        ascending = (
            table is None or table.horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
        )
        mine, theirs = bool(self.data(TOTAL_ROLE)), bool(other.data(TOTAL_ROLE))
        if mine or theirs:
            return (not mine) == ascending if mine != theirs else False
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if a is not None and b is not None:
            return a < b
        return self.text() < other.text()


class HuijiaoCompareStatsTable(QTableWidget):
    def __init__(self, parent=None):
        super().__init__(0, 0, parent)
        self.setObjectName("HuijiaoCompareStats")
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)

    def set_rows(self, rows, unit: str) -> None:
        headers, body, total = stat_table(rows, unit)
        self.setSortingEnabled(False)
        self.clear()
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(headers)
        self.setRowCount(len(body) + 1 if body else 0)
        decimals = UNIT_DECIMALS[unit]
        formats = {
            COUNT_COLUMN: lambda v: f"{int(v):,d}",
            AREA_COLUMN: lambda v: f"{v:,.{decimals}f}",
            RATIO_COLUMN: lambda v: f"{v:.2f}",
        }
        bold = QFont()
        bold.setBold(True)
        for r, values in enumerate([*body, total] if body else []):
            is_total = r == len(body)
            for c, value in enumerate(values):
                numeric = c in formats and isinstance(value, (int, float))
                item = _Item(formats[c](value) if numeric else str(value or ""))
                if numeric:
                    item.setData(Qt.ItemDataRole.UserRole, float(value))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if is_total:
                    item.setData(TOTAL_ROLE, True)
                    item.setFont(bold)
                self.setItem(r, c, item)
        self.setSortingEnabled(True)
        self.resizeColumnsToContents()
