"""huijiao:hsfnotinpbf — built 高标准农田 on farmland that is not 永久基本农田 (划入候选)."""

from __future__ import annotations

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.processing.algorithms.compare_common import CompareAlgorithm


class CompareHsfNotInPbfAlgorithm(CompareAlgorithm):
    ALG_ID = "hsfnotinpbf"
    PRESET = "hsfnotinpbf"
    ROLES = [("DLTB", False), ("HSF", False), ("PBF", False)]
    OVERRIDES = [
        (
            "FARMLAND_CODES",
            "farmland_codes",
            QT_TRANSLATE_NOOP("@default", "Farmland DLBM codes (comma separated)"),
        )
    ]
