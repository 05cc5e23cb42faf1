"""Shared base of the 耕地比对 algorithms (group "compare"): a thin adapter over ``core.compare``.

Every algorithm takes its input layers by role (DLTB, PBF, HSF, …), the sliver thresholds MIN_AREA (default
0.5 m²,
domain.md §6), MIN_WIDTH (area / perimeter, default 0.1 m, §6) and NOISE_WIDTH (default 1.0 m), REGION_LEVEL,
rule
overrides as text, and writes OUTPUT (pieces with rule_id, rule_params, inputs, areas and region codes),
OUTPUT_STATS (statistics by region) and optionally an xlsx workbook.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.core.compare.engine import CompareCanceledError, CompareError, CountyOverlay
from huijiao_plugin.core.compare.presets import LEVELS, PRESETS, CompareOptions, PresetResult, run_preset
from huijiao_plugin.core.compare.rules import RuleProfile, RuleProfileError
from huijiao_plugin.core.compare.statistics import (
    region_statistics,
    result_features,
    result_fields,
    stats_features,
    stats_fields,
)
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.core.units import m2_to_mu
from huijiao_plugin.core.xlsx import XlsxError, write_statistics_xlsx
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr

# role -> English description (translated at call time)
ROLE_LABELS = {
    "DLTB": QT_TRANSLATE_NOOP("@default", "Land-use patches DLTB (year N)"),
    "DLTB_N1": QT_TRANSLATE_NOOP("@default", "Land-use patches DLTB (year N+1)"),
    "PBF": QT_TRANSLATE_NOOP("@default", "Permanent basic farmland YJJBNTBHTB"),
    "HSF": QT_TRANSLATE_NOOP("@default", "High-standard farmland plots"),
    "STBHHX": QT_TRANSLATE_NOOP("@default", "Ecological protection red line STBHHX"),
    "YZGHQ": QT_TRANSLATE_NOOP("@default", "Severe drought area"),
    "TRHJZL": QT_TRANSLATE_NOOP("@default", "Soil environmental quality categories"),
    "JCTB": QT_TRANSLATE_NOOP("@default", "Monitoring patches JCTB"),
    "XZQ": QT_TRANSLATE_NOOP("@default", "Townships XZQ (for statistics)"),
    "CJDCQ": QT_TRANSLATE_NOOP("@default", "Villages CJDCQ (for statistics)"),
    "A": QT_TRANSLATE_NOOP("@default", "Layer A"),
    "B": QT_TRANSLATE_NOOP("@default", "Layer B"),
}

MIN_AREA = "MIN_AREA"
MIN_WIDTH = "MIN_WIDTH"
NOISE_WIDTH = "NOISE_WIDTH"
REGION_LEVEL = "REGION_LEVEL"
BASE = "BASE"
TOLERANCE = "TOLERANCE"
RULES_PROFILE = "RULES_PROFILE"
OUTPUT = "OUTPUT"
OUTPUT_STATS = "OUTPUT_STATS"
XLSX = "XLSX"
BASES = ("farmland", "pbf")


class CompareAlgorithm(HuijiaoAlgorithm):
    """Subclasses set ``PRESET``, ``ROLES`` [(role, optional)], ``OVERRIDES`` [(parameter, profile key,
    English
    description)], ``HAS_BASE`` / ``BASE_DEFAULT`` and ``HAS_TOLERANCE``."""

    GROUP_ID = "compare"
    PRESET = ""
    ROLES: list[tuple[str, bool]] = []
    OVERRIDES: list[tuple[str, str, str]] = []
    HAS_BASE = False
    BASE_DEFAULT = "farmland"
    HAS_TOLERANCE = False

    def displayName(self) -> str:
        return tr(PRESETS[self.PRESET].title)

    def shortHelpString(self) -> str:
        return (
            tr(PRESETS[self.PRESET].help)
            + "\n\n"
            + tr(
                "Pieces smaller than MIN_AREA (default 0.5 m²), with a mean width area/perimeter "
                "under MIN_WIDTH "
                "(default 0.1 m) or thinner than NOISE_WIDTH everywhere (default 1.0 m, digitising noise "
                "between the departments; 0 switches it off) are not reported. Rule defaults come from the "
                "rule profile (domain.md §10) and can be overridden per run. Every output feature carries "
                "rule_id, rule_params, inputs and the ellipsoidal area in m², mu and hectares."
            )
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        for role, optional in self.ROLES:
            self.addParameter(
                QgsProcessingParameterVectorLayer(
                    role,
                    tr(ROLE_LABELS[role]),
                    [QgsProcessing.SourceType.TypeVectorPolygon],
                    optional=optional,
                )
            )
        for role in ("XZQ", "CJDCQ"):
            if role not in dict(self.ROLES):
                self.addParameter(
                    QgsProcessingParameterVectorLayer(
                        role,
                        tr(ROLE_LABELS[role]),
                        [QgsProcessing.SourceType.TypeVectorPolygon],
                        optional=True,
                    )
                )
        if self.HAS_BASE:
            self.addParameter(
                QgsProcessingParameterEnum(
                    BASE,
                    tr("Base layer"),
                    [tr("Farmland in DLTB"), tr("Permanent basic farmland")],
                    defaultValue=BASES.index(self.BASE_DEFAULT),
                )
            )
        if self.HAS_TOLERANCE:
            self.addParameter(
                QgsProcessingParameterNumber(
                    TOLERANCE,
                    tr("Contiguity tolerance (m)"),
                    QgsProcessingParameterNumber.Type.Double,
                    0.5,
                    minValue=0.0,
                )
            )
        for name, default, label in (
            (MIN_AREA, 0.5, "Minimum piece area (m²)"),
            (MIN_WIDTH, 0.1, "Minimum mean width area/perimeter (m)"),
            (NOISE_WIDTH, 1.0, "Digitising noise width (m, 0 = off)"),
        ):
            self.addParameter(
                QgsProcessingParameterNumber(
                    name, tr(label), QgsProcessingParameterNumber.Type.Double, default, minValue=0.0
                )
            )
        self.addParameter(
            QgsProcessingParameterEnum(
                REGION_LEVEL,
                tr("Statistics by"),
                [tr("County"), tr("Township"), tr("Village")],
                defaultValue=1,
            )
        )
        for name, _key, label in self.OVERRIDES:
            self.addParameter(QgsProcessingParameterString(name, tr(label), optional=True))
        self.addParameter(
            QgsProcessingParameterFile(
                RULES_PROFILE, tr("Rule profile (JSON, optional)"), extension="json", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                OUTPUT, tr("Comparison result"), QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                OUTPUT_STATS, tr("Statistics by region"), QgsProcessing.SourceType.TypeVector, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                XLSX, tr("Statistics workbook (xlsx)"), "Excel (*.xlsx)", optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputNumber("COUNT", tr("Number of pieces")))
        self.addOutput(QgsProcessingOutputNumber("AREA_M2", tr("Total area (m²)")))
        self.addOutput(QgsProcessingOutputNumber("AREA_MU", tr("Total area (mu)")))

    # --- running --------------------------------------------------------------------------------------------
    def _profile(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RuleProfile:
        path = self.parameterAsFile(parameters, RULES_PROFILE, context)
        try:
            profile = RuleProfile.load(path or HuijiaoSettings.load().rules_profile_path)
            overrides = {}
            for name, key, _label in self.OVERRIDES:
                text = self.parameterAsString(parameters, name, context).strip()
                if text:
                    overrides[key] = text
            return profile.with_overrides(overrides)
        except RuleProfileError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def run_compare(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> tuple[PresetResult, CountyOverlay]:
        layers = {}
        for role in [r for r, _ in self.ROLES] + ["XZQ", "CJDCQ"]:
            if role in layers:
                continue
            layer = self.parameterAsVectorLayer(parameters, role, context)
            if layer is not None:
                layers[role] = layer
        options = CompareOptions(
            min_area=self.parameterAsDouble(parameters, MIN_AREA, context),
            min_width=self.parameterAsDouble(parameters, MIN_WIDTH, context),
            noise_width=self.parameterAsDouble(parameters, NOISE_WIDTH, context),
        )
        if self.HAS_BASE:
            options.base = BASES[self.parameterAsEnum(parameters, BASE, context)]
        if self.HAS_TOLERANCE:
            options.tolerance = self.parameterAsDouble(parameters, TOLERANCE, context)
        profile = self._profile(parameters, context)
        error = ""
        overlay = None
        try:
            overlay = CountyOverlay(layers, profile, workers=2, feedback=feedback)
            result = run_preset(self.PRESET, overlay, options)
        except CompareCanceledError:
            error = tr("Canceled.")
        except CompareError as exc:
            error = str(exc)
        if error:
            # raised outside the handler, with the overlay dropped: no traceback keeps the layer snapshots
            # (feature sources) alive until after QGIS has exited
            overlay = None
            raise QgsProcessingException(error)
        for role, fids in result.repaired.items():
            feedback.reportError(
                tr("{role}: {n} invalid geometries repaired (feature ids {ids})").format(
                    role=role, n=len(fids), ids=", ".join(str(f) for f in fids[:20])
                )
            )
        return result, overlay

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        result, overlay = self.run_compare(parameters, context, feedback)
        fields = result_fields(result)
        sink, dest = self.parameterAsSink(
            parameters, OUTPUT, context, fields, QgsWkbTypes.Type.MultiPolygon, overlay.crs
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, OUTPUT))
        for feature in result_features(result, fields):
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        level = LEVELS[self.parameterAsEnum(parameters, REGION_LEVEL, context)]
        rows = region_statistics([result], level)
        outputs: dict[str, Any] = {OUTPUT: dest}
        stats_sink, stats_dest = self.parameterAsSink(
            parameters, OUTPUT_STATS, context, stats_fields(), QgsWkbTypes.Type.NoGeometry
        )
        if stats_sink is not None:
            stats_sink.addFeatures(stats_features(rows), QgsFeatureSink.Flag.FastInsert)
            outputs[OUTPUT_STATS] = stats_dest
        xlsx = self.parameterAsFileOutput(parameters, XLSX, context)
        if xlsx:
            try:
                outputs[XLSX] = str(write_statistics_xlsx(xlsx, rows, [result]))
            except XlsxError as exc:
                raise QgsProcessingException(str(exc)) from exc
        total = result.total_area_m2()
        feedback.pushInfo(result.summary())
        outputs.update({"COUNT": len(result.pieces), "AREA_M2": round(total, 2), "AREA_MU": m2_to_mu(total)})
        return outputs
