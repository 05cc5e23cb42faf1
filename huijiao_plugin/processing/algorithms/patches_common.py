"""Parameters and helpers shared by the change-patch (变化图斑) algorithms."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.patches.store import PatchStore, PatchStoreError, select_patch_uuids
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
