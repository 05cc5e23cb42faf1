"""The Processing provider ``huijiao``: every analysis of the plugin as a Processing algorithm."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from huijiao_plugin.processing.algorithms import ALGORITHMS
from huijiao_plugin.toolbelt.i18n import tr
from huijiao_plugin.toolbelt.resources import icon_path


class HuijiaoProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "huijiao"

    def name(self) -> str:
        return tr("Huijiao farmland exchange")

    def longName(self) -> str:
        return self.name()

    def icon(self) -> QIcon:
        return QIcon(icon_path("huijiao.svg"))

    def svgIconPath(self) -> str:
        return icon_path("huijiao.svg")

    def loadAlgorithms(self) -> None:
        for algorithm_class in ALGORITHMS:
            self.addAlgorithm(algorithm_class())
