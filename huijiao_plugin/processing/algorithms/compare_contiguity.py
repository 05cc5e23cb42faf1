"""huijiao:contiguity — 集中连片: blocks of adjacent PBF or farmland within a tolerance and their size
classes."""

from __future__ import annotations

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.processing.algorithms.compare_common import CompareAlgorithm


class CompareContiguityAlgorithm(CompareAlgorithm):
    ALG_ID = "contiguity"
    PRESET = "contiguity"
    ROLES = [("PBF", True), ("DLTB", True)]
    OVERRIDES = [
        (
            "SIZE_CLASSES",
            "contiguity_size_classes_mu",
            QT_TRANSLATE_NOOP("@default", "Block size class bounds in mu (e.g. 10,50,100,500,1000)"),
        )
    ]
    HAS_BASE = True
    BASE_DEFAULT = "pbf"
    HAS_TOLERANCE = True
