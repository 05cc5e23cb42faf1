"""huijiao:patchchecklist — the field-verification checklist (xlsx, one row per change patch)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFileDestination,
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

    TITLE = "TITLE"
    OUTPUT = "OUTPUT"

    def displayName(self) -> str:
        return tr("Patch checklist (xlsx)")

    def shortHelpString(self) -> str:
        return tr(
            "Writes the field-verification checklist: one row per change patch with number, UUID, type, "
            "region codes, area (m² and the chosen unit), centroid, status, result, verifier, date, notes "
            "and photo count, "
            "plus a sheet with totals per type."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        add_store_parameter(self)
        add_selection_parameters(self)
        add_area_unit_parameter(self)
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
            )
        except XlsxError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(tr("{n} rows written to {path}").format(n=len(uuids), path=str(path)))
        return {self.OUTPUT: str(path)}
