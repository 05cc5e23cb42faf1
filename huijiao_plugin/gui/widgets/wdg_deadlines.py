"""The exchange calendar of the user's department: per dataset the last release, the deadline with the days
left, monitoring exchanges this year against the twice-a-year rule; overdue items first, in red."""

from __future__ import annotations

import datetime as _dt

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QBrush, QColor, QFont
from qgis.PyQt.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.exchange.transport import ExchangeError
from huijiao_plugin.core.exchange_calendar import CalendarRow, calendar_rows, local_time, status_label
from huijiao_plugin.core.session import Session
from huijiao_plugin.gui.user_context import region_display
from huijiao_plugin.toolbelt.i18n import tr

OVERDUE_COLOR = "#c0392b"
OVERDUE_BACKGROUND = "#fdecea"
STATUS_COLORS = {"met": "#1a7f37", "late": "#9a6700", "pending": "#0550ae", "overdue": OVERDUE_COLOR}


class HuijiaoDeadlinesWidget(QWidget):
    """Year, a load button and the calendar table; ``refresh()`` asks the server."""

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.setObjectName("HuijiaoDeadlinesWidget")
        self.session = session
        self.rows: list[CalendarRow] = []
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        bar.addWidget(QLabel(tr("Year"), self))
        self.year_spin = QSpinBox(self)
        self.year_spin.setObjectName("HuijiaoDeadlinesYear")
        self.year_spin.setRange(2000, 2100)
        self.year_spin.setValue(_dt.date.today().year)
        bar.addWidget(self.year_spin)
        self.load_button = QToolButton(self)
        self.load_button.setObjectName("HuijiaoDeadlinesButton")
        self.load_button.setIcon(QgsApplication.getThemeIcon("mActionRefresh.svg"))
        self.load_button.setText(tr("Load"))
        self.load_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.load_button.setToolTip(tr("Ask the exchange server what your department owes this year"))
        self.load_button.clicked.connect(self.refresh)
        bar.addWidget(self.load_button)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("HuijiaoDeadlinesTree")
        self.tree.setRootIsDecorated(False)
        self.tree.setHeaderLabels(
            [tr("Dataset"), tr("Region"), tr("Due"), tr("Days"), tr("Delivered"), tr("Status")]
        )
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setStretchLastSection(False)
        layout.addWidget(self.tree, 1)
        self.summary_label = QLabel(self)
        self.summary_label.setObjectName("HuijiaoDeadlinesSummary")
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)

    def refresh(self) -> list[CalendarRow] | None:
        """Load the calendar of the chosen year (a short request; fails fast with a message)."""
        self.tree.clear()
        try:
            client = self.session.client()
            client.max_retries = 1  # interactive: fail fast instead of retrying in the GUI thread
            body = client.deadlines(self.year_spin.value())
        except ExchangeError as error:
            self.summary_label.setText(str(error))
            return None
        self.rows = calendar_rows(body, self.session.settings.department, self.session.dataset_name)
        for row in self.rows:
            self.tree.addTopLevelItem(self._item(row))
        for column in range(1, self.tree.columnCount()):
            self.tree.resizeColumnToContents(column)
        overdue = sum(1 for r in self.rows if r.overdue)
        text = tr("{n} obligations in {year}, {overdue} overdue (as of {day}).").format(
            n=len(self.rows), year=self.year_spin.value(), overdue=overdue, day=local_time(body.get("as_of"))
        )
        self.summary_label.setText(text)
        return self.rows

    def _item(self, row: CalendarRow) -> QTreeWidgetItem:
        item = QTreeWidgetItem(
            [
                row.dataset_name,
                region_display(row.region_code),
                row.due_date,
                row.days_text(),
                row.progress_text(),
                status_label(row.status),
            ]
        )
        tip = [row.dataset_name]
        if row.release_date:
            tip.append(tr("Released {date}; due 30 days later unless the catalog says otherwise.").format(
                date=row.release_date))  # fmt: skip
        if row.kind == "monitoring":
            tip.append(tr("Monitoring data: at least {n} exchanges a year.").format(n=row.required))
        if row.submitted_at:
            tip.append(tr("First delivered {time}").format(time=row.submitted_at))
        item.setToolTip(0, "\n".join(tip))
        item.setData(0, Qt.ItemDataRole.UserRole, row.dataset_id)
        item.setForeground(5, QBrush(QColor(STATUS_COLORS.get(row.status, "#000000"))))
        if row.overdue:
            bold = QFont(self.tree.font())
            bold.setBold(True)
            for column in range(self.tree.columnCount()):
                item.setBackground(column, QBrush(QColor(OVERDUE_BACKGROUND)))
                item.setForeground(column, QBrush(QColor(OVERDUE_COLOR)))
                item.setFont(column, bold)
        return item
