"""Role recognition over GeoPackage, GBK Shapefile, FileGDB, PostGIS and open layers, with renamed layers
and aliased (Chinese) field names."""

from __future__ import annotations

import os
import uuid

import pytest
from osgeo import ogr

from huijiao_plugin.core.catalog import Catalog
from huijiao_plugin.core.recognition import (
    best_by_dataset,
    detect_dbf_encoding,
    postgres_connection_uri,
    recognize_layer,
    recognize_path,
    recognize_postgres,
)
from tests.unit.shared_layers_data import INT, D, S, dltb_data, simple_data, write_layer

PG_URL = os.environ.get("HUIJIAO_TEST_PG")


def _aliased_dltb(name: str, year: int):
    """DLTB with Chinese field names (地类编码 …) instead of the standard ones."""
    data = dltb_data(6, name=name, year=year)
    rename = {
        "DLBM": "地类编码",
        "DLMC": "地类名称",
        "TBMJ": "图斑面积",
        "BSM": "标识码",
        "ZLDWDM": "坐落单位代码",
    }
    data.fields = [(rename.get(n, n), t) for n, t in data.fields]
    data.rows = [{rename.get(k, k): v for k, v in r.items()} for r in data.rows]
    return data


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, qgis_app):
    root = tmp_path_factory.mktemp("mixed")
    gpkg = str(root / "county.gpkg")
    write_layer(gpkg, dltb_data(8, "DLTB", 2019))
    write_layer(gpkg, _aliased_dltb("地类图斑2023", 2023))
    yj = simple_data(
        "永久基本农田_县级",
        [("BSM", S), ("JBNTTBBH", S), ("DLBM", S), ("DLMC", S), ("YJJBNTTBMJ", D), ("JBNTMJ", D)],
        [{"BSM": "1", "JBNTTBBH": "1", "DLBM": "0101", "DLMC": "水田", "YJJBNTTBMJ": 1.0, "JBNTMJ": 1.0}],
    )
    write_layer(gpkg, yj)
    write_layer(
        gpkg,
        simple_data(
            "XZQ",
            [("XZQDM", S), ("XZQMC", S), ("DCMJ", D), ("JSMJ", D)],
            [{"XZQDM": "610424100", "XZQMC": "某镇", "DCMJ": 1.0, "JSMJ": 1.0}],
        ),
    )
    write_layer(
        gpkg,
        simple_data(
            "村界",
            [("ZLDWDM", S), ("ZLDWMC", S), ("DCMJ", D)],
            [{"ZLDWDM": "6104241002010000000", "ZLDWMC": "某村", "DCMJ": 1.0}],
        ),
    )
    write_layer(
        gpkg,
        simple_data(
            "耕地质量评价2024", [("质量等级", INT), ("评价年份", INT)], [{"质量等级": 3, "评价年份": 2024}]
        ),
    )
    write_layer(
        gpkg,
        simple_data(
            "土壤样点",
            [("YDBH", S), ("LON", D), ("LAT", D), ("PH", D)],
            [{"YDBH": "6104240103000001", "LON": 108.2, "LAT": 34.5, "PH": 7.9}],
            geometry=ogr.wkbPoint,
        ),
    )
    write_layer(
        gpkg, simple_data("JCTB", [("JCBH", S), ("TBLX", S), ("QSX", S), ("HSX", S), ("MJ", D)], [{}])
    )
    write_layer(gpkg, simple_data("roads_misc", [("NAME", S), ("WIDTH", D)], [{"NAME": "x"}]))
    # GBK Shapefile without .cpg, Chinese field names (≤ 10 bytes in GBK)
    os.makedirs(root / "shp")
    shp = _aliased_dltb("DLTB", 2019)
    shp.fields = [(n, t) for n, t in shp.fields if n not in ("坐落单位代码",)] + [("ZLDWDM", S)]
    for r in shp.rows:
        r["ZLDWDM"] = r.pop("坐落单位代码")
    write_layer(
        str(root / "shp" / "地类图斑.shp"), shp, driver="ESRI Shapefile", encoding="GBK", keep_cpg=False
    )
    # FileGDB deeper in the tree with the annual-change layer
    os.makedirs(root / "sub" / "deeper")
    write_layer(
        str(root / "sub" / "deeper" / "BGDC.gdb"), dltb_data(5, "DLTB_N1", 2023), driver="OpenFileGDB"
    )
    write_layer(
        str(root / "sub" / "高标准农田2022.gpkg"),
        simple_data("layer1", [("项目编号", S), ("项目名称", S), ("建设年度", INT)], [{"项目编号": "1"}]),
    )
    (root / "readme.txt").write_text("not data", encoding="utf-8")
    return root


def test_folder_recognises_every_dataset(mixed_folder):
    results = recognize_path(mixed_folder)
    by_name = {(os.path.basename(r.source.split("|")[0]), r.layer_name): r for r in results}
    assert by_name[("county.gpkg", "DLTB")].dataset_id == "dltb_sandiao"
    assert by_name[("county.gpkg", "地类图斑2023")].dataset_id == "dltb_biangeng"
    assert by_name[("county.gpkg", "永久基本农田_县级")].dataset_id == "yjjbnt"
    assert by_name[("county.gpkg", "XZQ")].dataset_id == "xzq"
    assert by_name[("county.gpkg", "村界")].dataset_id == "cjdcq"
    assert by_name[("county.gpkg", "耕地质量评价2024")].dataset_id == "gdzldj"
    assert by_name[("county.gpkg", "土壤样点")].dataset_id == "trpc_points"
    assert by_name[("county.gpkg", "JCTB")].dataset_id == "jctb"
    assert by_name[("地类图斑.shp", "地类图斑")].dataset_id == "dltb_sandiao"
    assert by_name[("BGDC.gdb", "DLTB_N1")].dataset_id == "dltb_biangeng"
    assert by_name[("高标准农田2022.gpkg", "layer1")].dataset_id == "gbznt"
    # unplaced layers are listed, not dropped
    misc = by_name[("county.gpkg", "roads_misc")]
    assert misc.dataset_id is None and misc.confidence == 0.0 and "无法确定数据集" in misc.evidence
    assert len(results) == 12
    for r in results:
        if r.dataset_id:
            assert 0.3 <= r.confidence <= 1.0 and r.evidence


def test_aliased_fields_are_mapped_to_standard_names(mixed_folder):
    results = recognize_path(mixed_folder / "county.gpkg")
    r = next(r for r in results if r.layer_name == "地类图斑2023")
    assert r.field_mapping["DLBM"] == "地类编码"
    assert r.field_mapping["TBMJ"] == "图斑面积"
    assert r.field_mapping["QSXZ"] == "QSXZ"
    assert r.year == 2023 and any("数据年份" in e for e in r.evidence)
    q = next(r for r in results if r.layer_name == "耕地质量评价2024")
    assert q.field_mapping == {"ZLDJ": "质量等级", "PJNF": "评价年份"}
    yj = next(r for r in results if r.layer_name == "永久基本农田_县级")
    assert yj.field_mapping["YJJBNTTBBH"] == "JBNTTBBH" and yj.field_mapping["YJJBNTMJ"] == "JBNTMJ"


def test_gbk_shapefile_is_read_with_the_right_encoding(mixed_folder):
    shp = mixed_folder / "shp" / "地类图斑.shp"
    assert detect_dbf_encoding(shp) == "GBK"
    (r,) = recognize_path(shp)
    assert r.encoding == "GBK"
    assert r.field_mapping["DLBM"] == "地类编码" and r.field_mapping["DLMC"] == "地类名称"
    layer = r.make_layer()
    assert {f["地类名称"] for f in layer.getFeatures()} >= {"水田", "旱地"}


def test_utf8_shapefile_with_cpg_needs_no_override(tmp_path, qgis_app):
    path = str(tmp_path / "dltb.shp")
    write_layer(path, dltb_data(3), driver="ESRI Shapefile", encoding="UTF-8")
    assert detect_dbf_encoding(path) == ""
    (r,) = recognize_path(path)
    assert r.dataset_id == "dltb_sandiao" and r.encoding == ""


def test_best_source_per_dataset_and_layer_recognition(mixed_folder):
    best = best_by_dataset(recognize_path(mixed_folder))
    assert best["dltb_sandiao"].source.endswith("layername=DLTB")  # exact name beats the renamed Shapefile
    assert "BGDC.gdb" in best["dltb_biangeng"].source
    from qgis.core import QgsField, QgsVectorLayer

    from huijiao_plugin.compat import FieldType

    layer = QgsVectorLayer("Polygon?crs=EPSG:4524", "图层1", "memory")
    layer.dataProvider().addAttributes([QgsField("F1", FieldType.String), QgsField("F2", FieldType.String)])
    layer.updateFields()
    layer.setFieldAlias(0, "红线编码")
    layer.setFieldAlias(1, "红线名称")
    r = recognize_layer(layer)
    assert r.dataset_id == "stbhhx" and r.field_mapping == {"HXBM": "F1", "HXMC": "F2"}


def test_geometry_type_must_agree(tmp_path, qgis_app):
    gpkg = str(tmp_path / "p.gpkg")
    data = dltb_data(2, name="DLTB")
    data.geometry = ogr.wkbPoint
    data.wkts = ["POINT(36520000 3822000)", "POINT(36520100 3822000)"]
    write_layer(gpkg, data)
    (r,) = recognize_path(gpkg)
    assert r.dataset_id is None  # polygon dataset fields on points: not a DLTB


def test_override_adds_a_name_hint(tmp_path, qgis_app):
    gpkg = str(tmp_path / "g.gpkg")
    write_layer(gpkg, simple_data("GHQFW", [("GHQMC", S)], [{"GHQMC": "北部"}]))
    cat = Catalog.load()
    assert recognize_path(gpkg, cat)[0].dataset_id == "yzghq"  # field signature alone
    override = tmp_path / "o.json"
    override.write_text('{"datasets": [{"id": "stbhhx", "layer_names": ["GHQFW"]}]}', encoding="utf-8")
    assert recognize_path(gpkg, Catalog.load(override))[0].dataset_id in ("yzghq", "stbhhx")


def test_postgres_uri_from_url():
    uri = postgres_connection_uri("postgresql://u%40x:p@127.0.0.1:5433/db")
    assert "host=127.0.0.1" in uri and "port=5433" in uri and "dbname='db'" in uri and "u@x" in uri


@pytest.mark.postgres
def test_postgis_schema_is_recognised(qgis_app):
    if not PG_URL:
        pytest.skip("HUIJIAO_TEST_PG not set (optional PostgreSQL component)")
    from tests.unit.shared_layers_data import pg_execute, pg_ogr_dsn

    schema = "hj_rec_" + uuid.uuid4().hex[:8]
    pg_execute(PG_URL, f"CREATE SCHEMA {schema}")
    try:
        write_layer(
            pg_ogr_dsn(PG_URL), _aliased_dltb("地类图斑2023", 2023), driver="PostgreSQL", schema=schema
        )
        write_layer(
            pg_ogr_dsn(PG_URL),
            simple_data("yjjbntbhtb", [("yjjbnttbbh", S), ("dlbm", S), ("yjjbntmj", D)], [{"dlbm": "0101"}]),
            driver="PostgreSQL",
            schema=schema,
        )
        results = {r.layer_name: r for r in recognize_postgres(PG_URL, schema)}
        assert results["地类图斑2023"].dataset_id == "dltb_biangeng"
        assert results["地类图斑2023"].field_mapping["DLBM"] == "地类编码"
        assert results["yjjbntbhtb"].dataset_id == "yjjbnt"
        assert results["yjjbntbhtb"].field_mapping["YJJBNTMJ"] == "yjjbntmj"  # case-insensitive
        layer = results["yjjbntbhtb"].make_layer()
        assert layer.isValid() and layer.featureCount() == 1
    finally:
        pg_execute(PG_URL, f"DROP SCHEMA {schema} CASCADE")


def test_newest_year_is_found_and_older_years_are_kept(tmp_path, qgis_app):
    from huijiao_plugin.core.recognition import other_years

    gpkg = str(tmp_path / "years.gpkg")
    old = dltb_data(3, "DLTB", 2022)
    new = dltb_data(3, "DLTB_N1", 2022)
    new.rows[1]["SJNF"] = 2023  # only changed patches carry the new year: the layer year is the newest
    write_layer(gpkg, old)
    write_layer(gpkg, new)
    results = recognize_path(gpkg)
    assert {r.layer_name: (r.dataset_id, r.year) for r in results} == {
        "DLTB": ("dltb_biangeng", 2022),
        "DLTB_N1": ("dltb_biangeng", 2023),
    }
    assert best_by_dataset(results)["dltb_biangeng"].layer_name == "DLTB_N1"
    assert [r.layer_name for r in other_years(results)["dltb_biangeng"]] == ["DLTB"]
