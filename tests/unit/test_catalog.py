"""The shared-data catalog: shipped data files, code tables, lookups and the province/county override file."""

from __future__ import annotations

import json

import pytest

from huijiao_plugin.core.catalog import CATALOG_DIR, CODES_DIR, Catalog, CatalogError, catalog_from_settings

EXPECTED_IDS = {
    "dltb_sandiao",
    "dltb_biangeng",
    "jctb",
    "gdbhmb",
    "yjjbnt",
    "bcgd",
    "trpc_points",
    "trpc_soiltype",
    "gdzldj",
    "gbznt",
    "trhjzl",
    "xzq",
    "cjdcq",
    "stbhhx",
    "czkfbj",
    "yzghq",
}


def test_catalog_files_are_plain_json_named_by_id():
    for path in CATALOG_DIR.glob("*.json"):
        d = json.loads(path.read_text(encoding="utf-8"))
        assert d["id"] == path.stem
        assert d["department"] in ("zrzy", "nync", "base")
        assert d["geometry"] in ("polygon", "point", "line")
        assert d["group"] in ("自然资源", "农业农村", "基础")
        if d["id"] in EXPECTED_IDS:  # datasets added by other issues (bghtb) follow their own rules
            assert d["frequency"] in ("yearly", "half-yearly", "quarterly", "once")
            assert d["shared"] is True
            assert d["style"].endswith(".qml")
        for f in d["fields"]:
            assert f["type"] in ("string", "integer", "double", "date"), (d["id"], f)
            assert f["confidence"] in ("H", "M", "L")
            assert isinstance(f["required"], bool)
        names = {f["name"] for f in d["fields"]}
        assert set(d["key_fields"]) <= names, d["id"]
    for path in CODES_DIR.glob("*.json"):
        d = json.loads(path.read_text(encoding="utf-8"))
        assert d["id"] == path.stem and isinstance(d["codes"], dict) and d["codes"]


def test_catalog_has_every_shared_dataset_and_departments():
    cat = Catalog.load()
    # bghtb may be added by the change-patch issue; the shared list itself is fixed
    assert set(cat.datasets) >= EXPECTED_IDS
    deps = cat.by_department()
    assert [d.id for d in deps["zrzy"]][:2] == ["dltb_sandiao", "dltb_biangeng"]
    assert {d.id for d in deps["nync"]} == {"trpc_points", "trpc_soiltype", "gdzldj", "gbznt", "trhjzl"}
    assert {"xzq", "cjdcq", "stbhhx", "czkfbj", "yzghq"} <= {d.id for d in deps["base"]}
    assert cat.dataset("trpc_points").geometry == "point"
    for ds in cat.datasets.values():
        for f in ds.fields:
            if f.domain:
                assert cat.code_table(f.domain) is not None, (ds.id, f.name, f.domain)


def test_dltb_fields_carry_chinese_aliases_and_domains():
    cat = Catalog.load()
    dltb = cat.dataset("dltb_sandiao")
    dlbm = dltb.field_spec("dlbm")
    assert dlbm is not None and dlbm.domain == "dlbm" and "地类编码" in dlbm.aliases and dlbm.required
    assert dltb.field_spec("TBMJ").type == "double"
    assert dltb.geometry_area_field == "TBMJ"
    assert "ZZSXDM" in [f.name for f in dltb.fields]
    assert cat.dataset("yjjbnt").area_semantics["net_area_field"] == "YJJBNTMJ"


def test_code_tables():
    cat = Catalog.load()
    dlbm = cat.code_table("dlbm")
    for code in (
        "0201K",
        "0202K",
        "0203K",
        "0204K",
        "0301K",
        "0302K",
        "0307K",
        "0403K",
        "1104K",
        "1104A",
        "1107A",
    ):
        assert dlbm.is_valid(code), code
    assert cat.dlmc_for("0101") == "水田"
    assert cat.dlmc_for("0201k") == "可调整果园"  # case-insensitive
    assert not dlbm.is_valid("0105") and not dlbm.is_valid("201")
    assert cat.code_table("gddb").codes.keys() == {str(i) for i in range(1, 16)}
    gdzldj = cat.code_table("gdzldj")
    assert len(gdzldj.codes) == 10 and gdzldj.raw["groups"]["高等地"] == [1, 2, 3]
    assert gdzldj.is_valid(3.0)  # a grade stored as a real number
    trhjzl = cat.code_table("trhjzl")
    assert trhjzl.canonical("严格管控类") == "3" and trhjzl.canonical("3") == "3" and not trhjzl.is_valid("4")
    assert cat.code_table("tbxhdm").canonical("HHGD") == "SHGD"  # legacy draft code
    assert cat.code_table("tblx").canonical("1") == "01"
    assert cat.region_name("610000") == "陕西省" and cat.region_name("610424") == "乾县"
    for city in (
        "610100",
        "610200",
        "610300",
        "610400",
        "610500",
        "610600",
        "610700",
        "610800",
        "610900",
        "611000",
    ):
        assert cat.region_name(city).endswith("市")
    assert cat.code_table("zzsxdm").codes["FLS"] == "种植非粮食作物"
    assert set(cat.code_table("dklx").codes.values()) == {"新增", "提质", "改造", "提质改造"}


def test_override_file_merges_fields_codes_and_new_datasets(tmp_path):
    override = {
        "datasets": [
            {
                "id": "jctb",
                "fields": [
                    {"name": "JCBH", "aliases": ["监测图斑编号"]},
                    {"name": "SXLX", "type": "string", "aliases": ["时相类型"]},
                ],
                "remove_fields": ["TZ"],
                "frequency": "half-yearly",
            },
            {
                "id": "sjgd",
                "name_zh": "市级耕地台账",
                "department": "zrzy",
                "geometry": "polygon",
                "fields": [{"name": "TZBH", "type": "string", "required": True}],
                "key_fields": ["TZBH"],
            },
        ],
        "codes": {"trhjzl": {"A": "优先保护类", "1": None}, "new_table": {"X": "新代码"}},
    }
    path = tmp_path / "shaanxi.json"
    path.write_text(json.dumps(override, ensure_ascii=False), encoding="utf-8")
    cat = Catalog.load(path)
    jctb = cat.dataset("jctb")
    jcbh = jctb.field_spec("JCBH")
    assert jcbh.aliases == ["监测图斑编号"] and jcbh.required  # merged, untouched keys kept
    assert jctb.field_spec("SXLX").aliases == ["时相类型"]
    assert jctb.field_spec("TZ") is None
    assert jctb.frequency == "half-yearly"
    assert jctb.field_spec("TBLX").domain == "tblx"
    new = cat.dataset("sjgd")
    assert new.group == "自然资源" and new.field_spec("TZBH").required
    assert cat.code_table("trhjzl").canonical("A") == "A"
    assert "1" not in cat.code_table("trhjzl").codes
    assert cat.code_table("new_table").codes == {"X": "新代码"}
    # the shipped catalog is untouched
    assert Catalog.load().dataset("jctb").field_spec("TZ") is not None


def test_bad_override_file_gives_a_chinese_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogError, match="不是有效的 JSON"):
        Catalog.load(bad)
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"datasets": [{"id": "x", "name_zh": "缺项"}]}), encoding="utf-8")
    with pytest.raises(CatalogError, match="缺少必填项"):
        Catalog.load(incomplete)
    with pytest.raises(CatalogError, match="没有数据集"):
        Catalog.load().dataset("nope")


def test_override_path_from_settings(tmp_path, qgis_app):
    from huijiao_plugin.core.settings import HuijiaoSettings

    path = tmp_path / "county.json"
    path.write_text(json.dumps({"codes": {"tblx": {"ZZ": "住宅"}}}), encoding="utf-8")
    old = HuijiaoSettings.load()
    try:
        s = HuijiaoSettings.load()
        s.catalog_override_path = str(path)
        s.save()
        assert catalog_from_settings().code_table("tblx").name("ZZ") == "住宅"
        path.write_text("broken", encoding="utf-8")  # a broken file falls back to the shipped catalog
        assert catalog_from_settings().code_table("tblx").name("ZZ") is None
    finally:
        old.save()
