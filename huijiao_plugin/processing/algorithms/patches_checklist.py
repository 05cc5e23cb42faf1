"""huijiao:patchchecklist — the field-verification checklist (xlsx, one row per change patch)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.patches.checklist import write_checklist
from huijiao_plugin.core.xlsx import XlsxError
from huijiao_plugin.processing.algorithms.patches_common import (
    add_area_unit_parameter,
    add_selection_parameters,
    add_store_parameter,
    area_unit,
    open_store,
    selected_uuids,
)
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr


class PatchChecklistAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "patchchecklist"
    GROUP_ID = "patches"

    CONTEXT_LAYERS = "CONTEXT_LAYERS"
    TITLE = "TITLE"
    OUTPUT = "OUTPUT"

    def displayName(self) -> str:
        return tr("Patch checklist (xlsx)")

    def shortHelpString(self) -> str:
        return tr(
            "Writes the field-verification checklist: one row per change patch with number, UUID, type, "
            "regions by name and code, the rule by name, area (m² and the chosen unit), centroid, status, "
            "result, verifier, date, notes and photo count, plus a sheet with totals per type. Township and "
            "village names come from the context layers and the project's region layers."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        add_store_parameter(self)
        add_selection_parameters(self)
        add_area_unit_parameter(self)
        self.addParameter(  # township/village layers naming the regions (the project's are used too)
            QgsProcessingParameterMultipleLayers(
                self.CONTEXT_LAYERS,
                tr("Context layers"),
                QgsProcessing.SourceType.TypeVectorPolygon,
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterString(self.TITLE, tr("Title"), optional=True))
        self.addParameter(
            QgsProcessingParameterFileDestination(self.OUTPUT, tr("Checklist"), "Excel (*.xlsx)")
        )

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        store = open_store(self, parameters, context)
        uuids = selected_uuids(self, parameters, context, store)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        try:
            path = write_checklist(
                store,
                output,
                uuids,
                self.parameterAsString(parameters, self.TITLE, context),
                unit=area_unit(self, parameters, context),
                context_layers=self.parameterAsLayerList(parameters, self.CONTEXT_LAYERS, context),
            )
        except XlsxError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(tr("{n} rows written to {path}").format(n=len(uuids), path=str(path)))
        return {self.OUTPUT: str(path)}
