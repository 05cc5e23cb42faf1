"""The exchange calendar of the user's department: per dataset the last release, the deadline with the days
left, monitoring exchanges this year against the twice-a-year rule; overdue items first, in red."""

from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QBrush, QColor, QFont
from qgis.PyQt.QtWidgets import (
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from huijiao_plugin.core.exchange.transport import ExchangeError
from huijiao_plugin.core.exchange_calendar import CalendarRow, calendar_rows, status_label
from huijiao_plugin.core.session import Session
from huijiao_plugin.core.timefmt import local_time
from huijiao_plugin.gui.server_task import ServerTask
from huijiao_plugin.gui.user_context import region_display
from huijiao_plugin.gui.widgets.wdg_year_bar import HuijiaoYearBar
from huijiao_plugin.toolbelt.i18n import tr

OVERDUE_COLOR = "#c0392b"
OVERDUE_BACKGROUND = "#fdecea"
STATUS_COLORS = {"met": "#1a7f37", "late": "#9a6700", "pending": "#0550ae", "overdue": OVERDUE_COLOR}


class HuijiaoDeadlinesWidget(QWidget):
    """Year bar and the calendar table; ``refresh()`` asks the server in a task."""

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.setObjectName("HuijiaoDeadlinesWidget")
        self.session = session
        self.rows: list[CalendarRow] = []
        layout = QVBoxLayout(self)
        self.bar = HuijiaoYearBar(
            "Deadlines", tr("Ask the exchange server what your department owes this year"), self
        )
        self.year_spin, self.load_button = self.bar.year_spin, self.bar.load_button
        self.load_button.setObjectName("HuijiaoDeadlinesButton")
        self.load_button.clicked.connect(self.refresh)
        layout.addWidget(self.bar)
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

    def refresh(self) -> ServerTask | None:
        """Load the calendar of the chosen year in a task; the table fills when the server has answered."""
        if self.bar.busy():
            return None
        self.tree.clear()
        self.rows = []
        try:
            client = self.session.client()
        except ExchangeError as error:
            self.summary_label.setText(str(error))
            return None
        client.max_retries = 1  # interactive: fail fast, the user presses the button again
        year = self.year_spin.value()
        self.summary_label.setText(tr("Asking the server…"))
        return self.bar.run(
            tr("Loading the exchange calendar"), lambda _task: (year, client.deadlines(year)), self._loaded
        )

    def _loaded(self, task: ServerTask, ok: bool) -> None:
        if not ok:
            self.summary_label.setText(task.error if task.error else tr("Canceled."))
            return
        year, body = task.result
        self.rows = calendar_rows(body, self.session.settings.department, self.session.dataset_name)
        for row in self.rows:
            self.tree.addTopLevelItem(self._item(row))
        for column in range(1, self.tree.columnCount()):
            self.tree.resizeColumnToContents(column)
        overdue = sum(1 for r in self.rows if r.overdue)
        text = tr("{n} obligations in {year}, {overdue} overdue (as of {day}).").format(
            n=len(self.rows), year=year, overdue=overdue, day=local_time(body.get("as_of"))
        )
        self.summary_label.setText(text)

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
