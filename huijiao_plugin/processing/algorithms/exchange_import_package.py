"""huijiao:importpackage — import an offline exchange package (verify, refuse a double import, load)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsVectorLayer,
)

from huijiao_plugin.core.exchange.offline import ImportRegistry, import_package
from huijiao_plugin.core.package import PackageError
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr


class ImportPackageAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "importpackage"
    GROUP_ID = "exchange"

    INPUT = "INPUT"
    DESTINATION = "DESTINATION"
    REGISTRY = "REGISTRY"
    LOAD = "LOAD"

    def displayName(self) -> str:
        return tr("Import exchange package (offline)")

    def shortHelpString(self) -> str:
        return tr(
            "Imports a package received on a disk or through a folder: checks the package hash (.sha256 side "
            "file) and the hash of every data file, refuses a package that was already imported, extracts it "
            "and loads its layers."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(
            QgsProcessingParameterFile(self.INPUT, tr("Package"), extension="zip"),
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.DESTINATION,
                tr("Extract to (empty: the profile folder)"),
                optional=True,
                createByDefault=False,
            )
        )
        registry = QgsProcessingParameterFileDestination(
            self.REGISTRY,
            tr("Import registry (empty: the profile folder)"),
            "JSON (*.json)",
            optional=True,
            createByDefault=False,
        )
        registry.setFlags(registry.flags() | registry.FlagAdvanced)
        self.addParameter(registry)
        self.addParameter(QgsProcessingParameterBoolean(self.LOAD, tr("Load the layers"), True))
        self.addOutput(QgsProcessingOutputString("SHA256", tr("Package sha256")))
        self.addOutput(QgsProcessingOutputString("DATASET_ID", tr("Dataset id")))
        self.addOutput(QgsProcessingOutputString("DIRECTORY", tr("Extracted to")))
        self.addOutput(QgsProcessingOutputMultipleLayers("LAYERS", tr("Layers")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        path = self.parameterAsFile(parameters, self.INPUT, context)
        destination = self.parameterAsString(parameters, self.DESTINATION, context).strip() or None
        registry_path = self.parameterAsString(parameters, self.REGISTRY, context).strip() or None
        registry = ImportRegistry(registry_path)
        feedback.pushInfo(tr("Verifying {path}…").format(path=path))
        try:
            imported = import_package(path, destination, registry, HuijiaoSettings.load().region_code)
        except PackageError as error:
            raise QgsProcessingException(str(error)) from error
        feedback.setProgress(80)
        uris = []
        load = self.parameterAsBoolean(parameters, self.LOAD, context)
        for name, uri in imported.layer_uris:
            uris.append(uri)
            if load:
                layer = QgsVectorLayer(uri, name, "ogr")
                if not layer.isValid():
                    raise QgsProcessingException(
                        tr("The layer {name} of the package cannot be opened.").format(name=name)
                    )
                context.temporaryLayerStore().addMapLayer(layer)
                context.addLayerToLoadOnCompletion(
                    layer.id(), QgsProcessingContext.LayerDetails(name, context.project(), name)
                )
        feedback.pushInfo(
            tr("Imported {dataset} {region} {period} ({n} layers).").format(
                dataset=imported.manifest.get("dataset_id"),
                region=imported.manifest.get("region_code"),
                period=imported.manifest.get("period"),
                n=len(uris),
            )
        )
        feedback.setProgress(100)
        return {
            "SHA256": imported.sha256,
            "DATASET_ID": str(imported.manifest.get("dataset_id", "")),
            "DIRECTORY": str(imported.directory),
            "LAYERS": uris,
        }
