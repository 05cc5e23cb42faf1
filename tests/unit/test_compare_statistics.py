"""Rule profile loading/overrides, statistics by region, result layers and the xlsx workbook."""

from __future__ import annotations

import json

import pytest
from compare_support import T1, T2, build_county, release

from huijiao_plugin.core.compare.engine import CountyOverlay
from huijiao_plugin.core.compare.presets import run_preset
from huijiao_plugin.core.compare.rules import RuleProfile, RuleProfileError, parse_code_list
from huijiao_plugin.core.compare.statistics import region_statistics, result_layer, stats_layer
from huijiao_plugin.core.settings import HuijiaoSettings
from huijiao_plugin.core.xlsx import write_statistics_xlsx


@pytest.fixture(scope="module")
def county(qgis_app, tmp_path_factory):
    layers = build_county(tmp_path_factory.mktemp("stats") / "county.gpkg")
    yield layers
    release(layers)


def test_default_profile_is_domain_section_10():
    profile = RuleProfile.default()
    assert profile.get("nongrain_codes") == ["FLS", "WG"]
    assert profile.get("min_area_m2") == 0.5 and profile.get("min_width_m") == 0.1
    assert profile.is_construction("0702") and profile.is_construction("1003")
    assert not profile.is_construction("1006") and not profile.is_construction("1202")
    assert profile.is_fragile("SHGD", "2", "TT") and profile.is_fragile("", "5", "PD")
    assert not profile.is_fragile("", "5", "TT")
    assert profile.is_farmland("0103") and not profile.is_farmland("0201K")
    assert profile.is_strict_soil("严格管控类") and profile.is_strict_soil(3)
    assert profile.is_occupied("0201") and not profile.is_occupied("0103") and not profile.is_occupied(None)


def test_profile_file_overrides_and_errors(tmp_path):
    path = tmp_path / "shaanxi.json"
    path.write_text(
        json.dumps({"nongrain_codes": ["FLS", "WG", "LYFL"], "farmland_include_adjustable": True}),
        encoding="utf-8",
    )
    profile = RuleProfile.load(str(path))
    assert profile.nongrain_codes() == {"FLS", "WG", "LYFL"}
    assert profile.is_farmland("0201K")
    assert profile.sources[-1] == str(path)
    assert profile.with_overrides({"nongrain_codes": "FLS，WG；LLJZ"}).get("nongrain_codes") == [
        "FLS",
        "WG",
        "LLJZ",
    ]
    assert profile.with_overrides({"fragment_max_mu": "3"}).get("fragment_max_mu") == 3.0
    with pytest.raises(RuleProfileError, match="数值"):
        profile.with_overrides({"fragment_max_mu": "three"})
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(RuleProfileError, match="JSON 对象"):
        RuleProfile.load(str(bad))
    with pytest.raises(RuleProfileError, match="无法读取"):
        RuleProfile.load(str(tmp_path / "missing.json"))
    assert parse_code_list(" a, b ;c ") == ["a", "b", "c"]


def test_profile_from_settings(qgis_app, tmp_path):
    from qgis.core import QgsSettings

    path = tmp_path / "p.json"
    path.write_text(json.dumps({"fragment_max_mu": 3}), encoding="utf-8")
    settings = HuijiaoSettings.load()
    old = settings.rules_profile_path
    settings.rules_profile_path = str(path)
    settings.save()
    try:
        assert RuleProfile.from_settings().get("fragment_max_mu") == 3
    finally:
        settings.rules_profile_path = old
        settings.save(QgsSettings())


def test_statistics_by_level(county):
    result = run_preset("pbfnongrain", CountyOverlay(county))
    town = region_statistics([result], "township")
    got = sorted((r.region_code, r.region_name, r.category, r.count, round(r.area_m2)) for r in town)
    assert got == [(T1, "一号镇", "nongrain", 2, 20000), (T2, "二号镇", "occupied", 1, 10000)]
    county_rows = region_statistics([result], "county")
    assert sorted((r.region_code, r.category, r.count) for r in county_rows) == [
        ("610102", "nongrain", 2),
        ("610102", "occupied", 1),
    ]
    village = region_statistics([result], "village")
    assert {r.region_code for r in village} == {T1 + "001", T2 + "001"}
    assert {r.region_name for r in village} == {"一村", "二村"}
    row = next(r for r in town if r.category == "nongrain")
    values = row.values()
    assert values[7:10] == [20000.0, 30.0, 2.0]  # m², 亩, 公顷
    with pytest.raises(ValueError):
        region_statistics([result], "province")


def test_coverage_and_contiguity_rows(county):
    ov = CountyOverlay(county)
    rows = region_statistics([run_preset("hsfcoverage", ov), run_preset("contiguity", ov)], "township")
    coverage = {r.region_code: round(r.ratio_pct, 2) for r in rows if r.category == "coverage"}
    # township 1: covered 5000 + 400 (P9999 is registered to T1) of 60400 m²; township 2: 10000 of 20000 m²
    assert coverage == {T1: round(100 * 5400 / 60400, 2), T2: 50.0}
    blocks = sorted((r.category, r.count) for r in rows if r.rule_id == "huijiao:contiguity")
    assert blocks == [("block 100-500", 1), ("block <10", 1)]


def test_result_and_stats_layers(county):
    result = run_preset("hsfnotinpbf", CountyOverlay(county))
    layer = result_layer(result, county["DLTB"].crs())
    assert layer.featureCount() == 5
    names = layer.fields().names()
    for name in ("rule_id", "area_m2", "area_mu", "area_ha", "town_code", "XMBH"):
        assert name in names
    assert "rule_params" not in names and "inputs" not in names  # once, in the layer's metadata
    feature = next(layer.getFeatures())
    assert feature["rule_id"] == "huijiao:hsfnotinpbf"
    from huijiao_plugin.core.compare import provenance

    assert provenance.read_metadata(layer)["rule_profile"]["values"]["min_area_m2"] == 0.5
    assert provenance.read_metadata(layer)["inputs"]["PBF"]["layer"] == "YJJBNTBHTB"
    assert feature["area_mu"] == round(feature["area_m2"] * 0.0015, 2)
    table = stats_layer(region_statistics([result], "county"))
    assert table.featureCount() == 1 and next(table.getFeatures())["count"] == 5


def test_xlsx_workbook(county, tmp_path):
    from openpyxl import load_workbook

    result = run_preset("pbfnongrain", CountyOverlay(county))
    rows = region_statistics([result], "township")
    path = write_statistics_xlsx(tmp_path / "stats", rows, [result])
    assert path.suffix == ".xlsx"
    workbook = load_workbook(path)
    sheet = workbook["比对统计"]
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["统计级别", "行政区代码", "行政区名称"]
    assert "面积（亩）" in header and "面积（公顷）" in header and "面积（平方米）" in header
    data = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    assert len(data) == 2
    assert data[0][0] == "乡镇级" and data[0][1] == T1 and data[0][6] == 2 and data[0][8] == 30.0
    # the header on its shaded band, centred, bold; the header frozen
    assert all(c.font.bold and c.fill.fgColor.rgb == "FFD9E1F2" for c in sheet[1])
    assert sheet["A1"].alignment.horizontal == "center" and sheet.freeze_panes == "A2"
    # the rule in words (its name, what it finds, its parameters by label), no ids, keys or JSON
    params = {r[0].value: r[1].value for r in workbook["规则参数"].iter_rows(min_row=2)}
    assert params["规则"] == "PBF non-grain use"
    assert "Non-grain ZZSXDM codes：FLS、WG" in params["PBF non-grain use：说明"]
    assert "永久基本农田保护图斑 2023" in params["PBF non-grain use：比对数据"]
    assert "2000/3" in params["面积说明"]
    text = " ".join(f"{k} {v}" for k, v in params.items())
    assert not any(code in text for code in ("huijiao:", "nongrain_codes", "{", "YJJBNTBHTB"))


def test_plain_xlsx_without_openpyxl_reads_back(tmp_path):
    """The zipfile-only writer (used when openpyxl is missing, e.g. qgis_process on a bare QGIS)."""
    from openpyxl import load_workbook

    from huijiao_plugin.core.xlsx import write_plain_xlsx

    path = write_plain_xlsx(
        tmp_path / "plain.xlsx",
        [
            ("比对统计", [["行政区代码", "面积（亩）"], ["610102001", 30.0], ["<&>", 7]]),
            ("规则参数", [["a", "b"]]),
        ],
    )
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["比对统计", "规则参数"]
    rows = [[c.value for c in row] for row in workbook["比对统计"].iter_rows()]
    assert rows == [["行政区代码", "面积（亩）"], ["610102001", 30], ["<&>", 7]]


def test_region_level_from_the_code_not_the_layer(county, tmp_path):
    """A village layer (12-digit XZQDM) offered as the township layer: townships by code prefix, and a
    township never takes a village's name (names per code)."""
    from compare_support import rect, write_layer

    from huijiao_plugin.compat import FieldType

    villages = write_layer(
        tmp_path / "v.gpkg",
        "XZQ",
        [("XZQDM", FieldType.String), ("XZQMC", FieldType.String)],
        [
            (rect(0, 0, 300, 400), {"XZQDM": T1 + "001", "XZQMC": "甲村"}),
            (rect(300, 0, 600, 400), {"XZQDM": T2 + "001", "XZQMC": "乙村"}),
        ],
    )
    layers = {k: v for k, v in county.items() if k not in ("XZQ", "CJDCQ")}
    result = run_preset("hsfnotinpbf", CountyOverlay({**layers, "XZQ": villages}))
    townships = region_statistics([result], "township")
    assert townships and {r.region_code for r in townships} <= {T1, T2}
    assert {r.region_name for r in townships} == {""}
    village_rows = region_statistics([result], "village")
    assert {r.region_name for r in village_rows if r.region_code == T1 + "001"} == {"甲村"}
