"""The 共享图层 panel on the demo county in mixed formats and names, with planted defects: recognition of every
dataset, the styled 一张图, the check listing exactly the planted defects (same as huijiao:checkdataset),
select + zoom from the findings table and the xlsx export."""  # noqa: E501

from __future__ import annotations

import os
import shutil
import time

import pytest
from osgeo import gdal, ogr
from qgis.core import QgsCategorizedSymbolRenderer, QgsLayerTreeGroup, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QCoreApplication, Qt

from huijiao_plugin.gui.docks.dock_shared_layers import (
    DATASET_PROPERTY,
    STATE_FOUND,
    STATE_LOADED,
    STATE_MISSING,
    HuijiaoSharedLayersDock,
)
from tests.gui.project_support import clear_project

PLANTED = [  # (dataset, rule, field, value, count) — every defect planted below, nothing else
    ("dltb_biangeng", "area_mismatch", "TBMJ", None, 1),
    ("dltb_biangeng", "bsm_duplicate", "BSM", None, 2),
    ("dltb_biangeng", "code_domain", "DLBM", "0105", 1),
    ("dltb_biangeng", "dlmc_mismatch", "DLMC", None, 1),
    ("gdzldj", "geometry_invalid", "", None, 1),
]


def _wait(dock, timeout=120):
    end = time.time() + timeout
    while dock.is_busy():
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.time() < end, "task did not finish"
    for _ in range(20):
        QCoreApplication.processEvents()


@pytest.fixture(scope="module")
def mixed_county(demo_county, tmp_path_factory):
    """The demo county spread over GeoPackages, a GBK Shapefile and a FileGDB, partly renamed, with defects."""  # noqa: E501
    root = tmp_path_factory.mktemp("shared_mixed")
    zrzy = root / "自然资源"
    nync = root / "农业农村" / "2024"
    os.makedirs(zrzy)
    os.makedirs(nync)
    gpkg = str(zrzy / "county.gpkg")
    shutil.copy(demo_county.gpkg, gpkg)
    shutil.copytree(demo_county.gdb, zrzy / "DLTB.gdb")
    shutil.copytree(demo_county.shp_dir, root / "shp")
    # 高标准农田 moved into its own file, renamed, with Chinese field names
    gdal.VectorTranslate(
        str(nync / "高标准农田.gpkg"),
        gpkg,
        SQLStatement='SELECT geom, XMBH AS "项目编号", XMMC AS "项目名称", JSND AS "建设年度", DKLX, XZQDM '
        "FROM GBZNT",
        SQLDialect="SQLite",
        layerName="高标准农田建设地块",
    )
    ds = ogr.Open(gpkg, update=1)
    ds.ExecuteSQL("DROP TABLE GBZNT")
    ds.ExecuteSQL('ALTER TABLE YJJBNTBHTB RENAME TO "永久基本农田保护图斑"')
    layer = ds.GetLayerByName("DLTB_N1")
    feats = [layer.GetNextFeature() for _ in range(6)]
    feats[1].SetField("DLBM", "0105")
    feats[1].SetField("DLMC", "未知")
    code = feats[2].GetField("DLBM")
    feats[2].SetField("DLMC", "旱地" if code != "0103" else "水田")
    feats[4].SetField("BSM", feats[3].GetField("BSM"))
    feats[5].SetField("TBMJ", feats[5].GetField("TBMJ") + 5.0)
    for f in feats[1:]:
        layer.SetFeature(f)
    q = ds.GetLayerByName("GDZLDJ")
    f = q.GetNextFeature()
    env = f.GetGeometryRef().GetEnvelope()
    x0, x1, y0, y1 = env
    f.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y1},{x1} {y0},{x0} {y1},{x0} {y0}))"))
    q.SetFeature(f)
    ds = None
    return root


@pytest.fixture()
def dock(qgis_iface, qgis_new_project):
    d = HuijiaoSharedLayersDock(qgis_iface)
    yield d
    d.deleteLater()
    clear_project(qgis_iface)


def test_dock_identity(dock):
    assert dock.objectName() == "HuijiaoSharedLayersDock"
    assert dock.windowTitle() in ("Shared layers", "共享图层")
    tops = [dock.tree.topLevelItem(i).text(0) for i in range(dock.tree.topLevelItemCount())]
    assert tops == ["自然资源", "农业农村", "基础"]
    assert dock.state("dltb_sandiao") == STATE_MISSING


def test_scan_recognises_every_dataset_in_mixed_formats(dock, mixed_county):
    results = dock.scan_path(str(mixed_county))
    assert {r.dataset_id for r in results if r.dataset_id} == {
        "dltb_biangeng",
        "xzq",
        "cjdcq",
        "yjjbnt",
        "gdbhmb",
        "stbhhx",
        "yzghq",
        "gbznt",
        "trhjzl",
        "gdzldj",
        "jctb",
        "bcgd",
    }
    by_layer = {(os.path.basename(r.source.split("|")[0]), r.layer_name): r for r in results}
    assert by_layer[("county.gpkg", "永久基本农田保护图斑")].dataset_id == "yjjbnt"
    assert by_layer[("DLTB.shp", "DLTB")].dataset_id == "dltb_biangeng"
    assert by_layer[("DLTB.gdb", "DLTB")].dataset_id == "dltb_biangeng"
    hsf = by_layer[("高标准农田.gpkg", "高标准农田建设地块")]
    assert hsf.dataset_id == "gbznt" and hsf.field_mapping["XMMC"] == "项目名称"
    # the newest year is the one found; the older year is kept
    assert dock.found["dltb_biangeng"].layer_name == "DLTB_N1" and dock.found["dltb_biangeng"].year == 2024
    assert [r.year for r in dock.older["dltb_biangeng"]] == [2023]
    assert dock.state("gbznt") == STATE_FOUND and dock.state("trpc_points") == STATE_MISSING
    item = dock.dataset_item("dltb_biangeng")
    assert item.text(2) == "2024" and item.text(1) in ("found", "已找到")
    unplaced = dock.tree.topLevelItem(dock.tree.topLevelItemCount() - 1)
    assert {unplaced.child(i).text(0) for i in range(unplaced.childCount())} == {
        "GENERATOR_CHANGES",
        "GENERATOR_INFO",
    }


def test_check_lists_exactly_the_planted_defects_like_processing(
    dock, mixed_county, huijiao_provider, qgis_iface
):
    import processing

    dock.scan_path(str(mixed_county))
    assert dock.check() is not None
    _wait(dock)
    assert {r.dataset_id for r in dock.reports} == set(dock.found)
    got = sorted(
        (r.dataset_id, f.rule_id, f.field, f.value if f.rule_id == "code_domain" else None, f.count)
        for r in dock.reports
        for f in r.findings
    )
    assert got == sorted(PLANTED)
    assert dock.findings_model.rowCount() == len(PLANTED)
    # the same findings through huijiao:checkdataset
    rec = dock.found["dltb_biangeng"]
    result = processing.run(
        "huijiao:checkdataset",
        {"INPUT": rec.make_layer(), "DATASET": "auto", "OUTPUT": "memory:", "OUTPUT_FEATURES": "memory:"},
    )
    table = result["OUTPUT"]
    rows = sorted((f["rule_id"], f["field"] or "", f["value"] or "", f["count"]) for f in table.getFeatures())
    report = next(r for r in dock.reports if r.dataset_id == "dltb_biangeng")
    assert rows == report.signature()
    assert result["DATASET_ID"] == "dltb_biangeng"

    # sortable table; a click selects the features and zooms to them
    dock.findings_view.sortByColumn(5, Qt.SortOrder.DescendingOrder)
    dataset_id, finding = dock.finding_at(0)
    assert finding.rule_id == "bsm_duplicate" and finding.count == 2
    layer = dock.show_finding(0)
    assert sorted(layer.selectedFeatureIds()) == sorted(finding.feature_ids)
    assert layer.customProperty(DATASET_PROPERTY) == "dltb_biangeng"
    canvas = qgis_iface.mapCanvas()
    box = layer.boundingBoxOfSelected()
    assert canvas.extent().contains(canvas.mapSettings().layerExtentToOutputExtent(layer, box).center())


def test_export_xlsx(dock, mixed_county, tmp_path):
    from openpyxl import load_workbook

    dock.scan_path(str(mixed_county))
    dock.check(["dltb_biangeng"])
    _wait(dock)
    out = dock.export_xlsx(str(tmp_path / "findings.xlsx"))
    sheet = load_workbook(out).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("数据集", "图层", "严重性", "规则")
    assert sorted(r[3] for r in rows[1:]) == sorted(  # names, not rule ids
        ["面积与椭球面积不符", "标识码重复", "代码不在代码表中", "地类名称与编码不符"]
    )
    assert all(r[2] == "错误" for r in rows[1:])


def test_load_one_map_styled_in_groups(dock, mixed_county, qgis_iface):
    dock.scan_path(str(mixed_county))
    task = dock.load_one_map()
    assert task is not None
    _wait(dock)
    project = QgsProject.instance()
    root = project.layerTreeRoot()
    groups = [c.name() for c in root.children() if isinstance(c, QgsLayerTreeGroup)]
    assert groups == ["基础", "农业农村", "自然资源"]
    loaded = {
        lyr.customProperty(DATASET_PROPERTY)
        for lyr in project.mapLayers().values()
        if isinstance(lyr, QgsVectorLayer)
    }
    assert loaded == set(dock.found)
    for dataset_id in dock.found:
        assert dock.state(dataset_id) == STATE_LOADED
    zrzy = root.findGroup("自然资源")
    names = [n.name() for n in zrzy.children()]
    assert names[-1].startswith("年度国土变更调查地类图斑 2023")  # DLTB at the bottom, older year hidden
    assert names[-2] == "年度国土变更调查地类图斑 2024"
    assert names[0] == "季度监测疑似耕地变化图斑"  # monitoring patches on top
    assert not zrzy.children()[-1].itemVisibilityChecked() and zrzy.children()[-2].itemVisibilityChecked()
    dltb = zrzy.children()[-2].layer()
    assert (
        isinstance(dltb.renderer(), QgsCategorizedSymbolRenderer)
        and dltb.renderer().classAttribute() == "DLBM"
    )
    hsf = next(lyr for lyr in project.mapLayers().values() if lyr.customProperty(DATASET_PROPERTY) == "gbznt")
    assert hsf.renderer().classAttribute() == "建设年度"  # style follows the renamed field
    assert project.crs().authid() == "EPSG:4545"
    assert dock.load_one_map() is None  # everything loaded already


def test_cancel_a_check(dock, mixed_county):
    dock.scan_path(str(mixed_county))
    task = dock.check()
    dock.cancel()
    _wait(dock)
    assert not dock.is_busy() and task is not None


@pytest.mark.postgres
def test_scan_postgis_schema(dock, demo_county):
    url = os.environ.get("HUIJIAO_TEST_PG")
    if not url:
        pytest.skip("HUIJIAO_TEST_PG not set (optional PostgreSQL component)")
    import uuid

    from tests.unit.shared_layers_data import pg_execute, pg_ogr_dsn

    schema = "hj_dock_" + uuid.uuid4().hex[:8]
    pg_execute(url, f"CREATE SCHEMA {schema}")
    try:
        for name, target in (("XZQ", "xzq_2024"), ("GBZNT", "gaobiaozhun")):
            gdal.VectorTranslate(
                pg_ogr_dsn(url),
                str(demo_county.gpkg),
                layers=[name],
                layerName=f"{schema}.{target}",
                format="PostgreSQL",
            )
        results = dock.scan_postgres(url, schema)
        assert {r.layer_name: r.dataset_id for r in results} == {"xzq_2024": "xzq", "gaobiaozhun": "gbznt"}
        assert dock.state("gbznt") == STATE_FOUND and dock.found["gbznt"].provider == "postgres"
        assert dock.found["gbznt"].make_layer().featureCount() > 0
    finally:
        pg_execute(url, f"DROP SCHEMA {schema} CASCADE")
