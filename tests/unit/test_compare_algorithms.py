"""The 耕地比对 Processing algorithms (huijiao:<preset>) on the hand-made county: same numbers as the core."""

from __future__ import annotations

import json

import pytest
from compare_support import T1, build_county, release

from huijiao_plugin.core.compare.engine import CountyOverlay
from huijiao_plugin.core.compare.presets import CompareOptions, run_preset

EXPECTED = {  # preset -> (roles, pieces, planar m²) — see test_compare_presets for the derivation
    "hsfnotinpbf": (("DLTB", "HSF", "PBF"), 5, 34600),
    "pbfnongrain": (("PBF", "DLTB"), 3, 30000),
    "pbfexitcandidates": (("PBF", "DLTB", "STBHHX", "YZGHQ", "TRHJZL", "XZQ"), 10, 70800),
    "farmlandnonagri": (("DLTB", "DLTB_N1", "JCTB"), 2, 12500),
    "hsfcoverage": (("PBF", "HSF", "DLTB"), 11, 90400),
    "contiguity": (("PBF",), 2, 80400),
    "versiondiff": (("DLTB", "DLTB_N1"), 4, 30000),
}


@pytest.fixture(scope="module")
def county(huijiao_provider, tmp_path_factory):
    layers = build_county(tmp_path_factory.mktemp("alg") / "county.gpkg")
    yield layers
    release(layers)


def run(alg, params):
    import processing

    params = dict(params)
    params.setdefault("OUTPUT", "memory:")
    params.setdefault("OUTPUT_STATS", "memory:")
    return processing.run(alg, params)


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_algorithm_matches_core(county, preset):
    roles, count, planar = EXPECTED[preset]
    params = {role: county[role] for role in roles}
    params["CJDCQ"] = county["CJDCQ"]
    out = run(f"huijiao:{preset}", params)
    layer = out["OUTPUT"]
    assert layer.featureCount() == count == out["COUNT"]
    assert round(sum(f.geometry().area() for f in layer.getFeatures())) == planar
    core = run_preset(preset, CountyOverlay({r: county[r] for r in (*roles, "CJDCQ")}))
    assert out["AREA_M2"] == pytest.approx(core.total_area_m2(), abs=0.005)
    assert sum(f["area_m2"] for f in layer.getFeatures()) == pytest.approx(core.total_area_m2(), abs=0.01)
    feature = next(layer.getFeatures())
    assert feature["rule_id"] == f"huijiao:{preset}"
    from huijiao_plugin.core.compare import provenance

    record = provenance.read_metadata(layer)  # once per output, in the layer's metadata
    assert record["rule_profile"]["values"]["min_width_m"] == 0.1
    assert set(record["inputs"]) >= set(roles)
    stats = out["OUTPUT_STATS"]
    assert sum(f["count"] for f in stats.getFeatures() if f["category"] != "coverage") == count


def test_boundarycompare_algorithm(county):
    every = {"A": county["PBF"], "B": county["DLTB"], "B_DLBM": "*", "REGION_LEVEL": 0}
    out = run("huijiao:boundarycompare", every)
    assert counts(out) == {"only_b": 16, "both": 9}
    assert {f["region_code"] for f in out["OUTPUT_STATS"].getFeatures()} == {"610102"}
    # B is a DLTB layer: by default only its farmland (0101/0102/0103) is compared with A
    bsm = {code: set() for code in ("farm", "0702")}
    for f in county["DLTB"].getFeatures():
        if f["DLBM"] in ("0101", "0102", "0103"):
            bsm["farm"].add(f["BSM"])
        elif f["DLBM"] == "0702":
            bsm["0702"].add(f["BSM"])
    assert bsm["0702"]
    for codes, wanted in (("", "farm"), ("0702", "0702")):
        params = {"A": county["PBF"], "B": county["DLTB"], "B_DLBM": codes, "REGION_LEVEL": 0}
        out = run("huijiao:boundarycompare", params)
        b_ids = {f["B_ID"] for f in out["OUTPUT"].getFeatures() if f["category"] in ("only_b", "both")}
        assert b_ids and b_ids <= bsm[wanted], (codes, b_ids - bsm[wanted])


def counts(out):
    cats = {}
    for f in out["OUTPUT"].getFeatures():
        cats[f["category"]] = cats.get(f["category"], 0) + 1
    return cats


def test_overrides_base_tolerance_and_xlsx(county, tmp_path):
    from openpyxl import load_workbook

    xlsx = tmp_path / "nongrain.xlsx"
    out = run(
        "huijiao:pbfnongrain",
        {
            "PBF": county["PBF"],
            "DLTB": county["DLTB"],
            "XZQ": county["XZQ"],
            "NONGRAIN_CODES": "FLS",
            "XLSX": str(xlsx),
        },
    )
    assert out["COUNT"] == 2
    sheet = load_workbook(out["XLSX"])["比对统计"]
    assert [c.value for c in sheet[2]][1:3] == [T1, "一号镇"]
    from huijiao_plugin.core.compare import provenance

    params = provenance.read_metadata(out["OUTPUT"])["rule_profile"]["values"]
    assert params["nongrain_codes"] == ["FLS"]
    joined = run("huijiao:contiguity", {"PBF": county["PBF"], "TOLERANCE": 150})
    assert joined["COUNT"] == 1
    on_pbf = run(
        "huijiao:farmlandnonagri",
        {
            "DLTB": county["DLTB"],
            "PBF": county["PBF"],
            "DLTB_N1": county["DLTB_N1"],
            "JCTB": county["JCTB"],
            "BASE": 1,
        },
    )
    assert on_pbf["COUNT"] == 1
    core = run_preset("farmlandnonagri", CountyOverlay(dict(county)), CompareOptions(base="pbf"))
    assert on_pbf["AREA_M2"] == pytest.approx(core.total_area_m2())


def test_bad_input_gives_clear_error(county, tmp_path):
    from qgis.core import QgsProcessingException

    # layers by source: a failed processing.run keeps the layer objects it was given alive past QGIS's exit

    with pytest.raises(QgsProcessingException, match="DLTB_N1"):
        run("huijiao:farmlandnonagri", {"DLTB": county["DLTB"].source()})
    bad = tmp_path / "rules.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(QgsProcessingException, match="规则配置文件"):
        run(
            "huijiao:pbfnongrain",
            {"PBF": county["PBF"].source(), "DLTB": county["DLTB"].source(), "RULES_PROFILE": str(bad)},
        )
    with pytest.raises(QgsProcessingException, match="数值"):
        run("huijiao:pbfexitcandidates", {"PBF": county["PBF"].source(), "FRAGMENT_MAX_MU": "many"})


def test_provenance_once_per_output(county, tmp_path):
    """No JSON on every piece: the GeoPackage holds one provenance row and the layer's metadata, naming each
    input's layer, subset, feature count and CRS, the rule profile values and tolerances."""
    import sqlite3

    from qgis.core import QgsVectorLayer

    from huijiao_plugin.core.compare import provenance

    dltb = QgsVectorLayer(county["DLTB"].source(), "my DLTB", "ogr")
    dltb.setSubsetString("DLBM <> '1006'")
    out_path = tmp_path / "out.gpkg"
    params = {"PBF": county["PBF"], "DLTB": dltb, "OUTPUT": str(out_path), "MIN_AREA": 2.0}
    out = run("huijiao:pbfnongrain", params)
    layer = QgsVectorLayer(out["OUTPUT"], "out", "ogr")
    assert layer.isValid() and layer.featureCount() > 0
    assert "rule_params" not in layer.fields().names() and "inputs" not in layer.fields().names()
    name = layer.dataProvider().subLayers()[0].split("!!::!!")[1]
    with sqlite3.connect(out_path) as db:
        rows = db.execute("SELECT output_layer, rule_id, provenance FROM huijiao_provenance").fetchall()
    assert len(rows) == 1 and rows[0][:2] == (name, "huijiao:pbfnongrain")
    record = json.loads(rows[0][2])
    assert record == provenance.read_gpkg(str(out_path), name)[0]
    info = record["inputs"]["DLTB"]
    assert info["name"] == "my DLTB" and info["layer"] == "DLTB" and info["subset"] == "DLBM <> '1006'"
    assert info["feature_count"] == dltb.featureCount() and info["crs"] == "EPSG:4545"
    assert record["tolerances"] == {"min_area_m2": 2.0, "min_width_m": 0.1, "noise_width_m": 1.0}
    assert record["rule_profile"]["values"]["nongrain_codes"] == ["FLS", "WG"]
    assert record["plugin_version"] and record["time"]
    assert provenance.read_metadata(QgsVectorLayer(out["OUTPUT"], "again", "ogr")) == record
