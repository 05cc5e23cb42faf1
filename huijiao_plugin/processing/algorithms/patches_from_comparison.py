"""huijiao:patchesfromcomparison — turn a comparison output into numbered change patches (变化图斑)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from huijiao_plugin.core.compare import provenance
from huijiao_plugin.core.patches import schema
from huijiao_plugin.core.patches.from_comparison import patches_from_comparison
from huijiao_plugin.core.patches.geometry import RegionLookup
from huijiao_plugin.core.patches.store import PatchStore, PatchStoreError
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr

TYPE_OPTIONS = [""] + list(schema.PATCH_TYPES)


class PatchesFromComparisonAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "patchesfromcomparison"
    GROUP_ID = "patches"

    INPUT = "INPUT"
    STORE = "STORE"
    CRS = "CRS"
    COUNTY_CODE = "COUNTY_CODE"
    YEAR = "YEAR"
    PATCH_TYPE = "PATCH_TYPE"
    MIN_AREA = "MIN_AREA"
    XZQ = "XZQ"
    CJDCQ = "CJDCQ"
    MATCH_IOU = "MATCH_IOU"
    USER = "USER"

    def displayName(self) -> str:
        return tr("Change patches from a comparison")

    def shortHelpString(self) -> str:
        return tr(
            "Turns a comparison output (any polygon layer with a rule_id field) into change patches: "
            "pieces of the same patch type and rule that touch are merged, patches under the minimum area"
            " are dropped (defaults 200 m² for non-agricultural use, 400 m² otherwise; set a value to "
            "override), and the rest get a UUID and a number (county code + year + sequence). Region "
            "codes come from the township (XZQ) and village (CJDCQ) layers. Patches already in the "
            "GeoPackage (same type and rule, overlapping by the match ratio) are kept, so running the "
            "same comparison again creates no duplicates. The GeoPackage is created when it does not "
            "exist."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, tr("Comparison output"), [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.STORE, tr("Change-patch GeoPackage (created or updated)"), "GeoPackage (*.gpkg)"
            )
        )
        self.addParameter(
            QgsProcessingParameterCrs(
                self.CRS, tr("CRS of a new GeoPackage (default: input CRS)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterString(self.COUNTY_CODE, tr("County code (6 digits)"), optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.YEAR,
                tr("Year of the patch numbers"),
                QgsProcessingParameterNumber.Type.Integer,
                dt.date.today().year,
                minValue=1990,
                maxValue=2100,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.PATCH_TYPE,
                tr("Patch type when the rule id does not tell"),
                options=[tr("(none)")] + list(schema.PATCH_TYPES.values()),
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA,
                tr("Minimum patch area in m² (empty = defaults per type)"),
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.XZQ, tr("Townships (XZQ)"), [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.CJDCQ,
                tr("Villages (CJDCQ)"),
                [QgsProcessing.SourceType.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MATCH_IOU,
                tr("Overlap ratio for an existing patch to count as the same"),
                QgsProcessingParameterNumber.Type.Double,
                0.9,
                minValue=0.1,
                maxValue=1.0,
            )
        )
        self.addParameter(QgsProcessingParameterString(self.USER, tr("User name"), optional=True))
        self.addOutput(QgsProcessingOutputNumber("CREATED", tr("Patches created")))
        self.addOutput(QgsProcessingOutputNumber("MATCHED", tr("Patches already present")))
        self.addOutput(QgsProcessingOutputNumber("DROPPED", tr("Patches under the minimum area")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        path = Path(self.parameterAsFileOutput(parameters, self.STORE, context))
        county = (self.parameterAsString(parameters, self.COUNTY_CODE, context) or "").strip()
        if county and not (county.isdigit() and len(county) == 6):
            raise QgsProcessingException(tr("The county code must have 6 digits: {code}").format(code=county))
        try:
            if path.exists():
                store = PatchStore(path)
            else:
                crs = self.parameterAsCrs(parameters, self.CRS, context)
                store = PatchStore.create(
                    path, crs if crs.isValid() else source.sourceCrs(), county_code=county
                )
                feedback.pushInfo(tr("Created {path}").format(path=str(path)))
        except PatchStoreError as exc:
            raise QgsProcessingException(str(exc)) from exc
        type_index = self.parameterAsEnum(parameters, self.PATCH_TYPE, context)
        default_type = TYPE_OPTIONS[type_index] or None
        min_area = None
        if parameters.get(self.MIN_AREA) not in (None, ""):
            min_area = self.parameterAsDouble(parameters, self.MIN_AREA, context)
        regions = RegionLookup(
            store.crs,
            self.parameterAsVectorLayer(parameters, self.XZQ, context),
            self.parameterAsVectorLayer(parameters, self.CJDCQ, context),
            county_code=county,
        )
        input_layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        record = provenance.read_metadata(input_layer) if input_layer is not None else None
        try:
            result = patches_from_comparison(
                store,
                source,
                record=record,
                default_type=default_type,
                min_area_override=min_area,
                year=self.parameterAsInt(parameters, self.YEAR, context),
                county_code=county,
                regions=regions,
                user=self.parameterAsString(parameters, self.USER, context) or "",
                match_iou=self.parameterAsDouble(parameters, self.MATCH_IOU, context),
                feedback=feedback,
            )
        except (ValueError, PatchStoreError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(result.summary())
        if result.skipped_no_type:
            feedback.reportError(
                tr("{n} pieces have a rule id without a known patch type and were skipped.").format(
                    n=result.skipped_no_type
                )
            )
        return {
            self.STORE: str(path),
            "CREATED": len(result.created),
            "MATCHED": len(result.matched),
            "DROPPED": result.dropped_small,
        }
