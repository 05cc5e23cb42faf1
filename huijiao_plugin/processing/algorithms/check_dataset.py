"""huijiao:checkdataset — check a layer against its shared-data catalog dataset (the standard)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.compat import FieldType
from huijiao_plugin.core.catalog import Catalog, CatalogError, catalog_from_settings, get_catalog
from huijiao_plugin.core.checks import CheckCanceledError, CheckError, CheckReport, check_layer
from huijiao_plugin.core.recognition import recognize_layer
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr

AUTO = "auto"
MAX_IDS_IN_TABLE = 10000


def findings_fields() -> QgsFields:
    fields = QgsFields()
    fields.append(QgsField("rule_id", FieldType.String, "string", 40))
    fields.append(QgsField("severity", FieldType.String, "string", 10))
    fields.append(QgsField("field", FieldType.String, "string", 40))
    fields.append(QgsField("value", FieldType.String, "string", 254))
    fields.append(QgsField("count", FieldType.Int, "integer"))
    fields.append(QgsField("message_zh", FieldType.String, "string", 500))
    fields.append(QgsField("feature_ids", FieldType.String, "string", 0))
    return fields


def finding_attributes(report: CheckReport) -> list[list[Any]]:
    rows = []
    for f in report.findings:
        ids = ",".join(str(i) for i in f.feature_ids[:MAX_IDS_IN_TABLE])
        rows.append([f.rule_id, f.severity, f.field, f.value, f.count, f.message_zh, ids])
    return rows


class CheckDatasetAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "checkdataset"
    GROUP_ID = "catalog"

    INPUT = "INPUT"
    DATASET = "DATASET"
    CATALOG_OVERRIDE = "CATALOG_OVERRIDE"
    OUTPUT = "OUTPUT"
    OUTPUT_FEATURES = "OUTPUT_FEATURES"
    ERRORS = "ERRORS"
    WARNINGS = "WARNINGS"
    DATASET_ID = "DATASET_ID"

    def displayName(self) -> str:
        return tr("Check dataset against the standard")

    def shortHelpString(self) -> str:
        return tr(
            "Checks a layer against its dataset in the shared-data catalog: coordinate system (CGCS2000 "
            "geographic or Gauss-Krüger zones), required fields and field types, codes outside their code "
            "tables (counted per value), DLMC not matching DLBM, empty and invalid geometries, duplicate BSM "
            "and the area field (TBMJ …) against the recomputed ellipsoidal area, tolerance max(0.1 m², "
            "1e-6 × area). DATASET 'auto' recognises the dataset from the layer name and fields.\n"
            "Outputs a findings table (one row per rule and value, severity error or warning, a Chinese "
            "message saying what to fix, the feature ids) and a layer of the offending features with the "
            "rule ids."
        )

    def _dataset_options(self) -> list[str]:
        return [AUTO] + get_catalog().dataset_ids()

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(QgsProcessingParameterVectorLayer(self.INPUT, tr("Layer to check")))
        self.addParameter(
            QgsProcessingParameterEnum(
                self.DATASET,
                tr("Catalog dataset ('auto' = recognise)"),
                options=self._dataset_options(),
                defaultValue=AUTO,
                usesStaticStrings=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.CATALOG_OVERRIDE,
                tr("Catalog override file (JSON, optional; default: the one in the settings)"),
                extension="json",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, tr("Findings"), QgsProcessing.SourceType.TypeVector
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT_FEATURES, tr("Offending features"), QgsProcessing.SourceType.TypeVectorAnyGeometry
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.ERRORS, tr("Number of error findings")))
        self.addOutput(QgsProcessingOutputNumber(self.WARNINGS, tr("Number of warning findings")))
        self.addOutput(QgsProcessingOutputString(self.DATASET_ID, tr("Checked dataset")))

    def _catalog(self, path: str) -> Catalog:
        if not path:
            return catalog_from_settings()
        try:
            return Catalog.load(path)
        except CatalogError as error:
            raise QgsProcessingException(str(error)) from error

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        catalog = self._catalog(self.parameterAsFile(parameters, self.CATALOG_OVERRIDE, context))
        dataset = self.parameterAsEnumString(parameters, self.DATASET, context) or AUTO
        mapping = None
        if dataset == AUTO:
            rec = recognize_layer(layer, catalog)
            if rec.dataset_id is None:
                raise QgsProcessingException(
                    tr("Cannot recognise which catalog dataset '{name}' is; choose the dataset.").format(
                        name=layer.name()
                    )
                )
            dataset, mapping = rec.dataset_id, rec.field_mapping
            feedback.pushInfo(
                tr("Recognised as {dataset} (confidence {confidence:.2f}): {evidence}").format(
                    dataset=dataset, confidence=rec.confidence, evidence="; ".join(rec.evidence)
                )
            )
        elif dataset not in catalog.datasets:
            raise QgsProcessingException(tr("Unknown catalog dataset: {id}").format(id=dataset))
        try:
            report = check_layer(layer, dataset, catalog, mapping=mapping, progress=feedback)
        except CheckCanceledError:
            return {}
        except CheckError as error:
            raise QgsProcessingException(str(error)) from error

        sink, dest_id = self.parameterAsSink(
            parameters, self.OUTPUT, context, findings_fields(), QgsWkbTypes.Type.NoGeometry
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        for attrs in finding_attributes(report):
            feat = QgsFeature(findings_fields())
            feat.setAttributes(attrs)
            sink.addFeature(feat, QgsFeatureSink.Flag.FastInsert)

        out_fields = QgsFields()
        out_fields.append(QgsField("hj_fid", FieldType.LongLong, "int8"))
        out_fields.append(QgsField("hj_rules", FieldType.String, "string", 254))
        for f in layer.fields():
            if out_fields.lookupField(f.name()) < 0:
                out_fields.append(f)
        feat_sink, feat_dest = self.parameterAsSink(
            parameters, self.OUTPUT_FEATURES, context, out_fields, layer.wkbType(), layer.crs()
        )
        if feat_sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT_FEATURES))
        offending = report.offending_ids()
        if offending:
            for src in layer.getFeatures(sorted(offending)):
                out = QgsFeature(out_fields)
                out.setGeometry(src.geometry())
                out.setAttributes([src.id(), ",".join(offending[src.id()])] + src.attributes())
                feat_sink.addFeature(out, QgsFeatureSink.Flag.FastInsert)
        for f in report.findings:
            (feedback.reportError if f.severity == "error" else feedback.pushInfo)(
                f"[{f.rule_id}] {f.message_zh}"
            )
        feedback.pushInfo(
            tr("{errors} errors, {warnings} warnings in {n} features ({s:.1f} s)").format(
                errors=report.error_count,
                warnings=report.warning_count,
                n=report.feature_count,
                s=report.elapsed_s,
            )
        )
        return {
            self.OUTPUT: dest_id,
            self.OUTPUT_FEATURES: feat_dest,
            self.ERRORS: report.error_count,
            self.WARNINGS: report.warning_count,
            self.DATASET_ID: dataset,
        }
