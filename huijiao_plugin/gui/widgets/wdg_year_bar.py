"""The bar above the 截止日期 and 成效评估 tables: the year, a load button, extra tool buttons, and while the
server answers a busy bar with a cancel button. It runs the server call as a :class:`ServerTask`."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSpinBox, QToolButton, QVBoxLayout, QWidget

from huijiao_plugin.gui.server_task import ServerTask, start_server_task
from huijiao_plugin.toolbelt.i18n import tr


class HuijiaoYearBar(QWidget):
    """``run(description, func, done)`` starts one call at a time; ``done(task, ok)`` gets it back on the
    main thread (``ok`` False when it failed or was canceled)."""

    def __init__(self, name: str, load_tip: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Huijiao" + name + "Bar")
        self.task: QgsTask | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.row = QHBoxLayout()
        self._stretched = False
        self.row.addWidget(QLabel(tr("Year"), self))
        self.year_spin = QSpinBox(self)
        self.year_spin.setObjectName("Huijiao" + name + "Year")
        self.year_spin.setRange(2000, 2100)
        self.year_spin.setValue(_dt.date.today().year)
        self.row.addWidget(self.year_spin)
        self.load_button = self.add_button("mActionRefresh.svg", tr("Load"), load_tip)
        self.cancel_button = self.add_button("mTaskCancel.svg", "", tr("Stop waiting for the server"))
        self.cancel_button.setObjectName("Huijiao" + name + "CancelButton")
        self.cancel_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.row.addStretch(1)
        self._stretched = True
        layout.addLayout(self.row)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("Huijiao" + name + "Progress")
        self.progress.setRange(0, 0)  # the server gives no progress for a short answer: a busy bar
        self.progress.setMaximumHeight(8)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)

    def add_button(self, icon: str, text: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setIcon(QgsApplication.getThemeIcon(icon))
        button.setText(text)
        button.setToolTip(tip)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        # extra buttons go before the stretch that ends the row
        self.row.insertWidget(self.row.count() - (1 if self._stretched else 0), button)
        return button

    def busy(self) -> bool:
        return self.task is not None

    def run(
        self, description: str, func: Callable[[ServerTask], Any], done: Callable[[ServerTask, bool], None]
    ) -> ServerTask | None:
        """One server call in a ServerTask."""
        return self.start(ServerTask(description, func), done)

    def start(self, task: QgsTask, done: Callable[[Any, bool], None]) -> Any:
        """Any task (e.g. a computation over layers); its progress fills the bar once it reports some."""
        if self.task is not None:
            return None
        self.task = task
        self.progress.setRange(0, 0)
        self._set_busy(True)

        def show(value: float) -> None:
            if not sip.isdeleted(self.progress) and value > 0:
                self.progress.setRange(0, 100)
                self.progress.setValue(int(value))

        task.progressChanged.connect(show)

        def finish(task: QgsTask, ok: bool) -> None:
            self.task = None
            self._set_busy(False)
            done(task, ok)

        return start_server_task(self, task, finish)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _set_busy(self, on: bool) -> None:
        self.load_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        self.progress.setVisible(on)
