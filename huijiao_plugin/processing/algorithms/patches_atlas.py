"""huijiao:patchatlas — PDF map sheets, one page per change patch (外业核查图)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.patches.atlas import AtlasError, export_atlas
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


class PatchAtlasAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "patchatlas"
    GROUP_ID = "patches"

    CONTEXT_LAYERS = "CONTEXT_LAYERS"
    TITLE = "TITLE"
    DPI = "DPI"
    OUTPUT = "OUTPUT"

    def displayName(self) -> str:
        return tr("Patch map sheets (PDF atlas)")

    def shortHelpString(self) -> str:
        return tr(
            "Writes a PDF with one A4 page per change patch: the patch over the context layers, its number, "
            "type, area in the chosen unit, region codes, centroid (CGCS2000 longitude/latitude and "
            "Gauss-Krüger X/Y), the corner coordinates, a scale bar, a north arrow and blank fields for the "
            "verifier."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        add_store_parameter(self)
        add_selection_parameters(self)
        add_area_unit_parameter(self)
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.CONTEXT_LAYERS,
                tr("Context layers"),
                QgsProcessing.SourceType.TypeMapLayer,
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterString(self.TITLE, tr("Title"), optional=True))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.DPI,
                tr("Resolution (dpi)"),
                QgsProcessingParameterNumber.Type.Integer,
                150,
                minValue=72,
                maxValue=600,
            )
        )
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, tr("PDF atlas"), "PDF (*.pdf)"))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        store = open_store(self, parameters, context)
        uuids = selected_uuids(self, parameters, context, store)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        try:
            path = export_atlas(
                store,
                output,
                uuids,
                context_layers=self.parameterAsLayerList(parameters, self.CONTEXT_LAYERS, context),
                title=self.parameterAsString(parameters, self.TITLE, context) or "",
                dpi=self.parameterAsInt(parameters, self.DPI, context),
                unit=area_unit(self, parameters, context),
            )
        except AtlasError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(tr("{n} pages written to {path}").format(n=len(uuids), path=str(path)))
        return {self.OUTPUT: str(path)}
