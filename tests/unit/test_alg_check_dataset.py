"""huijiao:checkdataset gives the same findings as the core check the panel runs."""

from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer

from huijiao_plugin.core.checks import check_layer
from tests.unit.shared_layers_data import S, dltb_data, simple_data, write_layer


@pytest.fixture()
def planted(tmp_path, qgis_app):
    data = dltb_data(10, name="地类图斑2019")
    data.rows[1].update(DLBM="0105")  # code outside domain
    data.rows[2]["DLMC"] = "旱地"  # DLMC ≠ DLBM 0101
    data.rows[4]["BSM"] = data.rows[3]["BSM"]  # duplicate BSM
    data.rows[5]["TBMJ"] += 3.0  # area mismatch
    data.wkts[6] = ""  # empty geometry
    path = str(tmp_path / "planted.gpkg")
    write_layer(path, data)
    return path + "|layername=地类图斑2019"  # a URI: a layer kept by a fixture would outlive QgsApplication


def _open(uri):
    layer = QgsVectorLayer(uri, "地类图斑2019", "ogr")
    assert layer.isValid()
    return layer


def _rows(layer):
    return sorted((f["rule_id"], f["field"] or "", f["value"] or "", f["count"]) for f in layer.getFeatures())


@pytest.mark.parametrize("dataset", ["dltb_sandiao", "auto"])
def test_processing_matches_core(planted, huijiao_provider, dataset):
    import processing

    planted = _open(planted)
    result = processing.run(
        "huijiao:checkdataset",
        {"INPUT": planted, "DATASET": dataset, "OUTPUT": "memory:", "OUTPUT_FEATURES": "memory:"},
    )
    report = check_layer(planted, "dltb_sandiao")
    table = result["OUTPUT"]
    if isinstance(table, str):
        from qgis.core import QgsProcessingUtils

        table = QgsProcessingUtils.mapLayerFromString(table, None)
    assert _rows(table) == report.signature()
    assert {r[0] for r in report.signature()} == {
        "code_domain",
        "dlmc_mismatch",
        "bsm_duplicate",
        "area_mismatch",
        "geometry_empty",
    }
    assert result["DATASET_ID"] == "dltb_sandiao"
    assert result["ERRORS"] == 5 and result["WARNINGS"] == 0
    assert not table.isSpatial()
    feats = result["OUTPUT_FEATURES"]
    rules = {f["hj_fid"]: f["hj_rules"] for f in feats.getFeatures()}
    bsm = {f.id(): f["BSM"] for f in planted.getFeatures()}
    assert len(rules) == 6  # 1 code, 1 name, 2 duplicates, 1 area, 1 empty
    assert {bsm[fid] for fid, r in rules.items() if "bsm_duplicate" in r} == {_dup_bsm(planted)}
    ids = [f["feature_ids"] for f in table.getFeatures() if f["rule_id"] == "bsm_duplicate"][0]
    assert len(ids.split(",")) == 2


def _dup_bsm(layer):
    seen = set()
    for f in layer.getFeatures():
        if f["BSM"] in seen:
            return f["BSM"]
        seen.add(f["BSM"])
    return None


def test_unrecognisable_layer_with_auto_is_a_clear_error(tmp_path, huijiao_provider):
    import processing

    path = str(tmp_path / "x.gpkg")
    write_layer(path, simple_data("misc", [("NAME", S)], [{"NAME": "a"}]))
    layer = QgsVectorLayer(path + "|layername=misc", "misc", "ogr")
    with pytest.raises(QgsProcessingException, match="recognise"):
        processing.run("huijiao:checkdataset", {"INPUT": layer, "DATASET": "auto", "OUTPUT": "memory:",
                                                "OUTPUT_FEATURES": "memory:"})  # fmt: skip


def test_catalog_override_parameter(tmp_path, huijiao_provider):
    import processing

    path = str(tmp_path / "j.gpkg")
    write_layer(
        path,
        simple_data(
            "JCTB", [("JCBH", S), ("TBLX", S), ("JCMJ", S)], [{"JCBH": "1", "TBLX": "ZZ", "JCMJ": "1"}]
        ),
    )
    layer = QgsVectorLayer(path + "|layername=JCTB", "JCTB", "ogr")
    params = {"INPUT": layer, "DATASET": "jctb", "OUTPUT": "memory:", "OUTPUT_FEATURES": "memory:"}
    first = processing.run("huijiao:checkdataset", params)
    assert ("code_domain", "TBLX", "ZZ", 1) in _rows(first["OUTPUT"])
    override = tmp_path / "o.json"
    override.write_text('{"codes": {"tblx": {"ZZ": "住宅"}}}', encoding="utf-8")
    second = processing.run("huijiao:checkdataset", {**params, "CATALOG_OVERRIDE": str(override)})
    assert not [r for r in _rows(second["OUTPUT"]) if r[0] == "code_domain"]


@pytest.mark.slow
def test_qgis_process_gives_the_same_findings(planted, tmp_path):
    """``qgis_process.bin run huijiao:checkdataset`` (the plugin installed in a throw-away profile)."""
    import csv

    from tests.qgis_process_support import install_plugin, run_algorithm

    env = install_plugin(tmp_path / "qgis_config")
    out_csv = tmp_path / "findings.csv"
    params = {"INPUT": planted, "DATASET": "dltb_sandiao", "OUTPUT": str(out_csv)}
    params["OUTPUT_FEATURES"] = str(tmp_path / "bad.gpkg")
    results = run_algorithm(env, "huijiao:checkdataset", params)
    assert results["ERRORS"] == 5 and results["DATASET_ID"] == "dltb_sandiao"
    with open(out_csv, encoding="utf-8") as fh:
        rows = sorted((r["rule_id"], r["field"], r["value"], int(r["count"])) for r in csv.DictReader(fh))
    assert rows == check_layer(_open(planted), "dltb_sandiao").signature()
