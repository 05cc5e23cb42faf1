"""Parameters and helpers shared by the change-patch (变化图斑) algorithms."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.patches.store import PatchStore, PatchStoreError, select_patch_uuids
from huijiao_plugin.core.settings import AREA_UNITS
from huijiao_plugin.core.units import UNIT_NAMES
from huijiao_plugin.toolbelt.i18n import tr

STORE = "STORE"
PATCH_IDS = "PATCH_IDS"
WHERE = "WHERE"
LIMIT = "LIMIT"


def add_store_parameter(alg: QgsProcessingAlgorithm) -> None:
    alg.addParameter(
        QgsProcessingParameterFile(
            STORE, tr("Change-patch GeoPackage (BGHTB)"), QgsProcessingParameterFile.Behavior.File, "gpkg"
        )
    )


def add_selection_parameters(alg: QgsProcessingAlgorithm) -> None:
    alg.addParameter(
        QgsProcessingParameterString(
            PATCH_IDS, tr("Patch numbers or UUIDs (comma separated, empty = all)"), optional=True
        )
    )
    alg.addParameter(
        QgsProcessingParameterString(WHERE, tr("Attribute filter (e.g. status = 'pending')"), optional=True)
    )
    alg.addParameter(
        QgsProcessingParameterNumber(
            LIMIT,
            tr("At most this many patches (0 = no limit)"),
            QgsProcessingParameterNumber.Type.Integer,
            0,
            minValue=0,
        )
    )


def open_store(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> PatchStore:
    path = alg.parameterAsFile(parameters, STORE, context)
    try:
        return PatchStore(path)
    except PatchStoreError as exc:
        raise QgsProcessingException(str(exc)) from exc


def selected_uuids(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext, store: PatchStore
) -> list[str]:
    ids_text = alg.parameterAsString(parameters, PATCH_IDS, context) or ""
    where = alg.parameterAsString(parameters, WHERE, context) or ""
    limit = alg.parameterAsInt(parameters, LIMIT, context)
    try:
        uuids = select_patch_uuids(store, ids_text, where, limit)
    except PatchStoreError as exc:
        raise QgsProcessingException(str(exc)) from exc
    except RuntimeError as exc:  # an OGR error in the filter
        raise QgsProcessingException(tr("Invalid attribute filter: {error}").format(error=str(exc))) from exc
    if not uuids:
        raise QgsProcessingException(tr("No change patches match the selection."))
    return uuids


AREA_UNIT = "AREA_UNIT"


def add_area_unit_parameter(alg: QgsProcessingAlgorithm) -> None:
    """The area unit of the output (亩 / 公顷 / 平方米, in AREA_UNITS order; default 亩)."""
    alg.addParameter(
        QgsProcessingParameterEnum(
            AREA_UNIT, tr("Area unit"), options=[UNIT_NAMES[u] for u in AREA_UNITS], defaultValue=0
        )
    )


def area_unit(alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
    return AREA_UNITS[alg.parameterAsEnum(parameters, AREA_UNIT, context)]
