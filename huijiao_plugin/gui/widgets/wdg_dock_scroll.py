"""The scroll area around a dock's content: the content fills the dock and scrolls only below its minimum.

QScrollArea's own resizing (``widgetResizable``) gives a content with word-wrapped labels its preferred
height (height-for-width), so a panel that fits on a 768 px screen scrolls all the same and its bottom
buttons (运行, 提交) end up below the dock's edge. Here the content gets the viewport's size, never less
than its minimum size.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QEvent, QObject
from qgis.PyQt.QtWidgets import QFrame, QScrollArea, QWidget


class HuijiaoDockScrollArea(QScrollArea):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(False)

    def setWidget(self, widget: QWidget) -> None:  # noqa: N802 (Qt API)
        super().setWidget(widget)
        widget.installEventFilter(self)
        self.fit()

    def fit(self) -> None:
        widget = self.widget()
        if widget is None:
            return
        minimum = widget.minimumSizeHint().expandedTo(widget.minimumSize())
        size = self.viewport().size()
        widget.resize(max(size.width(), minimum.width()), max(size.height(), minimum.height()))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self.fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.fit()
        return super().eventFilter(watched, event)
