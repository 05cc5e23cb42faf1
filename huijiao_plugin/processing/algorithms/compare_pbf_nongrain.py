"""huijiao:pbfnongrain — PBF on non-grain farmland or on land that is no longer farmland (非粮化)."""

from __future__ import annotations

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.processing.algorithms.compare_common import CompareAlgorithm


class ComparePbfNonGrainAlgorithm(CompareAlgorithm):
    ALG_ID = "pbfnongrain"
    PRESET = "pbfnongrain"
    ROLES = [("PBF", False), ("DLTB", False)]
    OVERRIDES = [
        (
            "NONGRAIN_CODES",
            "nongrain_codes",
            QT_TRANSLATE_NOOP("@default", "Non-grain ZZSXDM codes (e.g. FLS,WG)"),
        ),
        (
            "FARMLAND_CODES",
            "farmland_codes",
            QT_TRANSLATE_NOOP("@default", "Farmland DLBM codes (comma separated)"),
        ),
        (
            "OCCUPATION_PREFIXES",
            "nongrain_occupation_prefixes",
            QT_TRANSLATE_NOOP("@default", "DLBM prefixes counted as occupation (empty = all)"),
        ),
    ]
