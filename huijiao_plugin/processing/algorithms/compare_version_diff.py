"""huijiao:versiondiff — DLTB year N against N+1 matched spatially: added, removed and modified patches."""

from __future__ import annotations

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.processing.algorithms.compare_common import CompareAlgorithm


class CompareVersionDiffAlgorithm(CompareAlgorithm):
    ALG_ID = "versiondiff"
    PRESET = "versiondiff"
    ROLES = [("DLTB", False), ("DLTB_N1", False)]
    OVERRIDES = [
        (
            "COMPARE_FIELDS",
            "versiondiff_fields",
            QT_TRANSLATE_NOOP("@default", "Attributes to compare (e.g. DLBM,ZZSXDM)"),
        ),
        (
            "MATCH_RATIO",
            "versiondiff_match_ratio",
            QT_TRANSLATE_NOOP("@default", "Minimum overlap ratio of a matched pair (0–1)"),
        ),
    ]
