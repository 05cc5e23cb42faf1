"""huijiao:farmlandnonagri — farmland or PBF of year N that is construction in year N+1 or under
construction-type monitoring patches (非农化)."""

from __future__ import annotations

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.processing.algorithms.compare_common import CompareAlgorithm


class CompareFarmlandNonAgriAlgorithm(CompareAlgorithm):
    ALG_ID = "farmlandnonagri"
    PRESET = "farmlandnonagri"
    ROLES = [
        ("DLTB", False),
        ("PBF", True),
        ("DLTB_N1", True),
        ("JCTB", True),
    ]
    OVERRIDES = [
        (
            "CONSTRUCTION_PREFIXES",
            "construction_prefixes",
            QT_TRANSLATE_NOOP("@default", "Construction DLBM prefixes"),
        ),
        (
            "MONITORING_TBLX",
            "monitoring_construction_tblx",
            QT_TRANSLATE_NOOP("@default", "Construction-type TBLX codes of monitoring patches"),
        ),
        (
            "FARMLAND_CODES",
            "farmland_codes",
            QT_TRANSLATE_NOOP("@default", "Farmland DLBM codes (comma separated)"),
        ),
    ]
    HAS_BASE = True
    BASE_DEFAULT = "farmland"
