"""huijiao:boundarycompare — two polygon layers without shared ids: only in A, only in B, both, overlap ratio
(套合率)."""

from __future__ import annotations

from huijiao_plugin.processing.algorithms.compare_common import CompareAlgorithm


class CompareBoundaryAlgorithm(CompareAlgorithm):
    ALG_ID = "boundarycompare"
    PRESET = "boundarycompare"
    ROLES = [("A", False), ("B", False)]
    OVERRIDES = []
