"""huijiao:hsfcoverage — PBF covered / not covered by 高标准农田, HSF on non-farmland, coverage % per
region."""

from __future__ import annotations

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.processing.algorithms.compare_common import CompareAlgorithm


class CompareHsfCoverageAlgorithm(CompareAlgorithm):
    ALG_ID = "hsfcoverage"
    PRESET = "hsfcoverage"
    ROLES = [("PBF", False), ("HSF", False), ("DLTB", True)]
    OVERRIDES = [
        (
            "FARMLAND_CODES",
            "farmland_codes",
            QT_TRANSLATE_NOOP("@default", "Farmland DLBM codes (comma separated)"),
        )
    ]
