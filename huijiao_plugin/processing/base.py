"""Shared base class of every huijiao Processing algorithm."""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm

from huijiao_plugin.toolbelt.i18n import tr

# group id -> English display name (translated at call time, never at import time)
GROUPS = {
    "basic": "Basic tools",
    "catalog": "Shared data",
    "compare": "Farmland comparison",
    "patches": "Change patches",
    "exchange": "Exchange",
}


class HuijiaoAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set ``ALG_ID``, ``GROUP_ID``; implement ``displayName``, ``initAlgorithm`` and
    ``processAlgorithm``. ``createInstance`` and the group come from here."""

    ALG_ID = ""
    GROUP_ID = "basic"

    def name(self) -> str:
        return self.ALG_ID

    def group(self) -> str:
        return tr(GROUPS[self.GROUP_ID])

    def groupId(self) -> str:
        return self.GROUP_ID

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()
