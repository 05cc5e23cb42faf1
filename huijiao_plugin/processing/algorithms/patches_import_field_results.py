"""huijiao:importfieldresults — read a returned field package back into the change-patch GeoPackage."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
)

from huijiao_plugin.core.patches.field_package import FieldPackageError, import_field_package
from huijiao_plugin.core.patches.store import PatchStoreError
from huijiao_plugin.processing.algorithms.patches_common import add_store_parameter, open_store
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr


class ImportFieldResultsAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "importfieldresults"
    GROUP_ID = "patches"

    PACKAGE = "PACKAGE"
    USER = "USER"
    REPORT = "REPORT"

    def displayName(self) -> str:
        return tr("Import field results")

    def shortHelpString(self) -> str:
        return tr(
            "Reads a returned field package (its GeoPackage or the zip file), matches the patches by UUID"
            " and applies status, result, verifier, date, notes and photos with history. A package whose "
            "content was already imported is refused. Patches changed both at the desk and in the field "
            "since the export are reported as conflicts: the desk values stay, the field values are kept "
            "in the conflict table for you to resolve."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        add_store_parameter(self)
        self.addParameter(
            QgsProcessingParameterFile(
                self.PACKAGE,
                tr("Returned field package (.gpkg in the package folder, or .zip)"),
                QgsProcessingParameterFile.Behavior.File,
            )
        )
        self.addParameter(QgsProcessingParameterString(self.USER, tr("User name"), optional=True))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.REPORT, tr("Import report"), "JSON (*.json)", optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputNumber("APPLIED", tr("Patches updated")))
        self.addOutput(QgsProcessingOutputNumber("CONFLICTS", tr("Conflicts")))
        self.addOutput(QgsProcessingOutputNumber("REJECTED", tr("Refused changes")))
        self.addOutput(QgsProcessingOutputNumber("PHOTOS", tr("Photos added")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        store = open_store(self, parameters, context)
        package = self.parameterAsFile(parameters, self.PACKAGE, context)
        report_path = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        try:
            report = import_field_package(
                store,
                package,
                user=self.parameterAsString(parameters, self.USER, context) or "",
                report_path=report_path,
            )
        except (FieldPackageError, PatchStoreError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(report.summary())
        for conflict in report.conflicts:
            feedback.reportError(
                tr("Conflict on patch {number}: {reason}").format(
                    number=conflict["number"], reason=conflict["reason"]
                )
            )
        for rejected in report.rejected:
            feedback.reportError(
                tr("Refused for patch {number}: {reason}").format(
                    number=rejected["number"], reason=rejected["reason"]
                )
            )
        return {
            self.REPORT: report_path or "",
            "APPLIED": len(report.applied),
            "CONFLICTS": len(report.conflicts),
            "REJECTED": len(report.rejected),
            "PHOTOS": report.photos_added,
        }
