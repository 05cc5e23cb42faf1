"""huijiao:fieldpackage — export change patches as a field-verification package (GeoPackage + QGIS/QField
project)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDistance,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.patches.field_package import FieldPackageError, export_field_package
from huijiao_plugin.processing.algorithms.patches_common import (
    add_selection_parameters,
    add_store_parameter,
    open_store,
    selected_uuids,
)
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr


class FieldPackageAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "fieldpackage"
    GROUP_ID = "patches"

    CONTEXT_LAYERS = "CONTEXT_LAYERS"
    BUFFER = "BUFFER"
    BASEMAP = "BASEMAP"
    NAME = "NAME"
    ZIP = "ZIP"
    USER = "USER"
    OUTPUT = "OUTPUT"

    def displayName(self) -> str:
        return tr("Field verification package")

    def shortHelpString(self) -> str:
        return tr(
            "Writes a field-verification package into an empty folder: a GeoPackage with the selected change "
            "patches, a photo table and the context layers clipped to the patches plus a buffer, and a QGIS "
            "project with edit forms (status and result lists, date, photos) that opens in QGIS and QField. "
            "Optionally an MBTiles basemap from a raster file. Bring the folder back and run 'Import field "
            "results'."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        add_store_parameter(self)
        add_selection_parameters(self)
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.CONTEXT_LAYERS,
                tr("Context layers"),
                QgsProcessing.SourceType.TypeVectorAnyGeometry,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterDistance(
                self.BUFFER, tr("Area of interest: buffer around the patches"), 200.0, minValue=0.0
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.BASEMAP, tr("Basemap raster for MBTiles"), optional=True)
        )
        self.addParameter(QgsProcessingParameterString(self.NAME, tr("Package name"), optional=True))
        self.addParameter(
            QgsProcessingParameterBoolean(self.ZIP, tr("Also write a zip file"), defaultValue=False)
        )
        self.addParameter(QgsProcessingParameterString(self.USER, tr("User name"), optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, tr("Package folder")))
        self.addOutput(QgsProcessingOutputFile("PROJECT", tr("QGIS project")))
        self.addOutput(QgsProcessingOutputFile("GPKG", tr("Package GeoPackage")))
        self.addOutput(QgsProcessingOutputString("PACKAGE_ID", tr("Package id")))
        self.addOutput(QgsProcessingOutputNumber("COUNT", tr("Patches exported")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        store = open_store(self, parameters, context)
        uuids = selected_uuids(self, parameters, context, store)
        folder = self.parameterAsString(parameters, self.OUTPUT, context)
        context_layers = self.parameterAsLayerList(parameters, self.CONTEXT_LAYERS, context)
        try:
            result = export_field_package(
                store,
                folder,
                uuids,
                context_layers=[layer for layer in context_layers if layer.type() == layer.VectorLayer],
                name=self.parameterAsString(parameters, self.NAME, context) or "",
                buffer_m=self.parameterAsDouble(parameters, self.BUFFER, context),
                basemap=self.parameterAsRasterLayer(parameters, self.BASEMAP, context),
                user=self.parameterAsString(parameters, self.USER, context) or "",
                zip_package=self.parameterAsBool(parameters, self.ZIP, context),
                feedback=feedback,
            )
        except FieldPackageError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(
            tr("{n} patches exported to {path}").format(n=result.patch_count, path=str(result.folder))
        )
        return {
            self.OUTPUT: str(result.folder),
            "PROJECT": str(result.project),
            "GPKG": str(result.gpkg),
            "PACKAGE_ID": result.package_id,
            "COUNT": result.patch_count,
        }
