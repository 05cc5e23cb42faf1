"""Statistics by region (county / township / village) of preset results, and their layers / tables.

Region codes come from each piece's ZLDWDM (first 6 / 9 / 12 digits, domain.md §8.3), else from the CJDCQ /
XZQ
polygon under it. Areas are summed in m² (三调 ellipsoidal) and converted once: 亩 (2 decimals), 公顷 (4
decimals).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.compat import FieldType
from huijiao_plugin.core.compare import provenance
from huijiao_plugin.core.compare.presets import (
    LEVELS,
    PresetResult,
    area_values,
    category_label,
)
from huijiao_plugin.toolbelt.i18n import tr

LEVEL_INDEX = {"county": 0, "township": 1, "village": 2}

# statistics columns: (field name, type, Chinese header with unit — used by the xlsx export)
STAT_COLUMNS: list[tuple[str, Any, str]] = [
    ("level", FieldType.String, "统计级别"),
    ("region_code", FieldType.String, "行政区代码"),
    ("region_name", FieldType.String, "行政区名称"),
    ("rule_id", FieldType.String, "规则"),
    ("category", FieldType.String, "类别代码"),
    ("category_name", FieldType.String, "类别"),
    ("count", FieldType.Int, "图斑数（块）"),
    ("area_m2", FieldType.Double, "面积（平方米）"),
    ("area_mu", FieldType.Double, "面积（亩）"),
    ("area_ha", FieldType.Double, "面积（公顷）"),
    ("ratio_pct", FieldType.Double, "比例（%）"),
]

LEVEL_NAMES = {"county": "县级", "township": "乡镇级", "village": "村级"}


@dataclass
class StatRow:
    level: str
    region_code: str
    region_name: str
    rule_id: str
    category: str
    category_name: str
    count: int
    area_m2: float
    ratio_pct: float | None = None

    def values(self) -> list[Any]:
        m2, mu, ha = area_values(self.area_m2)
        ratio = None if self.ratio_pct is None else round(self.ratio_pct, 2)
        return [
            self.level,
            self.region_code,
            self.region_name,
            self.rule_id,
            self.category,
            self.category_name,
            self.count,
            m2,
            mu,
            ha,
            ratio,
        ]


def region_statistics(results: Iterable[PresetResult], level: str = "township") -> list[StatRow]:
    """Counts and areas per region × preset × category; hsfcoverage adds a ``coverage`` row (covered % of
    PBF);
    contiguity counts blocks per size class."""
    if level not in LEVELS:
        raise ValueError(f"统计级别必须是 {LEVELS} 之一: {level}")
    idx = LEVEL_INDEX[level]
    rows: list[StatRow] = []
    for result in results:
        groups: dict[tuple[str, str], list[float]] = {}
        for piece in result.pieces:
            code = piece.codes[idx] if piece.codes else ""
            category = piece.category
            if result.rule_id == "huijiao:contiguity":
                category = "block " + str(piece.attrs.get("size_class", ""))
            acc = groups.setdefault((code, category), [0, 0.0])
            acc[0] += 1
            acc[1] += piece.area_m2
        for (code, category), (count, area) in sorted(groups.items()):
            label = (
                category_label(category)
                if not category.startswith("block ")
                else tr("Block {size} mu").format(size=category[6:])
            )
            rows.append(
                StatRow(level, code, _name(result, code), result.rule_id, category, label, int(count), area)
            )
        if result.rule_id == "huijiao:hsfcoverage":
            codes = sorted({code for code, _ in groups})
            for code in codes:
                covered = groups.get((code, "covered"), [0, 0.0])[1]
                total = covered + groups.get((code, "not_covered"), [0, 0.0])[1]
                if total > 0:
                    rows.append(
                        StatRow(
                            level,
                            code,
                            _name(result, code),
                            result.rule_id,
                            "coverage",
                            tr("HSF coverage of PBF"),
                            0,
                            total,
                            100.0 * covered / total,
                        )
                    )
    return rows


def _name(result: PresetResult, code: str) -> str:
    names = result.region_names
    return names.get(code, "")  # per code: a township never takes a village's name, nor the reverse


def stats_fields() -> QgsFields:
    fields = QgsFields()
    for name, typ, _header in STAT_COLUMNS:
        fields.append(QgsField(name, typ))
    return fields


def stats_features(rows: Sequence[StatRow]) -> list[QgsFeature]:
    fields = stats_fields()
    out = []
    for row in rows:
        feature = QgsFeature(fields)
        feature.setAttributes(row.values())
        out.append(feature)
    return out


def stats_layer(rows: Sequence[StatRow], name: str = "") -> QgsVectorLayer:
    """A geometry-less memory table of the statistics."""
    layer = QgsVectorLayer("None", name or tr("Comparison statistics"), "memory")
    layer.dataProvider().addAttributes(stats_fields().toList())
    layer.updateFields()
    layer.dataProvider().addFeatures(stats_features(rows))
    return layer


# --- result pieces as features / layers ---------------------------------------------------------------------

COMMON_FIELDS: list[tuple[str, Any]] = [
    ("rule_id", FieldType.String),
    ("category", FieldType.String),
    ("category_name", FieldType.String),
    ("area_m2", FieldType.Double),
    ("area_mu", FieldType.Double),
    ("area_ha", FieldType.Double),
    ("county_code", FieldType.String),
    ("town_code", FieldType.String),
    ("village_code", FieldType.String),
]


def result_fields(result: PresetResult) -> QgsFields:
    fields = QgsFields()
    for name, typ in COMMON_FIELDS + list(result.extra_fields):
        fields.append(QgsField(name, typ))
    return fields


def result_features(result: PresetResult, fields: QgsFields | None = None) -> Iterable[QgsFeature]:
    fields = fields or result_fields(result)
    labels: dict[str, str] = {}
    extra = [name for name, _ in result.extra_fields]
    for piece in result.pieces:
        feature = QgsFeature(fields)
        geom = QgsGeometry(piece.geom)
        geom.convertToMultiType()
        feature.setGeometry(geom)
        if piece.category not in labels:
            labels[piece.category] = category_label(piece.category)
        m2, mu, ha = area_values(piece.area_m2)
        values = [result.rule_id, piece.category, labels[piece.category], m2, mu, ha, *piece.codes]
        values += [piece.attrs.get(name) for name in extra]
        feature.setAttributes(values)
        yield feature


def result_layer(result: PresetResult, crs: QgsCoordinateReferenceSystem, name: str = "") -> QgsVectorLayer:
    """The pieces of ``result`` as a MultiPolygon memory layer."""
    layer = QgsVectorLayer(f"MultiPolygon?crs={crs.authid()}", name or result.title, "memory")
    if not crs.authid():
        layer.setCrs(crs)
    fields = result_fields(result)
    layer.dataProvider().addAttributes(fields.toList())
    layer.updateFields()
    layer.dataProvider().addFeatures(list(result_features(result, layer.fields())))
    layer.updateExtents()
    if result.provenance:  # once per output, not on every piece
        provenance.apply_to_layer(layer, result.provenance, result.title)
    return layer


WKB_OUTPUT = QgsWkbTypes.Type.MultiPolygon
