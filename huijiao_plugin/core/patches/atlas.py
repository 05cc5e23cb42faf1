"""外业核查图 (per-patch map sheets): a PDF atlas, one A4 page per patch, rendered with Chinese fonts.

Each page shows the patch over the chosen context layers, its number, type, area (m² and 亩), region codes,
centroid (CGCS2000 lon/lat, Gauss-Krüger X/Y) and the corner coordinates of its bounding box, a scale bar, a
north arrow and blank fields for the verifier (result, name, date, notes, signature).
"""

from __future__ import annotations

import logging
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsFeatureRequest,
    QgsField,
    QgsFillSymbol,
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutItemPage,
    QgsLayoutItemPicture,
    QgsLayoutItemScaleBar,
    QgsLayoutItemShape,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsPalLayerSettings,
    QgsPrintLayout,
    QgsProject,
    QgsProperty,
    QgsRectangle,
    QgsScaleBarSettings,
    QgsSingleSymbolRenderer,
    QgsSymbolLayer,
    QgsTextFormat,
    QgsUnitTypes,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)

from huijiao_plugin.compat import FieldType
from huijiao_plugin.core.catalog import get_catalog
from huijiao_plugin.core.patches import schema, workflow
from huijiao_plugin.core.patches.atlas_text import (
    inputs_description,
    region_label,
    region_names,
    rule_description,
)
from huijiao_plugin.core.patches.store import PatchStore, sql_literal
from huijiao_plugin.core.settings import AREA_UNIT_HECTARE, AREA_UNIT_M2, AREA_UNIT_MU
from huijiao_plugin.core.units import UNIT_DECIMALS, UNIT_NAMES
from huijiao_plugin.toolbelt.i18n import tr

log = logging.getLogger(__name__)

CJK_FONT_FAMILY = "Noto Sans CJK SC"  # installed with fonts-noto-cjk; Windows falls back to a system CJK font
NORTH_ARROW_SVG = "arrows/NorthArrow_02.svg"
MAP_HEIGHT = 138  # mm; the map starts at 24 mm, the words about the patch follow it
MAP_BOTTOM = 24 + MAP_HEIGHT

VERIFIER_TEXT = (
    "核查结果：□ 属实　　□ 不属实　　□ 存疑\n\n"
    "现场地类 / 种植情况：______________________________________________\n\n"
    "情况说明：__________________________________________________________\n\n"
    "__________________________________________________________________\n\n"
    "核查人：______________　　核查日期：______年____月____日　　签字：______________"
)


class AtlasError(RuntimeError):
    """The atlas cannot be produced (message for users)."""


def _case_expression(field: str, labels: dict[str, str]) -> str:
    whens = " ".join(
        f'WHEN "{field}" = {sql_literal(code)} THEN {sql_literal(label)}' for code, label in labels.items()
    )
    return f'CASE {whens} ELSE "{field}" END'


def _fixed(expression: str, decimals: int = 2) -> str:
    """A coordinate with exactly ``decimals`` decimals and no grouping (to_string(round()) drops zeros)."""
    return f"[% replace(format_number({expression}, {decimals}), ',', '') %]"


def _corner(north: str, east: str) -> str:
    return f"{_fixed(f'{north}($geometry)')} / {_fixed(f'{east}($geometry)')}"


def rule_labels() -> dict[str, str]:
    """Rule id of a comparison → the preset's name in words (the patch keeps the id)."""
    from huijiao_plugin.core.compare.presets import PRESETS

    labels = {f"huijiao:{key}": tr(spec.title) for key, spec in PRESETS.items()}
    labels.update({key: tr(spec.title) for key, spec in PRESETS.items()})  # ids written without the prefix
    return labels


def _north_arrow_path() -> str:
    for base in QgsApplication.svgPaths():
        candidate = Path(base) / NORTH_ARROW_SVG
        if candidate.is_file():
            return str(candidate)
    return ""


def _cjk_text(fmt: QgsTextFormat, size: float) -> QgsTextFormat:
    """``fmt`` in the CJK font at ``size`` (in the format's own size unit)."""
    font = fmt.font()
    font.setFamily(CJK_FONT_FAMILY)
    fmt.setFont(font)
    fmt.setSize(size)
    return fmt


def _label(
    layout: QgsPrintLayout, text: str, x: float, y: float, w: float, h: float, size: float, bold: bool = False
) -> QgsLayoutItemLabel:
    label = QgsLayoutItemLabel(layout)
    label.setText(text)
    font = label.font()
    font.setFamily(CJK_FONT_FAMILY)
    font.setPointSizeF(size)
    font.setBold(bold)
    label.setFont(font)
    layout.addLayoutItem(label)
    label.attemptMove(QgsLayoutPoint(x, y, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    label.attemptResize(QgsLayoutSize(w, h, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    return label


def build_atlas_layout(
    project: QgsProject, coverage: QgsVectorLayer, context_layers: list, title: str, unit: str = AREA_UNIT_MU
) -> QgsPrintLayout:
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    layout.setName(title)
    layout.pageCollection().page(0).setPageSize("A4", QgsLayoutItemPage.Orientation.Portrait)

    _label(layout, title + '  [% "number" %]', 15, 10, 180, 10, 16, bold=True)
    _label(layout, "第 [% @atlas_featurenumber %] / [% @atlas_totalfeatures %] 页", 150, 12, 45, 6, 9)

    frame = QgsLayoutItemShape(layout)
    frame.setShapeType(QgsLayoutItemShape.Shape.Rectangle)
    layout.addLayoutItem(frame)

    map_item = QgsLayoutItemMap(layout)
    map_item.setCrs(coverage.crs())
    map_item.setLayers([coverage, *context_layers])
    map_item.setFrameEnabled(True)
    layout.addLayoutItem(map_item)
    map_item.attemptMove(QgsLayoutPoint(15, 24, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    map_item.attemptResize(QgsLayoutSize(180, MAP_HEIGHT, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    # an initial extent with the item's aspect ratio: without it the atlas resizes the item
    extent = coverage.extent()
    cx, cy = extent.center().x(), extent.center().y()
    half_h = max(extent.height(), extent.width() * MAP_HEIGHT / 180, 1.0) / 2
    half_w = half_h * 180 / MAP_HEIGHT
    map_item.setExtent(QgsRectangle(cx - half_w, cy - half_h, cx + half_w, cy + half_h))
    map_item.setAtlasDriven(True)
    map_item.setAtlasScalingMode(QgsLayoutItemMap.AtlasScalingMode.Auto)
    map_item.setAtlasMargin(0.6)
    frame.attemptMove(QgsLayoutPoint(14, 23, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    frame.attemptResize(QgsLayoutSize(182, MAP_HEIGHT + 2, QgsUnitTypes.LayoutUnit.LayoutMillimeters))

    arrow_path = _north_arrow_path()
    if arrow_path:
        arrow = QgsLayoutItemPicture(layout)
        arrow.setPicturePath(arrow_path)
        layout.addLayoutItem(arrow)
        arrow.attemptMove(QgsLayoutPoint(180, 27, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
        arrow.attemptResize(QgsLayoutSize(12, 16, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
        arrow.setLinkedMap(map_item)

    # the numeric scale of the page, an overview of all patches (the page's frame drawn on it), the legend
    map_item.setId("main")
    _label(
        layout,
        "比例尺 1:[% format_number(map_get(item_variables('main'), 'map_scale'), 0) %]",
        150,
        MAP_BOTTOM - 8,
        44,
        6,
        9,
    )
    overview = QgsLayoutItemMap(layout)
    overview.setId("overview")
    overview.setCrs(coverage.crs())
    overview.setLayers([coverage, *context_layers])
    overview.setFrameEnabled(True)
    overview.setBackgroundEnabled(True)
    layout.addLayoutItem(overview)
    overview.attemptMove(QgsLayoutPoint(16, 25, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    overview.attemptResize(QgsLayoutSize(45, 34, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    whole = coverage.extent()
    whole.scale(1.2)
    overview.setExtent(whole)
    overview.overview().setLinkedMap(map_item)
    legend = QgsLayoutItemLegend(layout)
    legend.setLinkedMap(map_item)
    legend.setTitle("图例")
    legend.setBackgroundEnabled(True)
    legend.setFrameEnabled(True)
    layout.addLayoutItem(legend)
    legend.attemptMove(QgsLayoutPoint(150, MAP_BOTTOM - 46, QgsUnitTypes.LayoutUnit.LayoutMillimeters))

    scalebar = QgsLayoutItemScaleBar(layout)
    scalebar.setStyle("Single Box")
    scalebar.setLinkedMap(map_item)
    scalebar.setUnits(QgsUnitTypes.DistanceUnit.DistanceMeters)
    scalebar.setUnitLabel("米")
    scalebar.setNumberOfSegments(2)
    scalebar.setNumberOfSegmentsLeft(0)
    scalebar.setSegmentSizeMode(QgsScaleBarSettings.SegmentSizeMode.SegmentSizeFitWidth)
    scalebar.setMinimumBarWidth(30)
    scalebar.setMaximumBarWidth(60)
    scalebar.setTextFormat(_cjk_text(scalebar.textFormat(), 8))
    layout.addLayoutItem(scalebar)
    scalebar.attemptMove(QgsLayoutPoint(18, MAP_BOTTOM - 12, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    scalebar.setBackgroundEnabled(True)

    info = (
        '图斑编号：[% "number" %]　　图斑类型：[% "type_label" %]　　状态：[% "status_label" %]\n'
        "原因：[% coalesce(\"reason\", '') %]\n"
        "规则：[% coalesce(\"rule_label\", '手工标记') %]　[% coalesce(\"rule_text\", '') %]\n"
        "数据来源：[% coalesce(\"inputs_text\", '—') %]\n"
        '行政区：[% "county_label" %]　[% "township_label" %]　[% "village_label" %]\n'
        + _area_line(unit)
        + "\n"
        '中心点：经度 [% format_number("lon", 6) %]°　纬度 [% format_number("lat", 6) %]°（CGCS2000）　'
        "X " + _fixed('"gk_x"') + "　Y " + _fixed('"gk_y"') + "\n"
        "四至角点（X北/Y东）：西北 "
        + _corner("y_max", "x_min")
        + "　东北 "
        + _corner("y_max", "x_max")
        + "\n"
        "　　　　　　　　　　西南 " + _corner("y_min", "x_min") + "　东南 " + _corner("y_min", "x_max") + "\n"
        '坐标系：[% @project_crs %]　　唯一标识：[% "uuid" %]'
    )
    _label(layout, info, 15, MAP_BOTTOM + 3, 180, 64, 9)
    _label(layout, "外业核查（现场填写）", 15, 236, 180, 6, 10, bold=True)
    _label(layout, VERIFIER_TEXT, 15, 243, 180, 45, 9)

    atlas = layout.atlas()
    atlas.setCoverageLayer(coverage)
    atlas.setEnabled(True)
    atlas.setHideCoverage(False)
    atlas.setSortFeatures(True)
    atlas.setSortExpression('"number"')
    atlas.setFilenameExpression('"number"')
    return layout


def _words_expressions(coverage: QgsVectorLayer, context_layers: list) -> dict[str, str]:
    """Expressions for the words of each page (region names, the rule in words, the source datasets by
    name): one CASE branch per distinct stored value of the patches printed."""
    names = region_names(context_layers)
    catalog = get_catalog()
    codes: dict[str, set[str]] = {"county_code": set(), "township_code": set(), "village_code": set()}
    rules: set[tuple[str, str]] = set()
    inputs: set[str] = set()
    for feature in coverage.getFeatures(QgsFeatureRequest().setFlags(QgsFeatureRequest.Flag.NoGeometry)):
        for field, values in codes.items():
            values.add(_text(feature[field]))
        rules.add((_text(feature["rule_id"]), _text(feature["rule_params"])))
        inputs.add(_text(feature["inputs"]))
    out = {}
    for field, values in codes.items():
        labels = {code: region_label(code, names, catalog) for code in values if code}
        out[field.replace("_code", "_label")] = f"coalesce({_case_expression(field, labels)}, '')"
    rule_whens = " ".join(
        f"WHEN coalesce(\"rule_id\", '') = {sql_literal(rule)} AND coalesce(\"rule_params\", '') = "
        f"{sql_literal(params)} THEN {sql_literal(rule_description(rule, params))}"
        for rule, params in sorted(rules)
    )
    out["rule_text"] = f"CASE {rule_whens} ELSE '' END" if rules else "''"
    labels = {value: inputs_description(value, catalog) for value in inputs if value}
    out["inputs_text"] = _case_expression("inputs", labels) if labels else "''"
    return out


def _text(value: object) -> str:
    return "" if value is None or str(value) == "NULL" else str(value)


def _area_line(unit: str) -> str:
    """面积 in the chosen unit with its decimals and thousands separators (format_number groups them)."""
    factor = {AREA_UNIT_MU: "3.0 / 2000.0", AREA_UNIT_HECTARE: "1.0 / 10000.0", AREA_UNIT_M2: "1.0"}[unit]
    return f'面积：[% format_number("area_m2" * {factor}, {UNIT_DECIMALS[unit]}) %] {UNIT_NAMES[unit]}'


def export_atlas(
    store: PatchStore,
    pdf_path: str | Path,
    patch_uuids: list[str] | None = None,
    context_layers: list | None = None,
    title: str = "",
    dpi: int = 150,
    unit: str = AREA_UNIT_MU,
) -> Path:
    """Write the PDF atlas of ``patch_uuids`` (all patches when None); returns the PDF path."""
    pdf_path = Path(pdf_path)
    project = QgsProject()
    project.setCrs(store.crs)
    coverage = store.qgs_layer("变化图斑")
    if not coverage.isValid():
        raise AtlasError(tr("Cannot open the change-patch layer of {path}").format(path=str(store.path)))
    if patch_uuids is not None:
        if not patch_uuids:
            raise AtlasError(tr("Select at least one change patch for the atlas."))
        coverage.setSubsetString("uuid IN (" + ", ".join(sql_literal(u) for u in patch_uuids) + ")")
    if coverage.featureCount() == 0:
        raise AtlasError(tr("No change patches to print."))
    coverage.addExpressionField(
        _case_expression("patch_type", schema.PATCH_TYPES), QgsField("type_label", FieldType.String)
    )
    coverage.addExpressionField(
        _case_expression("status", workflow.STATUSES), QgsField("status_label", FieldType.String)
    )
    coverage.addExpressionField(
        _case_expression("rule_id", rule_labels()), QgsField("rule_label", FieldType.String)
    )
    for name, expression in _words_expressions(coverage, context_layers or []).items():
        coverage.addExpressionField(expression, QgsField(name, FieldType.String))
    symbol = QgsFillSymbol.createSimple(
        {"color": "255,0,0,25", "outline_color": "255,0,0", "outline_width": "0.4"}
    )
    symbol.symbolLayer(0).setDataDefinedProperty(
        QgsSymbolLayer.Property.PropertyStrokeWidth,
        QgsProperty.fromExpression("if(@atlas_featureid = $id, 1.0, 0.3)"),
    )
    coverage.setRenderer(QgsSingleSymbolRenderer(symbol))
    label = QgsPalLayerSettings()
    label.fieldName = "number"
    label.enabled = True
    label.setFormat(_cjk_text(label.format(), 8))
    coverage.setLabeling(QgsVectorLayerSimpleLabeling(label))
    coverage.setLabelsEnabled(True)
    project.addMapLayer(coverage)
    context = []
    for layer in context_layers or []:
        copy = layer.clone()
        project.addMapLayer(copy)
        context.append(copy)

    layout = build_atlas_layout(project, coverage, context, title or "变化图斑外业核查图", unit)
    settings = QgsLayoutExporter.PdfExportSettings()
    settings.dpi = dpi
    settings.rasterizeWholeImage = False
    settings.forceVectorOutput = False
    # Text as text, so the CJK font is embedded (and the sheets' text searchable). The default is outlines:
    # on 3.22 layout labels were drawn as text regardless, from 3.28 they follow this setting.
    settings.textRenderFormat = Qgis.TextRenderFormat.AlwaysText
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    result, error = QgsLayoutExporter.exportToPdf(layout.atlas(), str(pdf_path), settings)
    if result != QgsLayoutExporter.ExportResult.Success:
        raise AtlasError(tr("The atlas could not be written: {error}").format(error=error))
    return pdf_path
