"""huijiao:pbfexitcandidates — PBF inside each exit reason (优先调出候选), one row per patch and reason."""

from __future__ import annotations

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.processing.algorithms.compare_common import CompareAlgorithm


class ComparePbfExitCandidatesAlgorithm(CompareAlgorithm):
    ALG_ID = "pbfexitcandidates"
    PRESET = "pbfexitcandidates"
    ROLES = [
        ("PBF", False),
        ("DLTB", True),
        ("STBHHX", True),
        ("YZGHQ", True),
        ("TRHJZL", True),
        ("XZQ", True),
    ]
    OVERRIDES = [
        (
            "FRAGILE_CODES",
            "fragile_tbxhdm",
            QT_TRANSLATE_NOOP("@default", "Ecologically fragile TBXHDM codes"),
        ),
        (
            "SOIL_STRICT_VALUES",
            "soil_strict_values",
            QT_TRANSLATE_NOOP("@default", "Values of the strictly controlled soil category"),
        ),
        (
            "ENCLAVE_FRDBS_VALUES",
            "enclave_frdbs_values",
            QT_TRANSLATE_NOOP("@default", "FRDBS values marking enclaves"),
        ),
        (
            "FRAGMENT_MAX_MU",
            "fragment_max_mu",
            QT_TRANSLATE_NOOP("@default", "Fragment threshold: blocks under this many mu"),
        ),
    ]
    HAS_TOLERANCE = True
