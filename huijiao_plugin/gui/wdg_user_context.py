"""A panel header: what the panel is for, plus the user context it works in (from HuijiaoSettings)."""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QLabel, QVBoxLayout, QWidget

from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.gui.user_context import context_lines


class HuijiaoUserContextWidget(QWidget):
    """Description label and context label; ``apply_settings()`` refreshes the context."""

    def __init__(self, description: str, fields: tuple[str, ...], parent=None, compact: bool = False):
        super().__init__(parent)
        self.setObjectName("HuijiaoUserContextWidget")
        self.fields = fields
        #: compact: one context line, the description as its tooltip (for panels that need the height)
        self.compact = compact
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.description_label = QLabel(description, self)
        self.description_label.setObjectName("HuijiaoDescriptionLabel")
        self.description_label.setWordWrap(True)
        layout.addWidget(self.description_label)
        self.description_label.setVisible(not compact)
        self.context_label = QLabel(self)
        self.context_label.setObjectName("HuijiaoContextLabel")
        self.context_label.setWordWrap(True)
        self.context_label.setVisible(bool(fields))
        layout.addWidget(self.context_label)

    def apply_settings(self, settings: HuijiaoSettings) -> None:
        lines = context_lines(settings, self.fields)
        if self.compact:  # department and region on the line, everything in the tooltip
            self.context_label.setText("　".join(lines[:2]))
            self.context_label.setToolTip("\n".join([self.description_label.text(), *lines]))
        else:
            self.context_label.setText("\n".join(lines))
