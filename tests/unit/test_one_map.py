"""The 一张图 of core.one_map (shared by the 共享图层 panel and the demo project): groups, draw order,
names, styles, visibility and the project CRS."""

from __future__ import annotations

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFeature,
    QgsGeometry,
    QgsLayerTreeGroup,
    QgsProject,
    QgsRenderContext,
    QgsVectorLayer,
)

from huijiao_plugin.core.catalog import get_catalog
from huijiao_plugin.core.one_map import (
    DATASET_PROPERTY,
    YEAR_PROPERTY,
    department_group,
    load_one_map,
    set_project_crs,
)
from huijiao_plugin.core.recognition import recognize_path


def _symbol_layer_classes(layer: QgsVectorLayer) -> set[str]:
    renderer = layer.renderer()
    return {
        symbol.symbolLayer(i).layerType()
        for symbol in renderer.symbols(QgsRenderContext())
        for i in range(symbol.symbolLayerCount())
    }


def test_load_one_map_of_the_demo_county(demo_county):
    catalog = get_catalog()
    recognitions = recognize_path(demo_county.gpkg, catalog)
    project = QgsProject()
    result = load_one_map(project, recognitions, catalog)
    assert result.errors == []
    root = project.layerTreeRoot()
    groups = [c for c in root.children() if isinstance(c, QgsLayerTreeGroup)]
    assert [g.name() for g in groups] == ["基础", "农业农村", "自然资源"]
    placed = {r.dataset_id for r in recognitions if r.dataset_id}
    assert {lyr.customProperty(DATASET_PROPERTY) for lyr in result.layers} == placed
    assert len(result.layers) == len(placed) + 1  # plus the older DLTB year
    sources = {lyr.source() for lyr in project.mapLayers().values()}
    assert not any("GENERATOR" in s for s in sources)  # tables the catalog cannot place are left out

    for group in groups:
        nodes = group.children()
        # catalog names, the catalog group, higher draw order on top
        orders = []
        for node in nodes:
            layer = node.layer()
            spec = catalog.dataset(layer.customProperty(DATASET_PROPERTY))
            assert spec.group == group.name()
            assert layer.name().startswith(spec.name_zh)
            orders.append(spec.draw_order)
        assert orders == sorted(orders, reverse=True)

    hidden = {
        (n.layer().customProperty(DATASET_PROPERTY), n.layer().customProperty(YEAR_PROPERTY))
        for n in root.findLayers()
        if not n.itemVisibilityChecked()
    }
    assert hidden == {("gdzldj", None), ("trhjzl", None), ("dltb_biangeng", demo_county.year)}
    zrzy = root.findGroup("自然资源").children()
    newest, older = zrzy[-2].layer(), zrzy[-1].layer()
    assert newest.name() == f"年度国土变更调查地类图斑 {demo_county.year + 1}"
    assert older.name() == f"年度国土变更调查地类图斑 {demo_county.year}"
    renderer = newest.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "DLBM"
    pbf = next(lyr for lyr in result.layers if lyr.customProperty(DATASET_PROPERTY) == "yjjbnt")
    assert "LinePatternFill" in _symbol_layer_classes(pbf)  # the 永久基本农田 hatch of yjjbnt.qml
    assert project.crs().authid() == f"EPSG:{demo_county.epsg}"


def test_project_crs_is_the_gauss_kruger_zone_of_geographic_data():
    layer = QgsVectorLayer("Polygon?crs=EPSG:4490", "t", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON((108.0 34.2,108.3 34.2,108.3 34.4,108.0 34.2))"))
    layer.dataProvider().addFeatures([feature])
    layer.updateExtents()
    project = QgsProject()
    assert set_project_crs(project, [layer])
    assert project.crs().authid() == "EPSG:4524"  # 3-degree zone 36 (108° E)
    assert not set_project_crs(QgsProject(), [QgsVectorLayer("Polygon", "no crs", "memory")])


def test_department_groups_keep_their_order_whatever_comes_first():
    catalog = get_catalog()
    project = QgsProject()
    root = project.layerTreeRoot()
    for dataset_id in ("jctb", "xzq", "gbznt", "dltb_biangeng"):
        department_group(project, catalog.dataset(dataset_id))
    assert [c.name() for c in root.children()] == ["基础", "农业农村", "自然资源"]
