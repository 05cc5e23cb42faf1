"""确定/取消 buttons of the plugin's dialogs, named by the plugin's own translation: Qt's standard button
texts are only Chinese where Qt's own translations are installed, which many QGIS installs lack."""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QDialogButtonBox, QWidget

from huijiao_plugin.toolbelt.i18n import tr


def ok_cancel_buttons(parent: QWidget) -> QDialogButtonBox:
    box = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, parent
    )
    box.button(QDialogButtonBox.StandardButton.Ok).setText(tr("&OK"))
    box.button(QDialogButtonBox.StandardButton.Cancel).setText(tr("Cancel"))
    return box
