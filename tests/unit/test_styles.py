"""Standard QML styles: every dataset has one; applied to renamed fields and configurable codes."""

from __future__ import annotations

import pytest
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsExpressionContextUtils,
    QgsFeature,
    QgsField,
    QgsRenderContext,
    QgsVectorLayer,
)

from huijiao_plugin.compat import FieldType
from huijiao_plugin.core.catalog import Catalog
from huijiao_plugin.core.styles import apply_style, style_path


def _memory(geometry, fields):
    layer = QgsVectorLayer(f"{geometry}?crs=EPSG:4524", "t", "memory")
    layer.dataProvider().addAttributes([QgsField(n, t) for n, t in fields])
    layer.updateFields()
    return layer


def _symbol_color(layer, values):
    feat = QgsFeature(layer.fields())
    feat.setAttributes(values)
    renderer = layer.renderer()
    ctx = QgsRenderContext()
    ctx.expressionContext().appendScopes(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    ctx.expressionContext().setFeature(feat)
    renderer.startRender(ctx, layer.fields())
    try:
        symbol = renderer.symbolForFeature(feat, ctx)
        if symbol is None:
            return None
        layer0 = symbol.symbolLayer(0)
        stroke = layer0.strokeColor().name() if hasattr(layer0, "strokeColor") else ""
        return symbol.color().name() + stroke
    finally:
        renderer.stopRender(ctx)


def test_every_dataset_has_a_loadable_style(qgis_app):
    from tests.unit.test_catalog import EXPECTED_IDS

    cat = Catalog.load()
    for spec in (cat.dataset(i) for i in sorted(EXPECTED_IDS)):
        path = style_path(spec.id, cat)
        assert path is not None, spec.id
        geometry = {"polygon": "Polygon", "point": "Point", "line": "LineString"}[spec.geometry]
        layer = _memory(geometry, [(f.name, FieldType.String) for f in spec.fields])
        assert apply_style(layer, spec.id, catalog=cat), spec.id
        assert layer.customProperty("huijiao/dataset_id") == spec.id


def test_dltb_style_has_every_code_with_chinese_legend(qgis_app):
    cat = Catalog.load()
    layer = _memory("Polygon", [("DLBM", FieldType.String), ("DLMC", FieldType.String)])
    apply_style(layer, "dltb_sandiao", catalog=cat)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "DLBM"
    labels = {str(c.value()): c.label() for c in renderer.categories()}
    for code, name in cat.code_table("dlbm").codes.items():
        assert labels[code] == f"{code} {name}"
    # one colour per second-level class, 耕地 family distinct from 林地
    colors = {code: c.symbol().color().name() for code, c in zip(labels, renderer.categories())}
    assert len({colors["0101"], colors["0102"], colors["0103"]}) == 3
    assert colors["0101"] != colors["0301"]
    assert layer.labelsEnabled() and layer.labeling().settings().fieldName == "DLBM"


def test_style_follows_the_field_mapping(qgis_app):
    layer = _memory("Polygon", [("地类编码", FieldType.String), ("地类名称", FieldType.String)])
    assert apply_style(layer, "dltb_sandiao", {"DLBM": "地类编码", "DLMC": "地类名称"})
    assert layer.renderer().classAttribute() == "地类编码"
    assert layer.labeling().settings().fieldName == "地类编码"
    water = _symbol_color(layer, ["0101", "水田"])
    dry = _symbol_color(layer, ["0103", "旱地"])
    assert water and dry and water != dry


def test_lower_case_fields_are_found_without_mapping(qgis_app):
    layer = _memory("Polygon", [("jsnd", FieldType.Int), ("xmmc", FieldType.String)])
    apply_style(layer, "gbznt")
    assert layer.renderer().classAttribute() == "jsnd"
    assert _symbol_color(layer, [2015, "x"]) != _symbol_color(layer, [2022, "x"])


def test_soil_category_matches_codes_and_names(qgis_app, tmp_path):
    layer = _memory("Polygon", [("类别", FieldType.String)])
    apply_style(layer, "trhjzl", {"HJZLLB": "类别"})
    red = _symbol_color(layer, ["严格管控类"])
    assert red == _symbol_color(layer, ["3"])
    assert _symbol_color(layer, ["优先保护类"]) != red
    # a province that codes the classes as A/B/C
    override = tmp_path / "o.json"
    override.write_text('{"codes": {"trhjzl": {"C": "严格管控类"}}}', encoding="utf-8")
    apply_style(layer, "trhjzl", {"HJZLLB": "类别"}, catalog=Catalog.load(override))
    assert _symbol_color(layer, ["C"]) == red


@pytest.mark.parametrize("dataset", ["yjjbnt", "gdzldj", "jctb"])
def test_special_styles(qgis_app, dataset):
    cat = Catalog.load()
    spec = cat.dataset(dataset)
    layer = _memory("Polygon", [(f.name, FieldType.String) for f in spec.fields])
    apply_style(layer, dataset, catalog=cat)
    renderer = layer.renderer()
    if dataset == "yjjbnt":  # hatch
        assert any(sl.layerType() == "LinePatternFill" for sl in renderer.symbol().symbolLayers())
    elif dataset == "gdzldj":
        assert [c.label() for c in renderer.categories()][:3] == ["一等地", "二等地", "三等地"]
    else:
        assert renderer.classAttribute() == "TBLX" and len(renderer.categories()) >= 30


def test_hsf_years_in_a_ramp_and_one_name_per_project(qgis_app):
    """高标准农田: construction years from light to dark (a sequential ramp, not 20 unrelated colours); the
    project name on one plot per project (its largest), and only at sensible scales."""
    from qgis.core import QgsExpression, QgsExpressionContext, QgsGeometry

    layer = _memory("Polygon", [("XMMC", FieldType.String), ("JSND", FieldType.String)])
    plots = [("甲项目", "2015", 0, 100), ("甲项目", "2015", 200, 210), ("乙项目", "2020", 400, 450)]
    features = []
    for name, year, x0, x1 in plots:
        feature = QgsFeature(layer.fields())
        feature.setAttributes([name, year])
        feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({x0} 0,{x1} 0,{x1} 50,{x0} 50,{x0} 0))"))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    assert apply_style(layer, "gbznt")
    years = [c for c in layer.renderer().categories() if str(c.value()).strip()]
    assert len(years) >= 10
    # lightness (r+g+b) falls with every later year
    sums = [sum(c.symbol().color().getRgb()[:3]) for c in sorted(years, key=lambda c: str(c.value()))]
    assert all(a > b for a, b in zip(sums, sums[1:])), sums
    settings = layer.labeling().settings()
    assert settings.isExpression and settings.scaleVisibility
    assert settings.minimumScale == 50000
    expression = QgsExpression(settings.fieldName)
    context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    labels = []
    for feature in layer.getFeatures():
        context.setFeature(feature)
        labels.append(expression.evaluate(context))
    assert labels == ["甲项目", None, "乙项目"]  # the 100 m plot of 甲项目 carries its name, the 10 m one not
