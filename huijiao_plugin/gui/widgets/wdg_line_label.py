"""A status line that takes no room while it has nothing to say (small screens need the height)."""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QLabel


class HuijiaoLineLabel(QLabel):
    """A word-wrapped QLabel, hidden while its text is empty."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setVisible(False)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt API)
        super().setText(text)
        self.setVisible(bool(text))

    def clear(self) -> None:
        super().clear()
        self.setVisible(False)
