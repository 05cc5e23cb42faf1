"""Shared base of the 耕地比对 algorithms (group "compare"): a thin adapter over ``core.compare``.

One algorithm per declared preset (``core.compare.presets.PRESETS``), generated: its input layers by role
(DLTB, PBF, HSF, …), the preset's parameters and the thresholds MIN_AREA, MIN_WIDTH, NOISE_WIDTH (empty = the
rule profile's value), REGION_LEVEL; it writes OUTPUT (pieces with rule_id, category, areas and region codes),
OUTPUT_STATS (statistics by region) and optionally an xlsx workbook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsDataProvider,
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingAlgorithm,
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
    QgsProviderRegistry,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from huijiao_plugin.core.compare import provenance
from huijiao_plugin.core.compare.engine import CompareCanceledError, CompareError, CountyOverlay
from huijiao_plugin.core.compare.presets import LEVELS, PRESETS, PresetResult, run_preset
from huijiao_plugin.core.compare.rules import RuleProfile, RuleProfileError
from huijiao_plugin.core.compare.spec import CHOICE, NUMBER, ParamSpec, PresetSpec
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

REGION_LEVEL = "REGION_LEVEL"
RULES_PROFILE = "RULES_PROFILE"
OUTPUT = "OUTPUT"
OUTPUT_STATS = "OUTPUT_STATS"
XLSX = "XLSX"


def add_preset_parameter(alg: QgsProcessingAlgorithm, p: ParamSpec, profile: RuleProfile) -> None:
    """One run parameter of a preset as a Processing parameter: numbers and codes are optional (empty = the
    rule profile's value, shown as the default), a choice is an enum with the preset's default."""
    if p.kind == CHOICE:
        values = [v for v, _label in p.choices]
        param = QgsProcessingParameterEnum(
            p.name, tr(p.label), [tr(label) for _v, label in p.choices], defaultValue=values.index(p.default)
        )
    elif p.kind == NUMBER:
        param = QgsProcessingParameterNumber(
            p.name,
            tr(p.label),
            QgsProcessingParameterNumber.Type.Double,
            p.profile_default(profile),
            optional=True,
            minValue=0.0,
        )
    else:
        param = QgsProcessingParameterString(p.name, tr(p.label), optional=True)
    if p.help:
        param.setHelp(tr(p.help))
    alg.addParameter(param)


class CompareAlgorithm(HuijiaoAlgorithm):
    """One preset as a Processing algorithm; subclasses are generated from ``PRESETS`` (set ``PRESET``)."""

    GROUP_ID = "compare"
    PRESET = ""

    @property
    def spec(self) -> PresetSpec:
        return PRESETS[self.PRESET]

    def displayName(self) -> str:
        return tr(self.spec.title)

    def shortHelpString(self) -> str:
        lines = [tr(self.spec.help), ""]
        for role in self.spec.roles:
            if role.filter:
                lines.append(f"{role.role}: {tr(role.filter)}")
        lines.append(
            tr(
                "Pieces smaller than MIN_AREA, with a mean width area/perimeter under MIN_WIDTH or thinner "
                "than NOISE_WIDTH everywhere (digitising noise between the departments; 0 switches it off) "
                "are not reported. Every parameter left empty takes the value of the rule profile "
                "(domain.md §10). Every output feature carries rule_id, the category and the ellipsoidal "
                "area in m², mu and hectares."
            )
        )
        return "\n".join(lines)

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        for role in self.spec.roles:
            self.addParameter(
                QgsProcessingParameterVectorLayer(
                    role.role,
                    tr(ROLE_LABELS[role.role]),
                    [QgsProcessing.SourceType.TypeVectorPolygon],
                    optional=role.optional,
                )
            )
        profile = _default_profile()
        for p in self.spec.all_params:
            add_preset_parameter(self, p, profile)
        self.addParameter(
            QgsProcessingParameterEnum(
                REGION_LEVEL,
                tr("Statistics by"),
                [tr("County"), tr("Township"), tr("Village")],
                defaultValue=1,
            )
        )
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
    def _values(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """The preset's run values by parameter name; None where the run leaves the profile's value."""
        values: dict[str, Any] = {}
        for p in self.spec.all_params:
            if parameters.get(p.name) is None:
                continue
            if p.kind == CHOICE:
                values[p.name] = p.choices[self.parameterAsEnum(parameters, p.name, context)][0]
            elif p.kind == NUMBER:
                values[p.name] = self.parameterAsDouble(parameters, p.name, context)
            else:
                values[p.name] = self.parameterAsString(parameters, p.name, context).strip() or None
        return values

    def run_compare(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> tuple[PresetResult, CountyOverlay]:
        layers = {}
        for role in self.spec.roles:
            layer = self.parameterAsVectorLayer(parameters, role.role, context)
            if layer is not None:
                layers[role.role] = layer
        options, overrides = self.spec.options_and_overrides(self._values(parameters, context))
        path = self.parameterAsFile(parameters, RULES_PROFILE, context)
        error = ""
        overlay = None
        try:
            profile = RuleProfile.load(path or HuijiaoSettings.load().rules_profile_path)
            profile = profile.with_overrides(overrides)
            overlay = CountyOverlay(layers, profile, workers=2, feedback=feedback)
            result = run_preset(self.PRESET, overlay, options)
        except CompareCanceledError:
            error = tr("Canceled.")
        except (CompareError, RuleProfileError) as exc:
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
        del sink  # written and closed: the provenance goes beside it, once
        _write_provenance(dest, result, context)
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


def _write_provenance(dest: str, result: PresetResult, context: QgsProcessingContext) -> None:
    """The output's provenance: its layer metadata, and in a GeoPackage the ``huijiao_provenance`` row."""
    layer = context.getMapLayer(dest)
    if layer is not None:  # a temporary layer
        provenance.apply_to_layer(layer, result.provenance, result.title)
        return
    parts = QgsProviderRegistry.instance().decodeUri("ogr", dest)
    path = parts.get("path", "")
    if not path.lower().endswith(".gpkg"):
        return
    name = parts.get("layerName") or ""
    if not name:  # a file with one layer: its table
        written = QgsVectorLayer(path, "out", "ogr")
        subs = written.dataProvider().subLayers()
        del written  # closed before the provenance is written into the file
        name = subs[0].split(QgsDataProvider.sublayerSeparator())[1] if subs else Path(path).stem
    provenance.write_gpkg(path, name, result.provenance, result.title)


def _default_profile() -> RuleProfile:
    """The profile whose values the parameters show as defaults (the user's profile when readable)."""
    try:
        return RuleProfile.from_settings()
    except RuleProfileError:
        return RuleProfile.default()


def _class_name(preset_id: str) -> str:
    return "Compare" + preset_id.capitalize() + "Algorithm"


# one algorithm class per declared preset (the provider lists them through ALGORITHMS)
COMPARE_ALGORITHMS: list[type[CompareAlgorithm]] = [
    type(_class_name(preset_id), (CompareAlgorithm,), {"ALG_ID": preset_id, "PRESET": preset_id})
    for preset_id in PRESETS
]
