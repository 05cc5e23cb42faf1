"""Shared base class of every huijiao Processing algorithm."""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm

from huijiao_plugin.toolbelt.help import GROUP_SECTIONS, SECTION_PROCESSING, manual_url
from huijiao_plugin.toolbelt.i18n import tr

GROUP_IDS = ("basic", "catalog", "compare", "patches", "exchange")


def group_name(group_id: str) -> str:
    """Translated display name of a group (literal tr() calls so that pylupdate5 extracts them)."""
    names = {
        "basic": tr("Basic tools"),
        "catalog": tr("Shared data"),
        "compare": tr("Farmland comparison"),
        "patches": tr("Change patches"),
        "exchange": tr("Exchange"),
    }
    return names[group_id]


class HuijiaoAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set ``ALG_ID``, ``GROUP_ID``; implement ``displayName``, ``initAlgorithm`` and
    ``processAlgorithm``. ``createInstance`` and the group come from here."""

    ALG_ID = ""
    GROUP_ID = "basic"

    def name(self) -> str:
        return self.ALG_ID

    def group(self) -> str:
        return group_name(self.GROUP_ID)

    def groupId(self) -> str:
        return self.GROUP_ID

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()

    def helpUrl(self) -> str:  # noqa: N802 (QGIS API)
        """The section of the Chinese manual (shipped in the plugin) about this algorithm's group."""
        return manual_url(GROUP_SECTIONS.get(self.GROUP_ID, SECTION_PROCESSING)).toString()
