"""huijiao:ellipsoidalarea — 三调 ellipsoidal area (TBMJ) of every polygon, optionally KCMJ/TBDLMJ."""

from __future__ import annotations

from typing import Any

import numpy as np
from qgis.core import (
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from huijiao_plugin.compat import FieldType, wkb_display_string
from huijiao_plugin.core.ellipsoidal_area import EllipsoidalAreaCalculator, ZoneDetectionError
from huijiao_plugin.core.farmland_fields import fill_deductions, load_tkxs_table
from huijiao_plugin.core.units import M2_PER_HA, M2_PER_MU, round_half_up_array
from huijiao_plugin.processing.base import HuijiaoAlgorithm
from huijiao_plugin.toolbelt.i18n import tr

BATCH = 2000
MAX_REPORTED = 20  # individual feature problems reported before only counting them

AREA_M2, AREA_MU, AREA_HA = "AREA_M2", "AREA_MU", "AREA_HA"
TBMJ, KCXS, KCMJ, TBDLMJ = "TBMJ", "KCXS", "KCMJ", "TBDLMJ"
GDPDJB, GDLX = "GDPDJB", "GDLX"


def _double(name: str, length: int, precision: int) -> QgsField:
    return QgsField(name, FieldType.Double, "double", length, precision)


def _field_index(fields: QgsFields, name: str) -> int:
    """Index of ``name`` in ``fields``, case-insensitive (shapefiles and some GDBs use lower case)."""
    index = fields.lookupField(name)
    if index >= 0:
        return index
    for i, f in enumerate(fields):
        if f.name().upper() == name:
            return i
    return -1


def _value(attributes: list[Any], index: int) -> Any:
    if index < 0:
        return None
    value = attributes[index]
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    return value


def _zone_error(error: Exception) -> QgsProcessingException:
    return QgsProcessingException(
        tr(
            "Cannot determine the Gauss-Krüger zone of the coordinates: {detail}. Set the layer CRS "
            "(e.g. EPSG:4545 or EPSG:4524) or check whether X and Y are swapped, and run again."
        ).format(detail=error)
    )


class EllipsoidalAreaAlgorithm(HuijiaoAlgorithm):
    ALG_ID = "ellipsoidalarea"
    GROUP_ID = "basic"

    INPUT = "INPUT"
    FILL_TBMJ = "FILL_TBMJ"
    TKXS_TABLE = "TKXS_TABLE"
    OUTPUT = "OUTPUT"

    def displayName(self) -> str:
        return tr("Ellipsoidal area (TBMJ)")

    def shortHelpString(self) -> str:
        return tr(
            "Computes the ellipsoidal area of every polygon as the third national land survey does "
            "(TD/T 1055 quadrangle formula on the CGCS2000 ellipsoid, edges densified every 70 m, "
            "vertices rounded to 0.0001 m) and writes AREA_M2 (m², 2 decimals), AREA_MU (mu, 2 decimals) "
            "and AREA_HA (hectares, 4 decimals). The Gauss-Krüger zone comes from the layer CRS, or from "
            "8-digit zone-prefixed eastings when the layer has no CRS. Holes are subtracted, multipolygon "
            "parts summed; invalid geometries are measured as they are, ring by ring.\n"
            "Optionally also fills TBMJ, KCMJ = TBMJ × KCXS and TBDLMJ = TBMJ − KCMJ (2 decimals). "
            "KCXS comes from the feature's KCXS field, else from the terrace-ridge coefficient table by "
            "GDPDJB and GDLX (default values shipped with the plugin, overridable by a JSON table file)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, tr("Input polygon layer"), [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.FILL_TBMJ, tr("Also fill TBMJ, KCMJ and TBDLMJ"), defaultValue=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.TKXS_TABLE,
                tr("Terrace-ridge coefficient table (JSON, optional)"),
                extension="json",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, tr("Layer with ellipsoidal areas"), QgsProcessing.SourceType.TypeVectorPolygon
            )
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.GeometryType.PolygonGeometry:
            raise QgsProcessingException(
                tr("The input layer must be a polygon layer; '{name}' has {type} geometries.").format(
                    name=source.sourceName(), type=wkb_display_string(source.wkbType())
                )
            )
        fill = self.parameterAsBoolean(parameters, self.FILL_TBMJ, context)
        table_path = self.parameterAsFile(parameters, self.TKXS_TABLE, context)
        table = None
        if fill:
            try:
                table = load_tkxs_table(table_path or None)
            except (OSError, ValueError) as error:
                raise QgsProcessingException(
                    tr("Cannot read the terrace-ridge coefficient table: {error}").format(error=error)
                ) from error

        in_fields = source.fields()
        fields = QgsFields(in_fields)
        wanted = [_double(AREA_M2, 20, 2), _double(AREA_MU, 20, 2), _double(AREA_HA, 20, 4)]
        if fill:
            wanted += [
                _double(TBMJ, 18, 2),
                _double(KCXS, 6, 4),
                _double(KCMJ, 18, 2),
                _double(TBDLMJ, 18, 2),
            ]
        index: dict[str, int] = {}
        for f in wanted:
            i = _field_index(fields, f.name())
            if i < 0:
                fields.append(f)
                i = fields.count() - 1
            index[f.name()] = i
        kcxs_in = _field_index(in_fields, KCXS)
        gdpdjb_in = _field_index(in_fields, GDPDJB)
        gdlx_in = _field_index(in_fields, GDLX)

        sink, dest_id = self.parameterAsSink(
            parameters, self.OUTPUT, context, fields, source.wkbType(), source.sourceCrs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))

        calculator = EllipsoidalAreaCalculator(
            source.sourceCrs(), transform_context=context.transformContext()
        )
        feedback.pushInfo(tr("Area method: {method}").format(method=calculator.describe()))
        self._problems = 0
        self._feedback = feedback

        total = source.featureCount()
        step = 100.0 / total if total > 0 else 0.0
        done = 0
        batch: list[QgsFeature] = []
        # invalid geometries are measured as they are (ring by ring), as 三调 software does
        request = QgsFeatureRequest()
        for feature in source.getFeatures(
            request, QgsProcessingFeatureSource.Flag.FlagSkipGeometryValidityChecks
        ):
            if feedback.isCanceled():
                break
            batch.append(feature)
            if len(batch) >= BATCH:
                self._write_batch(
                    batch, calculator, fields, index, fill, table, (kcxs_in, gdpdjb_in, gdlx_in), sink
                )
                done += len(batch)
                batch = []
                feedback.setProgress(done * step)
        if batch and not feedback.isCanceled():
            self._write_batch(
                batch, calculator, fields, index, fill, table, (kcxs_in, gdpdjb_in, gdlx_in), sink
            )
            done += len(batch)
            feedback.setProgress(100.0)
        if self._problems > MAX_REPORTED:
            feedback.reportError(
                tr("{count} features had problems in total (only the first {shown} are listed).").format(
                    count=self._problems, shown=MAX_REPORTED
                )
            )
        feedback.pushInfo(tr("{count} features written.").format(count=done))
        return {self.OUTPUT: dest_id}

    # --- helpers ------------------------------------------------------------------------------------------

    def _report(self, message: str) -> None:
        self._problems += 1
        if self._problems <= MAX_REPORTED:
            self._feedback.reportError(message)

    def _areas(
        self, batch: list[QgsFeature], geometries: list[QgsGeometry], calculator: EllipsoidalAreaCalculator
    ) -> list[float | None]:
        try:
            return calculator.raw_areas(geometries).tolist()
        except ZoneDetectionError as error:
            raise _zone_error(error) from error
        except ValueError:
            pass
        # one bad geometry in the batch: compute one by one and report the bad ones
        result: list[float | None] = []
        for feature, geometry in zip(batch, geometries):
            try:
                result.append(calculator.area(geometry))
            except ZoneDetectionError as error:
                raise _zone_error(error) from error
            except ValueError as error:
                self._report(tr("Feature {fid}: no area ({error}).").format(fid=feature.id(), error=error))
                result.append(None)
        return result

    def _kcxs(
        self, attributes: list[Any], fid: int, table: Any, indices: tuple[int, int, int]
    ) -> float | None:
        kcxs_in, gdpdjb_in, gdlx_in = indices
        value = _value(attributes, kcxs_in)
        if value is not None:
            try:
                return float(value)
            except (TypeError, ValueError):
                self._report(
                    tr("Feature {fid}: KCXS '{value}' is not a number.").format(fid=fid, value=value)
                )
                return None
        level = _value(attributes, gdpdjb_in)
        kind = _value(attributes, gdlx_in)
        if level is None or str(level).strip() == "":
            return 0.0  # no slope level: not 耕地 (or 平地), no 田坎 deduction
        coefficient = table.lookup(level, kind)
        if coefficient is None:
            self._report(
                tr(
                    "Feature {fid}: no terrace-ridge coefficient for GDPDJB '{level}' and GDLX '{kind}'."
                ).format(fid=fid, level=level, kind=kind if kind is not None else "")
            )
        return coefficient

    def _write_batch(
        self,
        batch: list[QgsFeature],
        calculator: EllipsoidalAreaCalculator,
        fields: QgsFields,
        index: dict[str, int],
        fill: bool,
        table: Any,
        indices: tuple[int, int, int],
        sink: QgsFeatureSink,
    ) -> None:
        geometries = [f.geometry() for f in batch]
        areas = self._areas(batch, geometries, calculator)
        m2 = np.array([np.nan if a is None else a for a in areas], dtype=float)
        mu = round_half_up_array(m2 / M2_PER_MU, 2).tolist()
        ha = round_half_up_array(m2 / M2_PER_HA, 4).tolist()
        width = fields.count()
        i_m2, i_mu, i_ha = index[AREA_M2], index[AREA_MU], index[AREA_HA]
        written: list[QgsFeature] = []
        for feature, geometry, area, area_mu, area_ha in zip(batch, geometries, areas, mu, ha):
            attributes = feature.attributes()
            attributes += [None] * (width - len(attributes))
            if area is not None:
                attributes[i_m2] = area
                attributes[i_mu] = area_mu
                attributes[i_ha] = area_ha
            else:
                attributes[i_m2] = attributes[i_mu] = attributes[i_ha] = None
            if fill:
                attributes[index[TBMJ]] = area
                kcxs = self._kcxs(attributes, feature.id(), table, indices)
                kcmj = tbdlmj = None
                if area is not None and kcxs is not None:
                    try:
                        kcmj, tbdlmj = fill_deductions(area, kcxs)
                    except ValueError as error:
                        self._report(tr("Feature {fid}: {error}").format(fid=feature.id(), error=error))
                if kcxs is not None and _value(attributes, index[KCXS]) is None:
                    attributes[index[KCXS]] = kcxs
                attributes[index[KCMJ]] = kcmj
                attributes[index[TBDLMJ]] = tbdlmj
            out = QgsFeature(fields, feature.id())
            out.setGeometry(geometry)
            out.setAttributes(attributes)
            written.append(out)
        if not sink.addFeatures(written, QgsFeatureSink.Flag.FastInsert):
            raise QgsProcessingException(
                tr("Cannot write to the output layer: {error}").format(error=sink.lastError())
            )
