"""huijiao:buildpackage — pre-flight validation, then the exchange package (zip + manifest)."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.exchange.offline import export_package
from huijiao_plugin.core.package import LayerInput, PackageError, build_package, package_layer_names
from huijiao_plugin.core.preflight import run_preflight
from huijiao_plugin.core.settings import DEPARTMENTS, HuijiaoSettings
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr


class BuildPackageAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "buildpackage"
    GROUP_ID = "exchange"

    INPUT = "INPUT"
    DATASET_ID = "DATASET_ID"
    LAYER_NAMES = "LAYER_NAMES"
    REGION_CODE = "REGION_CODE"
    PERIOD = "PERIOD"
    DEPARTMENT = "DEPARTMENT"
    UNIT = "UNIT"
    CRS = "CRS"
    SOURCES = "SOURCES"
    ACCEPT_WARNINGS = "ACCEPT_WARNINGS"
    OUTPUT = "OUTPUT"
    EXPORT_FOLDER = "EXPORT_FOLDER"

    def displayName(self) -> str:
        return tr("Build exchange package")

    def shortHelpString(self) -> str:
        return tr(
            "Validates the layers (catalog checks, geometry validity, overlaps in partition layers, "
            "region codes, required fields) and writes the exchange package: a zip with manifest.json and "
            "the data as a deterministic GeoPackage. Errors stop the build; warnings stop it unless they "
            "are accepted. Region, department and unit default to the plugin settings. Optionally copies "
            "the package to a folder for offline exchange."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.INPUT, tr("Layers"), QgsProcessing.SourceType.TypeVectorAnyGeometry
            )
        )
        self.addParameter(QgsProcessingParameterString(self.DATASET_ID, tr("Dataset id (catalog)")))
        self.addParameter(
            QgsProcessingParameterString(
                self.LAYER_NAMES, tr("Layer names in the package (comma separated)"), optional=True
            )
        )
        self.addParameter(QgsProcessingParameterString(self.REGION_CODE, tr("Region code"), optional=True))
        self.addParameter(QgsProcessingParameterString(self.PERIOD, tr("Period (2025, 2025H1, 2025Q3)")))
        self.addParameter(
            QgsProcessingParameterEnum(
                self.DEPARTMENT,
                tr("Department (empty: from the settings)"),
                options=list(DEPARTMENTS),
                optional=True,
                allowMultiple=False,
            )
        )
        self.addParameter(QgsProcessingParameterString(self.UNIT, tr("Producing unit"), optional=True))
        self.addParameter(QgsProcessingParameterCrs(self.CRS, tr("Package CRS"), optional=True))
        self.addParameter(
            QgsProcessingParameterString(
                self.SOURCES, tr("Source versions (JSON list) for derived results"), optional=True
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.ACCEPT_WARNINGS, tr("Accept warnings"), False))
        self.addParameter(
            QgsProcessingParameterFileDestination(self.OUTPUT, tr("Package"), tr("Exchange package (*.zip)"))
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.EXPORT_FOLDER,
                tr("Also copy to folder (offline exchange)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputString("SHA256", tr("Package sha256")))
        self.addOutput(QgsProcessingOutputString("PACKAGE_UUID", tr("Package UUID")))
        self.addOutput(QgsProcessingOutputString("EXPORTED", tr("Offline copy")))
        self.addOutput(QgsProcessingOutputNumber("ERRORS", tr("Validation errors")))
        self.addOutput(QgsProcessingOutputNumber("WARNINGS", tr("Validation warnings")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers:
            raise QgsProcessingException(tr("Choose at least one layer to package."))
        settings = HuijiaoSettings.load()
        dataset_id = self.parameterAsString(parameters, self.DATASET_ID, context).strip()
        region = self.parameterAsString(parameters, self.REGION_CODE, context).strip() or settings.region_code
        period = self.parameterAsString(parameters, self.PERIOD, context).strip()
        department = settings.department
        if parameters.get(self.DEPARTMENT) not in (None, ""):
            department = DEPARTMENTS[self.parameterAsEnum(parameters, self.DEPARTMENT, context)]
        unit = self.parameterAsString(parameters, self.UNIT, context).strip() or settings.unit_name
        crs = self.parameterAsCrs(parameters, self.CRS, context)
        names_text = self.parameterAsString(parameters, self.LAYER_NAMES, context).strip()
        if names_text:
            names = [n.strip() for n in names_text.split(",")]
            if len(names) != len(layers):
                raise QgsProcessingException(tr("Give one package layer name per input layer."))
        else:
            names = package_layer_names(dataset_id, [layer.name() for layer in layers])
        sources_text = self.parameterAsString(parameters, self.SOURCES, context).strip()
        try:
            sources = json.loads(sources_text) if sources_text else []
        except ValueError as error:
            raise QgsProcessingException(
                tr("The source versions are not valid JSON: {error}").format(error=error)
            ) from error
        if not isinstance(sources, list):
            raise QgsProcessingException(tr("The source versions must be a JSON list."))

        feedback.pushInfo(tr("Pre-flight validation…"))
        pairs = list(zip(names, layers))
        report = run_preflight(
            pairs,
            dataset_id,
            settings.region_code,
            region,
            progress=lambda v: feedback.setProgress(0.4 * v),
            is_canceled=feedback.isCanceled,
        )
        for finding in report.findings:
            text = f"[{finding.code}] {finding.message}"
            if finding.severity == "error":
                feedback.reportError(text)
            else:
                feedback.pushWarning(text)
        if feedback.isCanceled():
            return {}
        if report.errors:
            raise QgsProcessingException(
                tr("Validation found {n} errors; the package was not built.").format(n=len(report.errors))
            )
        accept = self.parameterAsBoolean(parameters, self.ACCEPT_WARNINGS, context)
        if report.warnings and not accept:
            raise QgsProcessingException(
                tr("Validation found {n} warnings; check them and accept them to build the package.").format(
                    n=len(report.warnings)
                )
            )
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        feedback.pushInfo(tr("Writing the package…"))
        try:
            built = build_package(
                output,
                [LayerInput(layer, name) for name, layer in pairs],
                dataset_id=dataset_id,
                region_code=region,
                period=period,
                department=department,
                unit=unit,
                crs=crs if crs.isValid() else None,
                validation=report.to_validation(),
                sources=sources,
                progress=lambda v: feedback.setProgress(40 + 0.6 * v),
                is_canceled=feedback.isCanceled,
            )
        except PackageError as error:
            raise QgsProcessingException(str(error)) from error
        exported = ""
        folder = self.parameterAsString(parameters, self.EXPORT_FOLDER, context).strip()
        if folder:
            try:
                exported = str(export_package(built.path, folder))
            except PackageError as error:
                raise QgsProcessingException(str(error)) from error
            feedback.pushInfo(tr("Copied to {path}").format(path=exported))
        feedback.pushInfo(tr("Package {path}, sha256 {sha}").format(path=built.path, sha=built.sha256))
        validation = report.to_validation()
        return {
            self.OUTPUT: str(built.path),
            "SHA256": built.sha256,
            "PACKAGE_UUID": built.manifest["package_uuid"],
            "EXPORTED": exported,
            "ERRORS": validation["errors"],
            "WARNINGS": validation["warnings"],
        }
