"""A dock title bar with a 帮助 button (the dock's section of the Chinese manual) next to float and close."""

from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QDockWidget, QHBoxLayout, QLabel, QStyle, QToolButton, QWidget

from huijiao_plugin.toolbelt.help import manual_url
from huijiao_plugin.toolbelt.i18n import tr


def open_manual(section: str = "") -> bool:
    """Open the Chinese manual (at ``section``) in the system browser."""
    return QDesktopServices.openUrl(manual_url(section))


class HuijiaoDockTitleBar(QWidget):
    """Title, 帮助, float and close; follows the dock's title and features."""

    def __init__(self, dock: QDockWidget, section: str):
        super().__init__(dock)
        self.setObjectName("HuijiaoDockTitleBar")
        self.dock = dock
        self.section = section
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 1, 2, 1)
        layout.setSpacing(2)
        self.title_label = QLabel(dock.windowTitle(), self)
        layout.addWidget(self.title_label, 1)
        self.help_button = self._button(QgsApplication.getThemeIcon("mActionHelpContents.svg"), tr("Help"))
        self.help_button.setObjectName("HuijiaoDockHelpButton")
        self.help_button.clicked.connect(self.show_help)
        style = self.style()
        self.float_button = self._button(style.standardIcon(QStyle.StandardPixmap.SP_TitleBarNormalButton),
                                         tr("Float or dock the panel"))  # fmt: skip
        self.float_button.clicked.connect(lambda: dock.setFloating(not dock.isFloating()))
        self.close_button = self._button(style.standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton),
                                         tr("Close the panel"))  # fmt: skip
        self.close_button.clicked.connect(dock.close)
        for button in (self.help_button, self.float_button, self.close_button):
            layout.addWidget(button)
        dock.windowTitleChanged.connect(self.title_label.setText)

    def _button(self, icon, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setIcon(icon)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button

    def show_help(self) -> bool:
        return open_manual(self.section)
