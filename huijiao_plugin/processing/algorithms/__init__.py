"""Registry of the provider's algorithms: one module per algorithm, listed here once."""

from __future__ import annotations

from huijiao_plugin.processing.algorithms.check_dataset import CheckDatasetAlgorithm
from huijiao_plugin.processing.algorithms.compare_common import COMPARE_ALGORITHMS
from huijiao_plugin.processing.algorithms.compare_province import CompareProvinceAlgorithm
from huijiao_plugin.processing.algorithms.ellipsoidal_area import EllipsoidalAreaAlgorithm
from huijiao_plugin.processing.algorithms.exchange_build_package import BuildPackageAlgorithm
from huijiao_plugin.processing.algorithms.exchange_import_package import ImportPackageAlgorithm
from huijiao_plugin.processing.algorithms.exchange_submit_package import SubmitPackageAlgorithm
from huijiao_plugin.processing.algorithms.patches_atlas import PatchAtlasAlgorithm
from huijiao_plugin.processing.algorithms.patches_checklist import PatchChecklistAlgorithm
from huijiao_plugin.processing.algorithms.patches_field_package import FieldPackageAlgorithm
from huijiao_plugin.processing.algorithms.patches_from_comparison import PatchesFromComparisonAlgorithm
from huijiao_plugin.processing.algorithms.patches_import_field_results import ImportFieldResultsAlgorithm

ALGORITHMS = [
    CheckDatasetAlgorithm,
    EllipsoidalAreaAlgorithm,
    BuildPackageAlgorithm,
    ImportPackageAlgorithm,
    SubmitPackageAlgorithm,
    PatchesFromComparisonAlgorithm,
    FieldPackageAlgorithm,
    PatchAtlasAlgorithm,
    PatchChecklistAlgorithm,
    ImportFieldResultsAlgorithm,
    *COMPARE_ALGORITHMS,
    CompareProvinceAlgorithm,
]
